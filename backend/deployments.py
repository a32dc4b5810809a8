"""Deployments in the tutorial's words: deploy, wait_for_deployment, scoring_uri, get_logs, delete, list,
across every runtime of one home: a deployment is found by name wherever it runs, and a new name is
refused when any runtime that answers has it. (A name taken on a runtime that did not answer at the
time can end up on two runtimes: then commands say so and ask which runtime.)"""

from __future__ import annotations

import builtins
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .client import ScoringClient
from .config import Home
from .errors import (
    DeploymentDownError,
    DeploymentError,
    DeploymentExistsError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    DeploymentNotHealthyError,
    EndpointUnreachableError,
    IncompatibleModelError,
    ModelDeckError,
    ModelNotFoundError,
    ReadOnlyDeploymentError,
    RuntimeUnavailableError,
    ScoringServerError,
)
from .progress import Progress, ProgressEvent, ProgressKind, quiet, step
from .registry import Model, ModelRegistry
from .runtimes import Runtimes, RuntimeStatus
from .runtimes.base import (
    DeployConfig,
    Deployment,
    DeploymentRecord,
    DeploymentSpec,
    DeploymentState,
    Keys,
    Runtime,
    validate_name,
)
from .staging import STAGING_DIR, staging_dir, sweep

DEFAULT_SCRIPT = Path(__file__).resolve().parent / "serving" / "score_sklearn.py"
MODEL_SCRIPT_NAME = "score.py"
LOG_TAIL_ON_FAILURE = 30
FIRST_POLL_SECONDS = 0.05
STREAMED_LOG_LINES = 40  # at most this many new log lines per poll while waiting


def check_compatible(model: Model, environment: dict[str, str]) -> None:
    """A scikit-learn model must be unpickled with the scikit-learn version that saved it.

    Raises:
        IncompatibleModelError: the versions differ, with both named.
    """
    wanted, have = model.sklearn_version, environment.get("scikit-learn")
    if model.framework == "scikit-learn" and wanted and have and wanted != have:
        raise IncompatibleModelError(
            f"model {model.id} was saved with scikit-learn {wanted} but this runtime serves with {have}: "
            f"retrain and register it with scikit-learn {have}, or deploy where {wanted} is installed")


def default_entry_script(model_dir: Path) -> Path:
    """A model registered with its own score.py is served with it; others with the built-in script."""
    own = model_dir / MODEL_SCRIPT_NAME
    return own if own.is_file() else DEFAULT_SCRIPT


@dataclass(frozen=True)
class DeploymentList:
    """Every deployment of a home at one moment, and the runtimes that were asked.

    Attributes:
        deployments: this home's deployments on every runtime that answered (then other homes',
            not owned, when asked for).
        runtimes: each runtime, whether it answered, and what it is or why not.
    """

    deployments: tuple[Deployment, ...]
    runtimes: tuple[RuntimeStatus, ...]

    @property
    def owned(self) -> list[Deployment]:
        return [d for d in self.deployments if d.owned]

    @property
    def healthy(self) -> list[Deployment]:
        return [d for d in self.owned if d.state is DeploymentState.HEALTHY]

    @property
    def ambiguous(self) -> set[str]:
        """Names this home has on two runtimes (one made while the other runtime did not answer)."""
        seen: set[str] = set()
        twice: set[str] = set()
        for deployment in self.owned:
            (twice if deployment.name in seen else seen).add(deployment.name)
        return twice

    def find(self, name: str) -> Deployment | None:
        return next((d for d in self.owned if d.name == name), None)


def no_answer(error: ModelDeckError) -> bool:
    """Whether a failed request got no answer from the scoring server itself: nothing listened, the front
    said the server does not answer (502, 503, 504), or the server said its workers are restarting (503)."""
    if isinstance(error, ScoringServerError):
        return error.status in (502, 503, 504) and error.script_error is None
    return isinstance(error, EndpointUnreachableError)


class DeploymentService:
    """Deploys registered models on a home's runtimes and manages their deployments."""

    def __init__(self, registry: ModelRegistry, runtimes: Runtimes, client: ScoringClient,
                 on_delete: Callable[[Deployment], None] | None = None) -> None:
        self.registry = registry
        self.runtimes = runtimes
        self.client = client
        self.on_delete = on_delete

    @property
    def home(self) -> Home:
        return self.runtimes.home

    # --- reads -------------------------------------------------------------------------------------

    def snapshot(self, *, all_homes: bool = False) -> DeploymentList:
        """Every deployment on every runtime that answers, with each runtime's status. Reads only."""
        found: list[Deployment] = []
        statuses = []
        for status in self.runtimes.statuses():
            if status.available:
                try:
                    found.extend(self.runtimes.open(status.name).list(all_homes=all_homes))
                except ModelDeckError as e:  # stopped answering, or refused: one runtime never hides the rest
                    if isinstance(e, RuntimeUnavailableError):
                        self.runtimes.forget(status.name)
                    status = RuntimeStatus(status.name, False, str(e))
            statuses.append(status)
        found.sort(key=lambda d: (not d.owned, d.record.home, d.name))
        return DeploymentList(tuple(found), tuple(statuses))

    def list(self, *, all_homes: bool = False) -> list[Deployment]:
        """This home's deployments on every runtime that answers (all homes' with `all_homes`)."""
        return list(self.snapshot(all_homes=all_homes).deployments)

    def _answering(self, runtime: str | None = None) -> builtins.list[Runtime]:
        if runtime is not None:
            return [self.runtimes.open(runtime)]
        return self.runtimes.available()

    def _locate(self, name: str, runtime: str | None = None) -> tuple[Runtime, Deployment]:
        """The runtime running this home's deployment `name` (on `runtime` when given), and the deployment.

        Raises:
            DeploymentNotFoundError: no runtime has it. ReadOnlyDeploymentError: only another home has it.
            DeploymentError: two runtimes have a deployment of that name and `runtime` does not say which.
        """
        found: builtins.list[tuple[Runtime, Deployment]] = []
        for candidate in self._answering(runtime):
            try:
                found.append((candidate, candidate.get(name)))
            except DeploymentNotFoundError:
                continue
            except RuntimeUnavailableError:  # the engine stopped answering: look on the others
                self.runtimes.forget(candidate.name)
        if len(found) == 1:
            return found[0]
        if found:
            runtimes = " and ".join(r.name for r, _ in found)
            raise DeploymentError(
                f"deployment {name!r} exists on {runtimes} (one was made while the other runtime did not "
                f"answer): name the runtime, e.g. `modeldeck deployments delete {name} --runtime {found[-1][0].name}`")
        for candidate in self._answering(runtime):
            try:
                others = candidate.list(all_homes=True)
            except RuntimeUnavailableError:
                continue
            for other in others:
                if other.name == name and not other.owned:
                    raise ReadOnlyDeploymentError(
                        f"deployment {name!r} belongs to another ModelDeck home ({other.record.home or 'unknown'}): "
                        "it is listed read-only here; manage it from that home")
        where = ", ".join(r.name for r in self._answering(runtime))
        raise DeploymentNotFoundError(f"no deployment named {name!r} in this home (looked on: {where})")

    def get(self, name: str, runtime: str | None = None) -> Deployment:
        """This home's deployment `name`, wherever it runs (only on `runtime` when given).

        Raises:
            DeploymentNotFoundError, ReadOnlyDeploymentError, DeploymentError (on two runtimes).
        """
        return self._locate(name, runtime)[1]

    def healthy(self, name: str, runtime: str | None = None) -> Deployment:
        """This home's deployment `name` (on `runtime` when given), which must be Healthy to be scored.

        Raises:
            DeploymentNotFoundError, ReadOnlyDeploymentError, DeploymentNotHealthyError.
        """
        deployment = self.get(name, runtime)
        if deployment.state is not DeploymentState.HEALTHY or deployment.scoring_uri is None:
            raise DeploymentNotHealthyError(f"deployment {name!r} is {deployment.state}, not Healthy"
                                            + (f": {deployment.detail}" if deployment.detail else ""))
        return deployment

    def explain(self, deployment: Deployment, error: ModelDeckError) -> ModelDeckError:
        """`error`, a failed request to `deployment`, as its user should read it: where its server gave no
        answer (nothing listens, the front's 502/503/504, the server's own 503 while its workers restart),
        a DeploymentDownError with the deployment's state now and why, read from its runtime; any other
        error as it is.
        """
        if not no_answer(error):
            return error
        try:
            now = self.get(deployment.name, deployment.runtime)
        except DeploymentNotFoundError:
            return DeploymentDownError(deployment.name, DeploymentDownError.GONE, "it was deleted meanwhile")
        except ModelDeckError:  # the runtime does not answer either: the request's own error says enough
            return error
        if now.state is DeploymentState.HEALTHY:
            return DeploymentDownError(now.name, str(now.state), "its server restarted after a fault while it "
                                       "had this request, and answers again now; its logs say why")
        if now.state is DeploymentState.TRANSITIONING and not now.detail:
            return DeploymentDownError(now.name, str(now.state), "its server gave no answer to this request and is "
                                       "starting again (its worker ended, say); its logs say why")
        return DeploymentDownError(now.name, str(now.state), now.detail or f"its server does not answer ({error})")

    def serving(self, model: Model, snapshot: DeploymentList | None = None) -> Deployment | None:
        """A Healthy deployment of this home that serves exactly `model` (name, version and files), or None."""
        listed = snapshot or self.snapshot()
        return next((d for d in listed.healthy if d.record.model_name == model.name
                     and d.record.model_version == model.version and d.record.model_sha256 == model.sha256), None)

    def model_of(self, deployment: Deployment) -> Model | None:
        """The registered model a deployment serves (None when this registry does not have it)."""
        try:
            model = self.registry.get(deployment.record.model_name, deployment.record.model_version)
        except ModelNotFoundError:
            return None
        sha = deployment.record.model_sha256
        return model if not sha or sha == model.sha256 else None

    def get_logs(self, name: str, tail: int | None = None, *, runtime: str | None = None) -> str:
        """The server's log (last `tail` lines). Raises what `get` raises."""
        found, _ = self._locate(name, runtime)
        return found.logs(name, tail)

    def suggest_name(self, model: Model, taken: set[str] | None = None) -> str:
        """A free, valid deployment name for `model` that carries its version, like "sklearn-mnist-v2"
        (then "sklearn-mnist-v2-2", ... when taken)."""
        stem = "".join(c if c.isalnum() else "-" for c in model.name.lower()).strip("-")[:50] or "model"
        stem = f"{stem}-v{model.version}"
        taken = taken if taken is not None else {d.name for d in self.list()}
        name, n = stem, 1
        while name in taken:
            n += 1
            name = f"{stem}-{n}"
        return name

    # --- changes -----------------------------------------------------------------------------------

    def deploy(self, model: Model, name: str, config: DeployConfig | None = None, *, runtime: str | None = None,
               entry_script: Path | None = None, progress: Progress = quiet) -> Deployment:
        """Starts a deployment of `model` called `name`; returns once it is starting (see wait_for_deployment).

        Args:
            runtime: the runtime for it (a kind's name or "auto"; default: the MODELDECK_RUNTIME setting).
            entry_script: a scoring script with init()/run(raw_data); default: the model's own score.py
                when it was registered with one, else the built-in scikit-learn script.

        Raises:
            InvalidDeploymentNameError, DeploymentExistsError (on any runtime that answers), ChecksumMismatchError,
            IncompatibleModelError, RuntimeUnavailableError, DeploymentError (bad entry script, runtime failure).
        """
        validate_name(name)
        config = config or DeployConfig()
        for candidate in self.runtimes.available():  # one look-up per runtime, not a whole list
            try:
                existing = candidate.get(name)
            except (DeploymentNotFoundError, RuntimeUnavailableError):
                continue
            raise DeploymentExistsError(f"a deployment named {name!r} exists already (on {existing.runtime}): "
                                        "delete it first or pick another name")
        if entry_script is not None and not Path(entry_script).is_file():
            raise DeploymentError(f"entry script {entry_script} does not exist")
        if entry_script is not None and Path(entry_script).suffix != ".py":
            raise DeploymentError(f"entry script {entry_script} is not a Python file: give a .py file with init() "
                                  "and run(raw_data)")
        chosen = self.runtimes.open(runtime)
        check_compatible(model, chosen.environment_versions(model))
        with staging_dir(self.home.path / STAGING_DIR) as staging:
            step(progress, f"checking and staging {len(model.files)} file(s) of {model.id} (model sha256 "
                           f"{model.sha256[:12]})")
            model_dir = self.registry.materialize(model, staging / "model")
            script = Path(entry_script) if entry_script else default_entry_script(model_dir)
            step(progress, f"scoring script: {script.name}; runtime: {chosen.describe()}"
                           + ("; key auth on" if config.auth_enabled else ""))
            record = DeploymentRecord(
                name=name, uid=secrets.token_hex(8), home_id=self.home.id, home=str(self.home.path),
                model_name=model.name, model_version=model.version, model_sha256=model.sha256, config=config,
                entry_script=script.name, created_at=datetime.now(UTC).isoformat(timespec="seconds"))
            spec = DeploymentSpec(record=record, model=model, model_dir=model_dir, script_path=script,
                                  keys=Keys.generate() if config.auth_enabled else None)
            return chosen.create(spec, progress)

    def wait_for_deployment(self, name: str, *, timeout: float = 180.0, progress: Progress = quiet,
                            poll_seconds: float = 0.2, runtime: str | None = None) -> Deployment:
        """Waits until the deployment is Healthy (on `runtime` when given).

        A deployment that fails, crashes or times out is stopped and kept: its logs stay readable
        and `delete` removes it.

        Raises:
            DeploymentFailedError: it ended Failed or Unhealthy, or was not Healthy after `timeout`
                seconds (stopped then); the error carries the state, exit code and the last log lines.
        """
        where, _ = self._locate(name, runtime)
        deadline = time.monotonic() + timeout
        last_state = None
        log_lines_seen = 0
        # A warm container is ready in about a second: poll often at first, then every `poll_seconds`.
        delay = min(FIRST_POLL_SECONDS, poll_seconds)
        while True:
            deployment = where.get(name)
            log_lines_seen = self._stream_new_log_lines(where, name, log_lines_seen, progress)
            if deployment.state != last_state:
                progress(ProgressEvent(ProgressKind.STATE, f"{name}: {deployment.state}"
                                       + (f" — {deployment.detail}" if deployment.detail else "")))
                last_state = deployment.state
            if deployment.state is DeploymentState.HEALTHY:
                return deployment
            if deployment.state in (DeploymentState.FAILED, DeploymentState.UNHEALTHY):
                self._stop_quietly(where, name)
                stopped = self._get_quietly(where, name)  # a failed init() exits with its code once stopped
                raise DeploymentFailedError(name, deployment.detail or "the server stopped",
                                            state=str(deployment.state),
                                            exit_code=deployment.exit_code if deployment.exit_code is not None
                                            or stopped is None else stopped.exit_code,
                                            logs=where.logs(name, LOG_TAIL_ON_FAILURE))
            if time.monotonic() >= deadline:
                self._stop_quietly(where, name)
                raise DeploymentFailedError(name, f"timed out after {timeout:.0f} s, not ready yet (init() had "
                                                  "not returned); stopped it",
                                            state=str(deployment.state),
                                            logs=where.logs(name, LOG_TAIL_ON_FAILURE))
            time.sleep(delay)
            delay = min(poll_seconds, delay * 1.25)

    def deploy_and_wait(self, model: Model, name: str, config: DeployConfig | None = None, *,
                        runtime: str | None = None, entry_script: Path | None = None, timeout: float = 180.0,
                        progress: Progress = quiet, poll_seconds: float = 0.2) -> Deployment:
        """`deploy` then `wait_for_deployment`: the one deploy path of the CLI, the dashboard, the
        benchmarks and the tests. Once Healthy, what the scoring server found when it loaded the
        model (feature count, classes) is recorded in the model's signature.

        Raises:
            Everything `deploy` and `wait_for_deployment` raise.
        """
        started = self.deploy(model, name, config, runtime=runtime, entry_script=entry_script, progress=progress)
        deployment = self.wait_for_deployment(name, timeout=timeout, progress=progress, poll_seconds=poll_seconds,
                                              runtime=started.runtime)
        self._confirm_signature(model, deployment, progress)
        return deployment

    def _confirm_signature(self, model: Model, deployment: Deployment, progress: Progress) -> None:
        try:
            info = self.client.info(deployment.scoring_uri or "", key=self.key_for(deployment))
        except ModelDeckError:
            return
        classes, names = info.get("classes"), info.get("feature_names")
        confirmed = self.registry.confirm_signature(
            model, info.get("n_features"), [str(c) for c in classes] if isinstance(classes, list) else None,
            source=f"deployment {deployment.name}",
            feature_names=[str(n) for n in names] if isinstance(names, list) else None,
            categories=info.get("categories") if isinstance(info.get("categories"), dict) else None)
        if confirmed.signature != model.signature:
            step(progress, f"recorded {model.id}'s signature as the server loaded it: {confirmed.signature.describe()}")

    def _stream_new_log_lines(self, runtime: Runtime, name: str, seen: int, progress: Progress) -> int:
        """Passes the server's log lines written since the last call to `progress`."""
        lines = runtime.logs(name).splitlines()
        if len(lines) < seen:  # a restarted server starts a new log
            seen = 0
        for line in lines[seen:seen + STREAMED_LOG_LINES]:
            progress(ProgressEvent(ProgressKind.SERVER_LOG, line))
        return len(lines)

    @staticmethod
    def _get_quietly(runtime: Runtime, name: str) -> Deployment | None:
        try:
            return runtime.get(name)
        except ModelDeckError:
            return None

    @staticmethod
    def _stop_quietly(runtime: Runtime, name: str) -> None:
        """A failed deployment is stopped (no restart loop) and kept, so its logs can be read."""
        try:
            runtime.stop(name)
        except DeploymentNotFoundError:
            pass

    def keys(self, name: str, *, runtime: str | None = None) -> Keys:
        """The deployment's primary and secondary keys (the tutorial's `service.get_keys()`).

        Raises:
            DeploymentNotFoundError, ReadOnlyDeploymentError, DeploymentError (no key auth, two runtimes).
        """
        where, _ = self._locate(name, runtime)
        return where.keys(name)

    def key_for(self, deployment: Deployment) -> str | None:
        """The key to send to `deployment` (its primary key), None when it has no key auth."""
        if not deployment.config.auth_enabled:
            return None
        return self.runtimes.open(deployment.runtime).keys(deployment.name).primary

    def regen_key(self, name: str, which: str, *, runtime: str | None = None) -> Keys:
        """Replaces the primary or secondary key with a new one, without a restart: the other key keeps
        working meanwhile, so clients can move over first (the tutorial's `service.regen_key(key)`).

        Raises:
            ValueError for `which` not primary/secondary; what `keys` raises.
        """
        where, _ = self._locate(name, runtime)
        keys = where.keys(name).rotated(which)
        where.set_keys(name, keys)
        return keys

    def delete(self, name: str, *, runtime: str | None = None) -> None:
        """Stops and removes this home's deployment `name` (on `runtime` when given), the results kept
        for it, and what deploys killed half-way left.

        Raises:
            DeploymentNotFoundError, ReadOnlyDeploymentError, DeploymentError (on two runtimes).
        """
        found, deployment = self._locate(name, runtime)
        found.remove(name)
        sweep(self.home.path / STAGING_DIR)  # copies left by deploys that were killed half-way
        if self.on_delete is not None:
            self.on_delete(deployment)
