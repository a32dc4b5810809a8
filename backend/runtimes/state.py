"""A deployment's state from what its runtime sees of its server: one rule for every runtime.

A runtime says what it sees in the words every runtime has (a `ServerView`: created, running,
restarting or ended; whether /ready answered; exit code and restarts); `deployment_state` turns that
into the tutorial's Transitioning/Healthy/Unhealthy/Failed and the reason. Pure: no engine, no clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from .base import DeploymentState

STARTUP_GRACE_SECONDS = 300  # a server that runs but has not answered /ready for this long is Unhealthy
INIT_FAILED_EXIT_CODE = 3  # serving/__main__.py: init() failed, then the server was stopped
SIGNAL_ENDS = {137: "killed (SIGKILL)", 143: "stopped (SIGTERM)"}
INTERRUPTED = "interrupted: the deploy that created it stopped before starting it (delete it, then deploy again)"


class Phase(StrEnum):
    """Where a deployment's server is in its life, as any runtime can tell."""

    CREATED = "created"  # made, its server not started yet
    RUNNING = "running"  # a process of its server runs
    RESTARTING = "restarting"  # it ended and its runtime starts it again
    ENDED = "ended"  # no process of its server runs, and none will be started
    OTHER = "other"  # none of these (a paused container): `ServerView.status` says what


@dataclass(frozen=True)
class ServerView:
    """What a runtime sees of a deployment's server now.

    Attributes:
        server: how the reasons name it ("the container", "the server process").
        phase: where it is in its life.
        status: the runtime's own word for a phase that is OTHER ("paused").
        ready: its /ready answered.
        init_failed: why it cannot serve, as the server itself said (init() failed, workers keep dying).
        started_at: when it started, in seconds since the epoch (None: unknown), for the startup grace.
        restarts: how often its runtime started it again after it ended.
        exit_code: how it last ended (None: it has not, or nothing recorded it).
        cause: why it ended, when the runtime knows more than its exit code says (an out-of-memory kill).
        stopped_by: the command that stopped it from outside ModelDeck, when the runtime can tell ("docker stop").
        creator_gone: the deploy that made it stopped before starting it.
    """

    server: str
    phase: Phase
    status: str = ""
    ready: bool = False
    init_failed: str | None = None
    started_at: float | None = None
    restarts: int = 0
    exit_code: int | None = None
    cause: str = ""
    stopped_by: str = ""
    creator_gone: bool = False


def deployment_state(view: ServerView, now: float) -> tuple[DeploymentState, str, int | None]:
    """(state, reason, exit code) of a deployment whose server looks like `view` at time `now`."""
    running, code = view.phase is Phase.RUNNING, view.exit_code
    why = view.cause or SIGNAL_ENDS.get(code or 0, "")
    why = f" — {why}" if why else ""
    if running and view.ready:
        return DeploymentState.HEALTHY, "", None
    if running and view.init_failed:
        return DeploymentState.FAILED, view.init_failed, None
    if code == INIT_FAILED_EXIT_CODE and (not running or view.restarts > 0):
        return DeploymentState.FAILED, "init() failed (exit code 3): its traceback is in the logs", code
    if view.phase is Phase.ENDED:
        if view.stopped_by:
            return (DeploymentState.FAILED, f"{view.server} was stopped from outside ModelDeck ({view.stopped_by}: "
                                            f"exit code {code}): delete it and deploy again", code)
        if code is None:
            return DeploymentState.FAILED, f"{view.server} is gone (killed, or the machine restarted)", None
        return DeploymentState.FAILED, f"{view.server} exited with code {code}{why}", code
    if view.phase is Phase.RESTARTING or (running and view.restarts > 0):
        return (DeploymentState.UNHEALTHY,
                f"the server crashed and restarted {view.restarts} time(s), last exit code {code}{why}", code)
    if running:
        if view.started_at is not None and now - view.started_at > STARTUP_GRACE_SECONDS:
            return DeploymentState.UNHEALTHY, f"{view.server} runs but does not answer", None
        return DeploymentState.TRANSITIONING, "", None
    if view.phase is Phase.CREATED:
        if view.creator_gone:
            return DeploymentState.FAILED, INTERRUPTED, None
        return DeploymentState.TRANSITIONING, "being created", None
    return DeploymentState.UNHEALTHY, f"{view.server} is {view.status or 'in an unknown state'}", code
