"""A deploy, the one deploy path (`Deployments.deploy_and_wait`): waited for where it was started (the CLI),
or on a thread of its own (`start_deploy`), so a page shows its progress while it runs and stays usable: a
rerun of the page neither cuts the deploy short nor starts another.

The jobs of this process are kept by home and deployment name until their outcome was shown
(`deploys_of`, `forget`): a new session of a page (a reload) finds a deploy started by another one,
and no second deploy of a name starts while one runs.
"""

from __future__ import annotations

import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import DeploymentError, DeploymentExistsError, ModelDeckError
from ..progress import Progress, ProgressEvent, quiet
from ..registry import Model
from ..runtimes import DeployConfig
from ..runtimes.base import Deployment

if TYPE_CHECKING:
    from ..context import ModelDeck


@dataclass(frozen=True)
class UploadedScript:
    """A scoring script given as bytes (say, uploaded on a page): its file name and content."""

    name: str
    content: bytes


ENDED_KEPT_SECONDS = 600.0  # an ended deploy whose outcome no page showed is offered this long after


class DeployJob:
    """One deploy running in the background. `events` grows as it goes; once `done`, exactly one of
    `deployment` (Healthy) and `error` is set."""

    def __init__(self, model: Model, name: str, home: Path | None = None) -> None:
        self.model = model
        self.name = name
        self.home = home  # the ModelDeck home it deploys from (None: not kept for other sessions)
        self.events: list[ProgressEvent] = []
        self.deployment: Deployment | None = None
        self.error: Exception | None = None
        self.ended_at: float | None = None  # time.monotonic() when it ended
        self._finished = threading.Event()

    @property
    def done(self) -> bool:
        return self._finished.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        """Waits until the deploy ended; returns whether it did within `timeout` seconds."""
        return self._finished.wait(timeout)


_jobs: dict[tuple[Path, str], DeployJob] = {}  # (home, deployment name): kept until its outcome was shown
_jobs_lock = threading.Lock()


def deploys_of(home: Path) -> list[DeployJob]:
    """The deploys from `home` started in this process that still run, or ended (within
    ENDED_KEPT_SECONDS) with an outcome no page has shown yet (`forget`), oldest first."""
    now = time.monotonic()
    with _jobs_lock:
        for key, job in list(_jobs.items()):
            if job.ended_at is not None and now - job.ended_at > ENDED_KEPT_SECONDS:
                del _jobs[key]
        return [job for (where, _), job in _jobs.items() if where == Path(home)]


def forget(job: DeployJob) -> None:
    """Stops offering `job` to other sessions: its outcome was shown. Nothing when it is not kept."""
    if job.home is None:
        return
    with _jobs_lock:
        if _jobs.get((job.home, job.name)) is job:
            del _jobs[(job.home, job.name)]


def deploy_and_wait(deck: ModelDeck, model: Model, name: str, config: DeployConfig, *, runtime: str | None = None,
                    entry_script: Path | None = None, timeout: float = 180.0,
                    progress: Progress = quiet) -> Deployment:
    """Deploys `model` as `name` and returns it Healthy within `timeout` seconds, `progress` told each step
    (the CLI's deploy: it waits where it was started).

    Raises:
        ModelDeckError: why it did not become Healthy (nothing of it is left then).
    """
    return deck.deployments.deploy_and_wait(model, name, config, runtime=runtime, entry_script=entry_script,
                                            timeout=timeout, progress=progress)


def start_deploy(deck: ModelDeck, model: Model, name: str, config: DeployConfig, *, runtime: str | None = None,
                 script: UploadedScript | None = None, timeout: float = 180.0) -> DeployJob:
    """Starts `deck.deployments.deploy_and_wait(...)` on a thread and returns its job at once.

    Args:
        script: a scoring script with init()/run(raw_data) (as `--entry-script` of `modeldeck deploy`);
            None: the model's own score.py, else the built-in scikit-learn script.

    Raises:
        DeploymentError: `script` is not a .py file name.
        DeploymentExistsError: a deploy of `name` from this home runs already (in this process).
    """
    if script is not None and (Path(script.name).suffix != ".py" or Path(script.name).name != script.name):
        raise DeploymentError(f"entry script {script.name!r} is not a Python file: give a .py file with init() "
                              "and run(raw_data)")
    job = DeployJob(model, name, deck.home.path)
    with _jobs_lock:
        running = _jobs.get((deck.home.path, name))
        if running is not None and not running.done:
            raise DeploymentExistsError(f"{name} is being deployed already ({running.model.id}): wait for it")
        _jobs[(deck.home.path, name)] = job

    def run() -> None:
        try:
            with tempfile.TemporaryDirectory(prefix="modeldeck-script-") as folder:
                entry_script = None
                if script is not None:
                    entry_script = Path(folder) / script.name
                    entry_script.write_bytes(script.content)
                job.deployment = deck.deployments.deploy_and_wait(model, name, config, runtime=runtime,
                                                                  entry_script=entry_script, timeout=timeout,
                                                                  progress=job.events.append)
        except ModelDeckError as e:
            job.error = e
        except Exception as e:  # a fault below the backend's errors: still a message, never a dead page
            job.error = DeploymentError(f"the deploy stopped: {type(e).__name__}: {e}")
        finally:
            job.ended_at = time.monotonic()
            job._finished.set()

    threading.Thread(target=run, name=f"modeldeck-deploy-{name}", daemon=True).start()
    return job
