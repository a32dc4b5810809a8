"""Deployments on the local runtime: real scoring-server processes on 127.0.0.1."""

import json
import os
import signal
import time
from pathlib import Path

import pytest

from backend.datasets import load_mnist_test
from backend.errors import (
    DeploymentError,
    DeploymentExistsError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    EndpointUnreachableError,
    IncompatibleModelError,
    InvalidDeploymentNameError,
)
from backend.inspection.evaluation import evaluate_endpoint, supports_binary
from backend.progress import ProgressKind
from backend.runtimes import DeployConfig, DeploymentState, LocalRuntime

from .conftest import FIXTURES


def deploy_and_wait(deck, name, **kwargs):
    model = deck.registry.get("sklearn_mnist")
    return deck.deployments.deploy_and_wait(model, name, DeployConfig(tags={"team": "qa"}, description="t"),
                                            timeout=180, **kwargs)


def live_processes_mentioning(text: str) -> list[int]:
    """Pids of running (not zombie) processes whose command line contains `text`."""
    found = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
            cmdline = (proc / "cmdline").read_bytes()
        except (OSError, IndexError):
            continue
        if state not in ("Z", "X") and text.encode() in cmdline:
            found.append(int(proc.name))
    return found


def pid_of(deck, name) -> int:
    return json.loads((deck.settings.local_deployments_dir / name / "process.json").read_text())["pid"]


def test_deploy_score_and_delete_leaves_no_process(local_deck, sample_model):
    messages = []
    deck = local_deck
    deployment = deck.deployments.deploy_and_wait(sample_model, "mnist-local", timeout=180, progress=messages.append)
    assert deployment.state is DeploymentState.HEALTHY and deployment.runtime == "local"
    assert deployment.scoring_uri.startswith("http://127.0.0.1:") and deployment.scoring_uri.endswith("/score")
    assert any(m.kind is ProgressKind.STATE and "Healthy" in m.message for m in messages)
    evaluation = evaluate_endpoint(deck.client, deployment.scoring_uri, load_mnist_test())
    assert evaluation.accuracy == pytest.approx(sample_model.metrics["accuracy"], abs=1e-4)
    target = str(deck.settings.local_deployments_dir / "mnist-local")
    assert live_processes_mentioning(target)
    deck.deployments.delete("mnist-local")
    assert live_processes_mentioning(target) == []
    assert deck.deployments.list() == []
    with pytest.raises(EndpointUnreachableError):
        deck.client.run(deployment.scoring_uri, [[0.0] * 784])


def test_tutorial_script_deploys_unchanged(local_deck, sample_model_dir):
    import joblib

    deployment = deploy_and_wait(local_deck, "tutorial", entry_script=FIXTURES / "tutorial_score.py")
    X = load_mnist_test().X[:50]
    expected = joblib.load(sample_model_dir / "sklearn_mnist_model.pkl").predict(X).tolist()
    assert local_deck.client.run(deployment.scoring_uri, X.tolist()) == expected
    assert deployment.entry_script == "tutorial_score.py"
    assert not supports_binary(local_deck.client, deployment.scoring_uri)  # so clients send it JSON
    evaluation = evaluate_endpoint(local_deck.client, deployment.scoring_uri, load_mnist_test(), use_binary=False)
    assert evaluation.accuracy == pytest.approx(local_deck.registry.get("sklearn_mnist").metrics["accuracy"],
                                                abs=1e-4)


def test_a_new_runtime_instance_rediscovers_running_deployments(local_deck):
    deployment = deploy_and_wait(local_deck, "found-again")
    fresh = LocalRuntime(local_deck.settings.local_deployments_dir)
    [found] = fresh.list()
    assert (found.name, found.state, found.scoring_uri) == ("found-again", DeploymentState.HEALTHY,
                                                             deployment.scoring_uri)
    assert found.config.tags == {"team": "qa"} and found.model_id == "sklearn_mnist:1"


def test_failing_init_ends_failed_with_the_traceback_in_the_logs(local_deck, sample_model):
    local_deck.deployments.deploy(sample_model, "broken", entry_script=FIXTURES / "failing_init_score.py")
    with pytest.raises(DeploymentFailedError) as caught:
        local_deck.deployments.wait_for_deployment("broken", timeout=180)
    error = caught.value
    assert error.state == "Failed" and error.exit_code == 3
    assert "weights are corrupt" in error.logs and "Traceback" in error.logs
    assert local_deck.deployments.get("broken").state is DeploymentState.FAILED
    assert "init() failed" in local_deck.deployments.get_logs("broken")
    local_deck.deployments.delete("broken")
    assert local_deck.deployments.list() == []


def test_a_killed_server_shows_as_failed(local_deck):
    deploy_and_wait(local_deck, "killed")
    os.killpg(pid_of(local_deck, "killed"), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while local_deck.deployments.get("killed").state is not DeploymentState.FAILED and time.monotonic() < deadline:
        time.sleep(0.05)
    assert local_deck.deployments.get("killed").state is DeploymentState.FAILED


def test_a_taken_name_is_refused(local_deck, sample_model):
    deploy_and_wait(local_deck, "taken")
    with pytest.raises(DeploymentExistsError, match="'taken' exists already"):
        local_deck.deployments.deploy(sample_model, "taken")


@pytest.mark.parametrize("name", ["UPPER", "a", "under_score", "-lead", "trail-", "x" * 64])
def test_invalid_names_are_refused_before_anything_starts(local_deck, sample_model, name):
    with pytest.raises(InvalidDeploymentNameError, match="3 to 63 lowercase letters"):
        local_deck.deployments.deploy(sample_model, name)
    assert local_deck.deployments.list() == []


def test_unknown_deployment_is_a_clear_error(local_deck):
    with pytest.raises(DeploymentNotFoundError, match="no deployment named 'ghost'"):
        local_deck.deployments.get_logs("ghost")
    with pytest.raises(DeploymentNotFoundError):
        local_deck.deployments.delete("ghost")


def test_a_model_saved_with_another_sklearn_is_refused(local_deck, tmp_path):
    path = tmp_path / "old.pkl"
    path.write_bytes((local_deck.registry.blobs_dir / local_deck.registry.get("sklearn_mnist").files[0].sha256)
                     .read_bytes())
    old = local_deck.registry.register("old-model", [path], library_versions={"scikit-learn": "0.24.2"})
    with pytest.raises(IncompatibleModelError, match="saved with scikit-learn 0.24.2 but this runtime serves with"):
        local_deck.deployments.deploy(old, "old-model")
    assert local_deck.deployments.list() == []


def test_a_port_taken_between_choosing_and_binding_fails_with_the_reason(local_deck, sample_model, monkeypatch):
    import socket

    from backend.runtimes import local

    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        monkeypatch.setattr(local, "free_port", lambda: squatter.getsockname()[1])
        local_deck.deployments.deploy(sample_model, "clash")
        with pytest.raises(DeploymentFailedError) as caught:
            local_deck.deployments.wait_for_deployment("clash", timeout=180)
    assert caught.value.exit_code == 4 and "cannot listen on 127.0.0.1" in caught.value.logs


def test_an_upload_without_a_signature_gets_the_one_its_server_reports(local_deck, sample_model):
    blob = local_deck.registry.blobs_dir / sample_model.files[0].sha256
    upload = local_deck.registry.register_bytes("uploaded", {"digits.pkl": blob.read_bytes()})
    assert not upload.signature.known
    messages = []
    deployment = local_deck.deployments.deploy_and_wait(upload, "uploaded", timeout=180, progress=messages.append)
    info = local_deck.client.info(deployment.scoring_uri)
    assert info["n_features"] == 784 and info["classes"] == list(range(10))
    recorded = local_deck.registry.get("uploaded").signature
    assert recorded.n_features == 784 and recorded.class_labels == tuple("0123456789")
    assert recorded.source == "confirmed by deployment uploaded"
    assert any("recorded uploaded:1's signature" in m.message for m in messages)


def test_a_deployment_folder_from_before_records_is_listed_and_deletable(local_deck):
    legacy = local_deck.settings.local_deployments_dir / "legacy"
    legacy.mkdir(parents=True)
    (legacy / "meta.json").write_text(json.dumps({
        "name": "legacy", "model_name": "sklearn_mnist", "model_version": 1, "port": 9, "pid": 2**22 + 7,
        "entry_script": "score.py", "created_at": "2026-11-01T00:00:00+00:00",
        "config": {"cpu_cores": 0.05, "memory_gb": 1.0, "tags": {}, "description": "old rules"}}))
    [found] = local_deck.deployments.list()
    assert (found.name, found.state, found.config.cpu_cores) == ("legacy", DeploymentState.FAILED, 0.05)
    local_deck.deployments.delete("legacy")
    assert not legacy.exists() and local_deck.deployments.list() == []


def test_health_and_readiness_answer_while_run_is_busy_and_the_deployment_stays_healthy(local_deck, sample_model):
    import threading

    import requests

    deployment = local_deck.deployments.deploy_and_wait(sample_model, "busy", timeout=180,
                                                        entry_script=FIXTURES / "slow_score.py")
    uri = deployment.scoring_uri
    base = uri.rsplit("/score", 1)[0]
    slow: dict = {}
    caller = threading.Thread(target=lambda: slow.update(
        answer=requests.post(uri, json={"data": [[0]], "sleep": 6}, timeout=60).json()))
    caller.start()
    time.sleep(0.5)  # the slow call reaches run() (which then sleeps for 6 s)
    assert requests.get(base + "/health", timeout=3).json() == {"status": "alive"}
    assert requests.get(base + "/ready", timeout=3).json() == {"ready": True}
    assert local_deck.deployments.get("busy").state is DeploymentState.HEALTHY
    assert caller.is_alive() and "answer" not in slow  # run() was still busy all along
    caller.join(timeout=60)
    assert slow["answer"] == ["done"]


def test_sys_exit_inside_run_is_a_json_500_and_the_server_keeps_serving(local_deck, sample_model):
    import requests

    uri = local_deck.deployments.deploy_and_wait(sample_model, "exits", timeout=180,
                                                 entry_script=FIXTURES / "slow_score.py").scoring_uri
    answer = requests.post(uri, json={"data": [[0]], "exit": True}, timeout=30)
    assert answer.status_code == 500 and answer.json()["type"] == "SystemExit"
    assert requests.post(uri, json={"data": [[0]]}, timeout=30).json() == ["done"]
    assert "SystemExit" in local_deck.deployments.get_logs("exits")


def test_an_entry_script_must_be_a_python_file(local_deck, sample_model, tmp_path):
    notes = tmp_path / "notes.txt"
    notes.write_text("def init(): pass\n")
    with pytest.raises(DeploymentError, match="is not a Python file: give a .py file"):
        local_deck.deployments.deploy(sample_model, "txt-script", entry_script=notes)
    assert local_deck.deployments.list() == []
