"""Every error the backend raises on purpose.

    ModelDeckError
    ├── ConfigError
    ├── RegistryError
    │   ├── ModelNotFoundError
    │   ├── DuplicateModelError          (these bytes are registered already; carries the version)
    │   └── ChecksumMismatchError
    ├── DatasetError
    │   ├── IdxFormatError
    │   └── DatasetMismatchError         (the test set does not fit the model's input signature)
    ├── RuntimeUnavailableError         (no engine answers, unknown runtime)
    ├── ImageError                      (environment and self-contained images)
    │   ├── BaseImageMissingError
    │   ├── WheelDownloadError
    │   ├── ImageBuildError
    │   └── InvalidImageTagError
    ├── DeploymentError
    │   ├── InvalidDeploymentNameError
    │   ├── InvalidDeployConfigError     (cpu or memory out of range)
    │   ├── DeploymentExistsError
    │   ├── DeploymentNotFoundError
    │   ├── ReadOnlyDeploymentError      (it belongs to another ModelDeck home)
    │   ├── DeploymentNotHealthyError    (asked to score a deployment that is not Healthy)
    │   ├── DeploymentFailedError        (carries state, exit code and last log lines)
    │   ├── UntrustedModelError          (no sandbox for the local runtime here, and --trust-model not given)
    │   └── IncompatibleModelError       (library versions of model and environment differ)
    ├── ScoringError
    │   ├── EndpointUnreachableError
    │   ├── ScoringRequestError           (4xx: the request was wrong)
    │   ├── ScoringServerError            (5xx: the server failed; the script's error kind and request id)
    │   ├── DeploymentDownError           (no answer: the deployment's name, its state now and why)
    │   └── UnexpectedAnswerError         (an answer that is not one label per row of the test set)
    ├── UserImageError                  (a drawn or uploaded digit)
    │   ├── NothingDrawnError
    │   └── ImageDecodeError
    ├── InvalidPerturbationError
    ├── InvalidWhatIfError              (a table's what-if: unknown column, a value not a number, images)
    ├── InvalidExplanationError         (a table's explanation: images, an unknown class or scale, too many rows)
    ├── TrainingError                   (no such sample model: unknown dataset or algorithm)
    ├── ComparisonError                 (two results not made on the same test set, or A is B)
    ├── ReportError                     (a report that cannot be made or printed to PDF)
    ├── TrafficError                    (a deployment's live traffic or a load test)
    │   ├── MetricsUnavailableError     (/metrics refused, missing or unreadable)
    │   └── LoadTestRefusedError        (bounds, or a target that is not this machine)
    └── ExportError                     (Kubernetes / KServe manifests: invalid options, an unusable folder)

Messages say what happened and what to do next; callers show `str(error)` as is.
"""

from __future__ import annotations


class ModelDeckError(Exception):
    """Base class of every error ModelDeck raises on purpose."""


class ConfigError(ModelDeckError):
    """A setting read from the environment has an invalid value."""


class RegistryError(ModelDeckError):
    """The model registry cannot do what was asked."""


class ModelNotFoundError(RegistryError):
    """No model with that name (and version) is registered."""


class DuplicateModelError(RegistryError):
    """The files are registered already under that name.

    Attributes:
        existing: the id ("name:version") of the version that holds them.
    """

    def __init__(self, existing: str) -> None:
        self.existing = existing
        super().__init__(f"these files are registered already as {existing}: nothing new to register")


class ChecksumMismatchError(RegistryError):
    """A stored model file no longer has the sha256 recorded at registration."""


class DatasetError(ModelDeckError):
    """A dataset cannot be found or read."""


class IdxFormatError(DatasetError):
    """A file is not a valid IDX file (wrong magic, truncated, bad dimensions)."""


class DatasetMismatchError(DatasetError):
    """A test set does not fit a model's input signature (feature count, image shape)."""


class RuntimeUnavailableError(ModelDeckError):
    """The requested runtime cannot be used (for example, no Docker engine answers)."""


class ImageError(ModelDeckError):
    """An environment image cannot be made."""


class BaseImageMissingError(ImageError):
    """The base image is not on the engine, and ModelDeck pulls nothing."""


class WheelDownloadError(ImageError):
    """`pip download` could not fetch the wheels for the image."""


class ImageBuildError(ImageError):
    """`docker build` failed; the message ends with the last lines of the build log."""


class InvalidImageTagError(ImageError):
    """An image name that Docker would refuse (`build --tag`)."""


class DeploymentError(ModelDeckError):
    """A deployment cannot be created, found or managed."""


class InvalidDeploymentNameError(DeploymentError):
    """The deployment name does not fit the rules every runtime accepts."""


class InvalidDeployConfigError(DeploymentError):
    """A deploy configuration value is out of its range (the same rule for the CLI and the dashboard)."""


class DeploymentExistsError(DeploymentError):
    """A deployment with that name exists already."""


class DeploymentNotFoundError(DeploymentError):
    """No deployment with that name exists."""


class ReadOnlyDeploymentError(DeploymentError):
    """The deployment belongs to another ModelDeck home: it can be listed, not changed."""


class DeploymentNotHealthyError(DeploymentError):
    """The deployment exists but is not Healthy, so it cannot be scored."""


class IncompatibleModelError(DeploymentError):
    """The model was saved with library versions the serving environment does not have."""


class UntrustedModelError(DeploymentError):
    """The local runtime cannot sandbox a model on this machine, and the user did not say they trust it."""


class DeploymentFailedError(DeploymentError):
    """A deployment ended Failed, or did not become Healthy in time.

    Attributes:
        name: the deployment's name.
        state: the state it ended in.
        exit_code: the server process's exit code, when it exited.
        logs: the last lines of its log.
    """

    def __init__(self, name: str, reason: str, *, state: str = "Failed",
                 exit_code: int | None = None, logs: str = "") -> None:
        self.name = name
        self.reason = reason
        self.state = state
        self.exit_code = exit_code
        self.logs = logs
        message = f"deployment {name!r} {state.lower()}: {reason}"
        if exit_code is not None and f"code {exit_code}" not in reason:
            message += f" (exit code {exit_code})"
        if logs.strip():
            message += "\n--- last log lines ---\n" + logs.rstrip()
        super().__init__(message)


class ScoringError(ModelDeckError):
    """Scoring against an endpoint failed."""


class EndpointUnreachableError(ScoringError):
    """Nothing answers at the scoring URI."""


class ScoringRequestError(ScoringError):
    """The endpoint refused the request as invalid (HTTP 4xx)."""

    def __init__(self, status: int, message: str) -> None:
        self.status = status
        super().__init__(f"the endpoint refused the request (HTTP {status}): {message}")


class ScoringServerError(ScoringError):
    """The endpoint failed while scoring (HTTP 5xx).

    Attributes:
        script_error: the kind of exception the scoring script raised, when the server said so.
        request_id: the id under which the server logged the traceback.
    """

    def __init__(self, status: int, message: str, script_error: str | None = None,
                 request_id: str | None = None) -> None:
        self.status = status
        self.script_error = script_error
        self.request_id = request_id
        super().__init__(f"the endpoint failed (HTTP {status}): {message}")


class DeploymentDownError(ScoringError):
    """The deployment's server gave no answer (nothing listens, the front's 502/503, a crash loop's 503),
    told as the deployment list tells it.

    Attributes:
        name: the deployment's name.
        state: its state now ("Failed", say; "Healthy" when it answers again, "gone" once deleted).
        reason: why, in the runtime's words (the exit code, the crash loop, ...).
    """

    GONE = "gone"

    def __init__(self, name: str, state: str, reason: str) -> None:
        self.name = name
        self.state = state
        self.reason = reason
        super().__init__(f"deployment {name!r} is {state}" + (f": {reason}" if reason else ""))

    @property
    def gone(self) -> bool:
        """It was deleted: it has no state, no logs, nothing to wait for."""
        return self.state == self.GONE


class UnexpectedAnswerError(ScoringError):
    """The endpoint answered, but not with one of the test set's labels for each row."""


class ComparisonError(ModelDeckError):
    """Two results that cannot be compared (not the same test set), or nothing to compare."""


class ReportError(ModelDeckError):
    """A report could not be made or printed."""


class UserImageError(ModelDeckError):
    """A drawn or uploaded image cannot be turned into the model's input."""


class NothingDrawnError(UserImageError):
    """An image to score has no ink: an empty canvas, or a picture of one uniform colour."""


class ImageDecodeError(UserImageError):
    """Uploaded bytes (or an array) cannot be read as an image; the message says what arrived."""


class InvalidPerturbationError(ModelDeckError):
    """An unknown perturbation, a strength it does not take, or images it cannot work on."""


class InvalidWhatIfError(ModelDeckError):
    """A what-if that cannot be made: images rather than a table's rows, an unknown column, a value that is
    not a number, a row the set does not have."""


class InvalidExplanationError(ModelDeckError):
    """An explanation that cannot be made: images rather than a table's rows, an unknown class or scale, more rows
    to score than the bound, log-odds of an endpoint that gives labels only."""


class DatasetImportError(DatasetError):
    """A user's files cannot be imported as a test set; the message names the file and says what arrived.

    Not yet drawn in the tree above; under DatasetError (raised by backend.data):
        DatasetImportError
        ├── InvalidDatasetNameError
        └── DatasetExistsError
        DatasetNotFoundError
    """


class InvalidDatasetNameError(DatasetImportError):
    """A user test set's name breaks the naming rule or is a built-in set's name."""


class DatasetExistsError(DatasetImportError):
    """A user test set with that name exists already (import it again with replace=True)."""


class DatasetNotFoundError(DatasetError):
    """No user test set with that name is stored; the message names the known sets."""


class CaseError(DatasetError):
    """A flagged case that cannot be kept or read: a label not among the classes, a note too long, a damaged book."""


class CaseNotFoundError(CaseError):
    """No flagged case with that id, or no case in a case set of that name."""


class TrainingError(ModelDeckError):
    """A sample model cannot be trained as asked (unknown dataset or algorithm)."""


class TrafficError(ModelDeckError):
    """A deployment's traffic cannot be read, or a load test cannot run."""


class MetricsUnavailableError(TrafficError):
    """The endpoint answered /metrics with an error (an older server without it, a refused key) or
    with text that is not Prometheus's format."""


class LoadTestRefusedError(TrafficError):
    """A load test out of its bounds (seconds, concurrency) or aimed anywhere but this machine."""


class ExportError(ModelDeckError):
    """Kubernetes or KServe manifests cannot be written as asked: an option out of its rule (names,
    replicas, autoscale bounds, image reference) or an output folder that holds other files."""


class EndpointError(ModelDeckError):
    """An endpoint cannot be made or changed as asked: a bad split, a deployment that cannot sit behind it, a proxy
    that does not start or refuses its configuration (the running one then keeps serving)."""


class EndpointNotFoundError(EndpointError):
    """No endpoint of that name in this home."""
