"""The one state rule of every runtime: the same facts read the same state on Docker and locally, and
each runtime's own view of its server maps onto it (pure: no engine, no process)."""

from __future__ import annotations

import pytest

from backend.runtimes.base import DeploymentState
from backend.runtimes.docker import container_view
from backend.runtimes.state import STARTUP_GRACE_SECONDS, Phase, ServerView, deployment_state

STARTED = 1_700_000_000.0
SERVERS = ("the container", "the server process")


@pytest.mark.parametrize("server", SERVERS)
def test_a_silent_server_is_transitioning_until_the_grace_period_ends(server):
    view = ServerView(server, Phase.RUNNING, started_at=STARTED)
    assert deployment_state(view, STARTED + STARTUP_GRACE_SECONDS - 1) == (DeploymentState.TRANSITIONING, "", None)
    assert deployment_state(view, STARTED + STARTUP_GRACE_SECONDS + 1) == \
        (DeploymentState.UNHEALTHY, f"{server} runs but does not answer", None)


@pytest.mark.parametrize("server", SERVERS)
def test_ready_is_healthy_and_a_server_saying_why_it_cannot_serve_is_failed(server):
    assert deployment_state(ServerView(server, Phase.RUNNING, ready=True), STARTED) == \
        (DeploymentState.HEALTHY, "", None)
    said = "init() failed: RuntimeError: no weights (the traceback is in the logs)"
    assert deployment_state(ServerView(server, Phase.RUNNING, init_failed=said), STARTED) == \
        (DeploymentState.FAILED, said, None)


@pytest.mark.parametrize("server", SERVERS)
def test_an_ended_server_is_failed_with_its_exit_code_and_signal_or_gone(server):
    assert deployment_state(ServerView(server, Phase.ENDED, exit_code=1), STARTED) == \
        (DeploymentState.FAILED, f"{server} exited with code 1", 1)
    assert deployment_state(ServerView(server, Phase.ENDED, exit_code=137), STARTED) == \
        (DeploymentState.FAILED, f"{server} exited with code 137 — killed (SIGKILL)", 137)
    assert deployment_state(ServerView(server, Phase.ENDED, exit_code=3), STARTED) == \
        (DeploymentState.FAILED, "init() failed (exit code 3): its traceback is in the logs", 3)
    assert deployment_state(ServerView(server, Phase.ENDED), STARTED) == \
        (DeploymentState.FAILED, f"{server} is gone (killed, or the machine restarted)", None)


@pytest.mark.parametrize("server", SERVERS)
def test_a_server_not_started_yet_is_transitioning_or_interrupted_when_its_deploy_died(server):
    assert deployment_state(ServerView(server, Phase.CREATED), STARTED) == \
        (DeploymentState.TRANSITIONING, "being created", None)
    state, detail, _ = deployment_state(ServerView(server, Phase.CREATED, creator_gone=True), STARTED)
    assert state is DeploymentState.FAILED and detail.startswith("interrupted: the deploy that created it stopped")


def test_a_crash_looping_server_is_unhealthy_and_a_failed_init_stays_failed_while_retried():
    assert deployment_state(ServerView("the container", Phase.RESTARTING, restarts=2, exit_code=1), STARTED) == \
        (DeploymentState.UNHEALTHY, "the server crashed and restarted 2 time(s), last exit code 1", 1)
    assert deployment_state(ServerView("the container", Phase.RUNNING, restarts=1, exit_code=3), STARTED)[0] \
        is DeploymentState.FAILED


def test_a_container_reads_as_the_shared_view():
    attrs = {"State": {"Status": "exited", "ExitCode": 143, "OOMKilled": False, "StartedAt": "2026-11-26T06:00:00Z"},
             "RestartCount": 0, "HostConfig": {"Memory": 2**30}}
    view = container_view(attrs, ready=False)
    assert (view.server, view.phase, view.exit_code, view.stopped_by) == ("the container", Phase.ENDED, 143, "docker stop")
    paused = container_view({**attrs, "State": {**attrs["State"], "Status": "paused"}}, ready=False)
    assert deployment_state(paused, STARTED) == (DeploymentState.UNHEALTHY, "the container is paused", 143)
