"""Deployments in the tutorial's words: deploy, wait_for_deployment, scoring_uri, get_logs, delete, list."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from .errors import (DeploymentError, DeploymentExistsError, DeploymentFailedError, DeploymentNotFoundError,
                     IncompatibleModelError)
from .registry import Model, ModelRegistry
from .runtimes.base import (DeployConfig, Deployment, DeploymentSpec, DeploymentState, Progress, Runtime,
                            validate_name)

DEFAULT_SCRIPT = Path(__file__).resolve().parent / "serving" / "score_sklearn.py"
MODEL_SCRIPT_NAME = "score.py"
LOG_TAIL_ON_FAILURE = 30
STREAMED_LOG_LINES = 40  # at most this many new log lines per poll while waiting


def _quiet(_: str) -> None:
    pass


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


class DeploymentService:
    """Deploys registered models on one runtime and manages their deployments."""

    def __init__(self, registry: ModelRegistry, runtime: Runtime) -> None:
        self.registry = registry
        self.runtime = runtime

    def suggest_name(self, model: Model) -> str:
        """A free, valid deployment name for `model`, like "sklearn-mnist-1"."""
        stem = "".join(c if c.isalnum() else "-" for c in model.name.lower()).strip("-")[:50] or "model"
        stem = stem if len(stem) >= 2 else f"{stem}-model"
        taken = {d.name for d in self.list()}
        n = 1
        while f"{stem}-{n}" in taken:
            n += 1
        return f"{stem}-{n}"

    def deploy(self, model: Model, name: str, config: DeployConfig | None = None, *,
               entry_script: Path | None = None, progress: Progress = _quiet) -> Deployment:
        """Starts a deployment of `model` called `name`; returns once it is starting (see wait_for_deployment).

        Args:
            entry_script: a scoring script with init()/run(raw_data); default: the model's own score.py
                when it was registered with one, else the built-in scikit-learn script.

        Raises:
            InvalidDeploymentNameError, DeploymentExistsError, ChecksumMismatchError,
            IncompatibleModelError, DeploymentError (bad entry script, runtime failure).
        """
        validate_name(name)
        config = config or DeployConfig()
        try:
            self.runtime.get(name)
            raise DeploymentExistsError(
                f"a deployment named {name!r} exists already: delete it first or pick another name")
        except DeploymentNotFoundError:
            pass
        if entry_script and not Path(entry_script).is_file():
            raise DeploymentError(f"entry script {entry_script} does not exist")
        check_compatible(model, self.runtime.environment_versions(model))
        with tempfile.TemporaryDirectory(prefix="modeldeck-stage-") as staging:
            progress(f"checking and staging {len(model.files)} file(s) of {model.id}")
            model_dir = self.registry.materialize(model, Path(staging) / "model")
            script = Path(entry_script) if entry_script else self._model_script(model_dir)
            progress(f"scoring script: {script.name}")
            spec = DeploymentSpec(name=name, model=model, config=config, model_dir=model_dir, script_path=script)
            return self.runtime.create(spec, progress)

    @staticmethod
    def _model_script(model_dir: Path) -> Path:
        """A model registered with its own score.py is served with it; others with the built-in script."""
        own = model_dir / MODEL_SCRIPT_NAME
        return own if own.is_file() else DEFAULT_SCRIPT

    def wait_for_deployment(self, name: str, *, timeout: float = 180.0, progress: Progress = _quiet,
                            poll_seconds: float = 0.2) -> Deployment:
        """Waits until the deployment is Healthy.

        A deployment that fails, crashes or times out is stopped and kept: its logs stay readable
        and `delete` removes it.

        Raises:
            DeploymentFailedError: it ended Failed or Unhealthy, or was not Healthy after `timeout`
                seconds; the error carries the state, exit code and the last log lines.
        """
        deadline = time.monotonic() + timeout
        last_state = None
        log_lines_seen = 0
        while True:
            deployment = self.runtime.get(name)
            log_lines_seen = self._stream_new_log_lines(name, log_lines_seen, progress)
            if deployment.state != last_state:
                progress(f"{name}: {deployment.state}" + (f" — {deployment.detail}" if deployment.detail else ""))
                last_state = deployment.state
            if deployment.state is DeploymentState.HEALTHY:
                return deployment
            if deployment.state in (DeploymentState.FAILED, DeploymentState.UNHEALTHY):
                self._stop_quietly(name)
                raise DeploymentFailedError(name, deployment.detail or "the server stopped",
                                            exit_code=deployment.exit_code,
                                            logs=self.get_logs(name, tail=LOG_TAIL_ON_FAILURE))
            if time.monotonic() >= deadline:
                self._stop_quietly(name)
                raise DeploymentFailedError(name, f"not Healthy after {timeout:.0f} s; stopped it",
                                            state=str(deployment.state),
                                            logs=self.get_logs(name, tail=LOG_TAIL_ON_FAILURE))
            time.sleep(poll_seconds)

    def _stream_new_log_lines(self, name: str, seen: int, progress: Progress) -> int:
        """Passes the server's log lines written since the last call to `progress` as "log: ..."."""
        lines = self.runtime.logs(name).splitlines()
        if len(lines) < seen:  # a restarted server starts a new log
            seen = 0
        for line in lines[seen:seen + STREAMED_LOG_LINES]:
            progress(f"log: {line}")
        return len(lines)

    def _stop_quietly(self, name: str) -> None:
        """A failed deployment is stopped (no restart loop) and kept, so its logs can be read."""
        try:
            self.runtime.stop(name)
        except DeploymentNotFoundError:
            pass

    def get(self, name: str) -> Deployment:
        return self.runtime.get(name)

    def list(self) -> list[Deployment]:
        return self.runtime.list()

    def get_logs(self, name: str, tail: int | None = None) -> str:
        return self.runtime.logs(name, tail)

    def delete(self, name: str) -> None:
        self.runtime.remove(name)
