"""Time limits for run() and crash-looping scripts, on real deployments (local processes and Docker):
504 with a request id past the limit, requests dropped before they run when they waited too long or
their client left, a worker stuck in run() replaced, a script that kills its worker on every request
shown as Failed with why, and /health answering 503 meanwhile instead of hanging."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import pytest
import requests

from backend.config import Settings
from backend.context import open_modeldeck
from backend.errors import InvalidDeployConfigError
from backend.runtimes import DeployConfig, DeploymentState
from backend.serving.__main__ import parse_args

from .conftest import FIXTURES, copy_home, remove_home_deployments

SCRIPT = FIXTURES / "limits_score.py"


@pytest.fixture(params=["local", "docker"])
def deck(request, trained_home, tmp_path):
    """A home deploying to the runtime of the parameter; everything it deployed is removed afterwards."""
    engine = request.getfixturevalue("engine") if request.param == "docker" else None
    deck = open_modeldeck(Settings(home=copy_home(trained_home, tmp_path / "home"), runtime=request.param))
    yield deck
    for deployment in deck.deployments.list():
        deck.deployments.delete(deployment.name)
    if engine is not None:
        remove_home_deployments(engine, deck.home.path)


def deploy(deck, sample_model, name: str, **config):
    return deck.deployments.deploy_and_wait(sample_model, name, DeployConfig(**config), entry_script=SCRIPT,
                                            timeout=180)


def post(uri: str, timeout: float = 30, **request) -> requests.Response:
    return requests.post(uri, json={"data": [[0]], **request}, timeout=timeout)


def ran(deck, name: str) -> list[str]:
    """The tags of the requests whose run() began, from the deployment's log."""
    return [line.split()[1] for line in deck.deployments.get_logs(name).splitlines() if line.startswith("run ")]


def test_a_run_past_the_limit_is_a_504_with_a_request_id_and_its_stuck_worker_is_replaced(deck, sample_model):
    deployment = deploy(deck, sample_model, "liveness-stuck", run_timeout_s=2)
    uri, base = deployment.scoring_uri, deployment.scoring_uri.rsplit("/score", 1)[0]
    # The limit is part of the record (container labels, record.json): read back, and told by the server.
    assert deck.deployments.get("liveness-stuck").config.run_timeout_s == 2
    assert requests.get(base + "/info", timeout=5).json()["run_timeout_seconds"] == 2
    first_worker = requests.get(base + "/info", timeout=5).json()["worker_pid"]
    behind: dict = {}
    queued = threading.Thread(target=lambda: behind.update(answer=post(uri, tag="behind")))

    started = time.monotonic()
    stuck_call = threading.Thread(target=lambda: behind.update(stuck=post(uri, spin=60, tag="stuck")))
    stuck_call.start()
    time.sleep(0.3)
    queued.start()
    stuck_call.join(timeout=30)
    stuck = behind["stuck"]
    assert stuck.status_code == 504 and time.monotonic() - started < 5  # a CPU-bound run() (the GIL held) too
    body = stuck.json()
    assert body["type"] == "RunTimeout" and body["request_id"] in body["error"]
    assert "2 s after the request arrived" in body["error"] and "--run-timeout" in body["error"]
    queued.join(timeout=30)
    # The one queued behind the stuck run() was never run: 503 (its worker is being replaced: send again)
    # or 504 (its own deadline came first).
    assert behind["answer"].status_code in (503, 504), behind["answer"].text
    if behind["answer"].status_code == 503:
        assert behind["answer"].headers["Retry-After"] == "1" and "send it again" in behind["answer"].json()["error"]

    # Until the new worker serves: a 503 from the old one, or a connection it accepted just before it stopped
    # listening and closed unanswered as it ended (uvicorn's graceful stop closes connections with no request read).
    deadline = time.monotonic() + 30
    answer = None
    while time.monotonic() < deadline:
        try:
            answer = post(uri, tag="after", timeout=10)
        except requests.ConnectionError:
            answer = None
        if answer is not None and answer.status_code == 200:
            break
        time.sleep(0.2)
    assert answer is not None and answer.json() == ["done"]
    assert requests.get(base + "/info", timeout=5).json()["worker_pid"] != first_worker
    assert ran(deck, "liveness-stuck") == ["stuck", "after"]
    logs = deck.deployments.get_logs("liveness-stuck")
    assert body["request_id"] in logs and "replaced because a run() overran the time limit" in logs
    assert "limits_score.py" in logs.split("a run() overran the time limit and cannot be stopped")[1]  # where it was
    assert deck.deployments.get("liveness-stuck").state is DeploymentState.HEALTHY


def test_requests_that_wait_past_the_limit_get_504_and_never_run_while_the_deployment_stays_healthy(
        deck, sample_model):
    # The 20 five-second requests, shorter: 12 one-second requests on one worker with a 3 s limit.
    deployment = deploy(deck, sample_model, "liveness-queue", run_timeout_s=3)
    answers: dict[int, tuple[int, float, dict | list]] = {}

    def call(i: int) -> None:
        sent = time.monotonic()
        answer = post(deployment.scoring_uri, sleep=1, tag=f"q{i}")
        answers[i] = (answer.status_code, time.monotonic() - sent, answer.json())

    callers = [threading.Thread(target=call, args=(i,)) for i in range(12)]
    for caller in callers:
        caller.start()
        time.sleep(0.02)
    time.sleep(1.5)
    assert deck.deployments.get("liveness-queue").state is DeploymentState.HEALTHY
    for caller in callers:
        caller.join(timeout=30)
    served = sorted(i for i, (status, _, _) in answers.items() if status == 200)
    dropped = sorted(i for i, (status, _, _) in answers.items() if status == 504)
    assert 2 <= len(served) <= 4 and len(served) + len(dropped) == 12, answers
    assert max(seconds for _, seconds, _ in answers.values()) < 3 + 2  # nobody waits far past the limit
    # A 504 says whether its run() had begun (it was running at the deadline) or the request waited and never ran.
    begun = [i for i in dropped if "had not returned 3 s after the request arrived" in answers[i][2]["error"]]
    waited = [i for i in dropped if re.search(r"waited 3\.[0-4] s", answers[i][2]["error"])
              and "was not run" in answers[i][2]["error"]]
    assert len(begun) <= 1 and sorted(begun + waited) == dropped and len(waited) >= 7
    assert sorted(ran(deck, "liveness-queue"), key=lambda tag: int(tag[1:])) == [f"q{i}" for i in sorted(served + begun)]
    assert deck.deployments.get("liveness-queue").state is DeploymentState.HEALTHY


def test_a_request_whose_client_left_is_dropped_before_it_runs(deck, sample_model):
    deployment = deploy(deck, sample_model, "liveness-gone", run_timeout_s=30)
    url = urlparse(deployment.scoring_uri)
    busy = threading.Thread(target=lambda: post(deployment.scoring_uri, sleep=2, tag="busy"))
    busy.start()
    time.sleep(0.3)
    body = json.dumps({"data": [[0]], "tag": "gone"}).encode()
    with socket.create_connection((url.hostname, url.port), timeout=5) as conn:
        conn.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(body), body))
        time.sleep(0.3)  # its body arrived: it waits behind the busy one
    busy.join(timeout=30)
    assert post(deployment.scoring_uri, tag="after").json() == ["done"]
    assert ran(deck, "liveness-gone") == ["busy", "after"]


@pytest.mark.parametrize("crash, how", [("exit", "exit code 7"), ("segfault", "signal 11 (SIGSEGV)")])
def test_a_script_that_kills_its_worker_on_every_request_shows_failed_with_why_and_health_answers_503(
        deck, sample_model, crash, how):
    name = f"liveness-{crash}"
    deployment = deploy(deck, sample_model, name)
    base = deployment.scoring_uri.rsplit("/score", 1)[0]
    health: list[int] = []
    deadline = time.monotonic() + 90
    state = deck.deployments.get(name)
    while state.state is not DeploymentState.FAILED and time.monotonic() < deadline:
        try:
            post(deployment.scoring_uri, timeout=10, crash=crash)
        except requests.ConnectionError:
            pass  # the worker died under it
        health.append(requests.get(base + "/health", timeout=2).status_code)  # never a timeout
        state = deck.deployments.get(name)
    assert state.state is DeploymentState.FAILED, state
    assert "ended 3 times in a row" in state.detail or "ended 4 times in a row" in state.detail, state.detail
    assert how in state.detail and "the scoring script likely ends it" in state.detail
    # While the supervisor waits to start the next worker it answers itself: 503 with the reason, at once.
    down = None
    while down is None and time.monotonic() < deadline:
        answer = requests.get(base + "/health", timeout=2)
        down = answer if answer.status_code == 503 else None
        time.sleep(0.1)
    assert down is not None and down.json()["type"] == "CrashLoop" and how in down.json()["crash_loop"]
    assert int(down.headers["Retry-After"]) >= 1
    score = post(deployment.scoring_uri, timeout=2)
    assert score.status_code in (200, 503)  # during the backoff: 503 with the reason, never a hang
    logs = deck.deployments.get_logs(name)
    assert f"ended ({how})" in logs
    if crash == "segfault":
        assert "Fatal Python error: Segmentation fault" in logs and "limits_score.py" in logs
    # Left alone, a new worker that lives long still reads Failed (it would die on the next request)...
    time.sleep(12)
    assert deck.deployments.get(name).state is DeploymentState.FAILED
    # ...until a request is answered: the script runs again.
    deadline = time.monotonic() + 60
    answered = None
    while answered is None and time.monotonic() < deadline:
        reply = post(deployment.scoring_uri, timeout=10)
        answered = reply if reply.status_code == 200 else None
        time.sleep(0.2)
    assert answered is not None and answered.json() == ["done"]
    assert deck.deployments.get(name).state is DeploymentState.HEALTHY


def test_the_limit_comes_from_the_cli_option_or_the_environment_and_is_checked(trained_home, tmp_path):
    assert parse_args(["--script", "s.py", "--model-dir", "m"], {}).run_timeout == 60
    assert parse_args(["--script", "s.py", "--model-dir", "m"], {"MODELDECK_RUN_TIMEOUT": "7.5"}).run_timeout == 7.5
    with pytest.raises(SystemExit):
        parse_args(["--script", "s.py", "--model-dir", "m", "--run-timeout", "0"], {})
    with pytest.raises(InvalidDeployConfigError, match="the run\\(\\) time limit must be between 1 and 3600 s"):
        DeployConfig(run_timeout_s=0.5)
    home = copy_home(trained_home, tmp_path / "cli-home")
    env = {**os.environ, "MODELDECK_HOME": str(home), "MODELDECK_RUNTIME": "local",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    cli = [sys.executable, "-m", "backend"]
    made = subprocess.run([*cli, "deploy", "sklearn_mnist:1", "--name", "liveness-cli", "--run-timeout", "7",
                           "--json"], env=env, capture_output=True, text=True, timeout=240)
    try:
        assert made.returncode == 0, made.stderr
        deployed = json.loads(made.stdout)
        assert deployed["config"]["run_timeout_s"] == 7
        info = requests.get(deployed["scoring_uri"].rsplit("/score", 1)[0] + "/info", timeout=5).json()
        assert info["run_timeout_seconds"] == 7
        listed = json.loads(subprocess.run([*cli, "deployments", "list", "--json"], env=env, capture_output=True,
                                           text=True, timeout=60).stdout)
        assert [d["config"]["run_timeout_s"] for d in listed] == [7]
    finally:
        subprocess.run([*cli, "deployments", "delete", "liveness-cli"], env=env, capture_output=True, timeout=60)
