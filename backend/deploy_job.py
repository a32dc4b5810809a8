"""A deploy on a thread of its own (`deploy_and_wait`, the one deploy path), so a page shows its progress
while it runs and stays usable: a rerun of the page neither cuts the deploy short nor starts another."""

from __future__ import annotations

import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import DeploymentError, ModelDeckError
from .progress import ProgressEvent
from .registry import Model
from .runtimes import DeployConfig
from .runtimes.base import Deployment

if TYPE_CHECKING:
    from .context import ModelDeck


@dataclass(frozen=True)
class UploadedScript:
    """A scoring script given as bytes (say, uploaded on a page): its file name and content."""

    name: str
    content: bytes


class DeployJob:
    """One deploy running in the background. `events` grows as it goes; once `done`, exactly one of
    `deployment` (Healthy) and `error` is set."""

    def __init__(self, model: Model, name: str) -> None:
        self.model = model
        self.name = name
        self.events: list[ProgressEvent] = []
        self.deployment: Deployment | None = None
        self.error: Exception | None = None
        self._finished = threading.Event()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits until the deploy ended; returns whether it did within `timeout` seconds."""
        return self._finished.wait(timeout)


def start_deploy(deck: ModelDeck, model: Model, name: str, config: DeployConfig, *, target: str | None = None,
                 script: UploadedScript | None = None, timeout: float = 180.0) -> DeployJob:
    """Starts `deck.deployments.deploy_and_wait(...)` on a thread and returns its job at once.

    Args:
        script: a scoring script with init()/run(raw_data) (as `--entry-script` of `modeldeck deploy`);
            None: the model's own score.py, else the built-in scikit-learn script.

    Raises:
        DeploymentError: `script` is not a .py file name.
    """
    if script is not None and (Path(script.name).suffix != ".py" or Path(script.name).name != script.name):
        raise DeploymentError(f"entry script {script.name!r} is not a Python file: give a .py file with init() "
                              "and run(raw_data)")
    job = DeployJob(model, name)

    def run() -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="modeldeck-script-") as folder:
                entry_script = None
                if script is not None:
                    entry_script = Path(folder) / script.name
                    entry_script.write_bytes(script.content)
                job.deployment = deck.deployments.deploy_and_wait(model, name, config, target=target,
                                                                  entry_script=entry_script, timeout=timeout,
                                                                  progress=job.events.append)
        except ModelDeckError as e:
            job.error = e
        except Exception as e:  # a fault below the backend's errors: still a message, never a dead page
            job.error = DeploymentError(f"the deploy stopped: {type(e).__name__}: {e}")
        finally:
            job._finished.set()

    threading.Thread(target=run, name=f"modeldeck-deploy-{name}", daemon=True).start()
    return job
