"""Deployments on the local runtime: real scoring-server processes on 127.0.0.1."""

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest

from backend.data.builtin import load_mnist_test
from backend.errors import (
    DeploymentError,
    DeploymentExistsError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    EndpointUnreachableError,
    IncompatibleModelError,
    InvalidDeploymentNameError,
)
from backend.inspection.evaluation import evaluate_endpoint
from backend.progress import ProgressKind
from backend.runtimes import DeployConfig, DeploymentState
from backend.runtimes.local import LocalRuntime
from backend.services.reaching import reach_of

from .conftest import FIXTURES


def deploy_and_wait(deck, name, **kwargs):
    model = deck.registry.get("sklearn_mnist", 1)
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
    # the built-in script takes the 8-bit pixels themselves: a quarter of the bytes, the same answers
    assert reach_of(deck, deployment).npy_dtypes == ("float32", "uint8")
    as_bytes = evaluate_endpoint(deck.client, deployment.scoring_uri, load_mnist_test(), uint8=True)
    assert np.array_equal(as_bytes.predictions, evaluation.predictions)
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
    assert not reach_of(local_deck, deployment).binary  # so clients send it JSON
    assert local_deck.client.npy_dtypes(deployment.scoring_uri, instance=deployment.record.uid) == ()
    evaluation = evaluate_endpoint(local_deck.client, deployment.scoring_uri, load_mnist_test(), use_binary=False)
    assert evaluation.accuracy == pytest.approx(local_deck.registry.get("sklearn_mnist", 1).metrics["accuracy"],
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


def kill_and_wait_failed(deck, name) -> DeploymentState:
    """SIGKILLs the server's whole group; its state once it reads Failed (or after 30 s)."""
    os.killpg(pid_of(deck, name), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while deck.deployments.get(name).state is not DeploymentState.FAILED and time.monotonic() < deadline:
        time.sleep(0.05)
    return deck.deployments.get(name).state


def test_a_killed_server_shows_as_failed(local_deck):
    deploy_and_wait(local_deck, "killed")
    assert kill_and_wait_failed(local_deck, "killed") is DeploymentState.FAILED


def test_deleting_a_dead_server_leaves_the_process_group_that_reused_its_number_alone(local_deck):
    """Group ids are reused (pid_max 32768 wraps in minutes on a busy machine): a delete must not signal a group that
    took a dead server's number. The reuse is made by pointing the dead server's process.json at another group."""
    import subprocess

    deploy_and_wait(local_deck, "long-dead")
    assert kill_and_wait_failed(local_deck, "long-dead") is DeploymentState.FAILED
    bystander = subprocess.Popen(["sleep", "60"], start_new_session=True)  # a group of its own: pgid == its pid
    try:
        process = local_deck.settings.local_deployments_dir / "long-dead" / "process.json"
        process.write_text(json.dumps({**json.loads(process.read_text()), "pid": bystander.pid}))
        local_deck.deployments.delete("long-dead")
        with pytest.raises(subprocess.TimeoutExpired):  # a second for a signal sent to it to land
            bystander.wait(timeout=1)
    finally:
        bystander.kill()
        bystander.wait()


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
    path.write_bytes((local_deck.registry.blobs_dir / local_deck.registry.get("sklearn_mnist", 1).files[0].sha256)
                     .read_bytes())
    old = local_deck.registry.register("old-model", [path], library_versions={"scikit-learn": "0.24.2"})
    with pytest.raises(IncompatibleModelError, match="saved with scikit-learn 0.24.2 but this runtime serves with"):
        local_deck.deployments.deploy(old, "old-model")
    assert local_deck.deployments.list() == []


def test_the_server_listens_on_the_port_the_runtime_bound_and_a_dead_server_leaves_it_refusing(local_deck,
                                                                                                sample_model):
    """The runtime binds the port (no race with another process) and hands it to the server, which alone
    holds it: once the server's processes are killed, a connection is refused at once (not left waiting in
    a backlog nobody accepts from), and the deployment reads Failed with the exit code."""
    import socket

    from benchmarks.common import group_pids

    deployment = local_deck.deployments.deploy_and_wait(sample_model, "held", timeout=180)
    port = int(deployment.scoring_uri.split(":")[2].split("/")[0])
    folder = local_deck.settings.local_deployments_dir / "held"
    group = json.loads((folder / "process.json").read_text())["pid"]
    servers = [pid for pid in group_pids(group) if b"serving" in Path(f"/proc/{pid}/cmdline").read_bytes()
               and not Path(f"/proc/{pid}/cmdline").read_bytes().startswith((b"/bin/bash", b"/usr/bin/bwrap"))]
    assert len(servers) == 2  # the supervisor and its worker
    for pid in servers:
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 15
    while local_deck.deployments.get("held").state is not DeploymentState.FAILED and time.monotonic() < deadline:
        time.sleep(0.1)
    failed = local_deck.deployments.get("held")
    assert failed.state is DeploymentState.FAILED and failed.exit_code == 137, failed
    started = time.monotonic()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    assert time.monotonic() - started < 1.0


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


def test_state_comes_from_the_process_group_and_delete_ends_the_whole_group(local_deck):
    deploy_and_wait(local_deck, "grouped")
    wrapper = pid_of(local_deck, "grouped")
    server = [pid for pid in live_processes_mentioning(str(local_deck.settings.local_deployments_dir / "grouped"))
              if pid != wrapper]
    assert server, "the server runs under the wrapper, in its process group"
    os.kill(wrapper, signal.SIGKILL)  # the wrapper dies; the server does not
    time.sleep(0.5)
    assert local_deck.deployments.get("grouped").state is DeploymentState.HEALTHY
    local_deck.deployments.delete("grouped")
    deadline = time.monotonic() + 15
    while live_processes_mentioning(str(local_deck.settings.local_deployments_dir / "grouped")) \
            and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live_processes_mentioning(str(local_deck.settings.local_deployments_dir / "grouped")) == []


def test_a_deploy_killed_half_way_is_listed_as_interrupted_and_delete_frees_the_name(local_deck, cli_env):
    """The CLI is frozen (SIGSTOP) as soon as the deployment's record exists, then killed."""
    import subprocess
    import sys

    deck = local_deck
    env = {**cli_env, "MODELDECK_HOME": str(deck.home.path)}
    record = deck.settings.local_deployments_dir / "halfway" / "record.json"
    cli = subprocess.Popen([sys.executable, "-m", "backend", "deploy", "sklearn_mnist", "--name", "halfway"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while not record.exists() and time.monotonic() < deadline and cli.poll() is None:
            time.sleep(0.001)
        cli.send_signal(signal.SIGSTOP)
    finally:
        cli.kill()
        cli.wait(timeout=10)
    found = deck.deployments.get("halfway")
    assert "halfway" in [d.name for d in deck.deployments.list()]
    if not (record.parent / "process.json").exists():  # caught before the server started
        assert found.state is DeploymentState.FAILED and found.detail.startswith("interrupted"), found
    deck.deployments.delete("halfway")
    assert not record.parent.exists() and list((deck.home.path / "staging").iterdir()) == []
    assert live_processes_mentioning(str(record.parent)) == []
    assert deploy_and_wait(deck, "halfway").state is DeploymentState.HEALTHY


def test_an_init_that_never_returns_times_out_at_the_deadline_and_is_stopped(local_deck, sample_model):
    started = time.monotonic()
    with pytest.raises(DeploymentFailedError, match="timed out after 5 s"):
        local_deck.deployments.deploy_and_wait(sample_model, "hangs", timeout=5,
                                               entry_script=FIXTURES / "hanging_init_score.py")
    assert time.monotonic() - started < 5 + 8
    assert live_processes_mentioning(str(local_deck.settings.local_deployments_dir / "hangs")) == []
    assert local_deck.deployments.get("hangs").state is DeploymentState.FAILED


def test_key_auth_on_the_local_runtime_keeps_keys_private_and_rotates_them(local_deck, sample_model):
    import requests

    deployment = local_deck.deployments.deploy_and_wait(sample_model, "keyed", DeployConfig(auth_enabled=True),
                                                        timeout=180)
    keys_file = local_deck.settings.local_deployments_dir / "keyed" / "keys" / "keys.json"
    assert keys_file.stat().st_mode & 0o777 == 0o600
    row = load_mnist_test().X[:1].tolist()
    assert requests.post(deployment.scoring_uri, json={"data": row}, timeout=10).status_code == 401
    old = local_deck.deployments.keys("keyed")
    new = local_deck.deployments.regen_key("keyed", "secondary")
    assert new.primary == old.primary and keys_file.stat().st_mode & 0o777 == 0o600
    bad = requests.post(deployment.scoring_uri, json={"data": row}, timeout=10,
                        headers={"Authorization": f"Bearer {old.secondary}"})
    assert bad.status_code == 401
    assert local_deck.client.run(deployment.scoring_uri, row, key=new.secondary) == [7]


def test_the_request_snippets_of_a_keyed_deployment_fetch_the_key_and_get_an_answer(local_deck, sample_model):
    """The curl and Python snippets the Test page shows, run as a user would paste them."""
    import subprocess
    import sys

    from backend.inspection.snippets import curl_snippet, python_snippet

    deployment = local_deck.deployments.deploy_and_wait(sample_model, "pasted", DeployConfig(auth_enabled=True),
                                                        timeout=180)
    keyed = ("pasted", str(local_deck.home.path))
    row = load_mnist_test().X[0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    env.pop("MODELDECK_HOME", None)
    curl = subprocess.run(["bash", "-c", curl_snippet(deployment.scoring_uri, row, keyed)], env=env,
                          capture_output=True, text=True, timeout=120)
    assert curl.returncode == 0 and json.loads(curl.stdout) == [7], curl.stderr
    python = subprocess.run([sys.executable, "-c", python_snippet(deployment.scoring_uri, row, keyed)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert python.returncode == 0 and python.stdout.strip() == "[7]", python.stderr
    local_deck.deployments.delete("pasted")
    failed = subprocess.run(["bash", "-c", curl_snippet(deployment.scoring_uri, row, keyed)], env=env,
                            capture_output=True, text=True, timeout=120)
    assert failed.returncode != 0 and failed.stdout == ""  # no key, no request sent


def test_ending_a_half_made_deployments_processes_spares_a_deployment_whose_name_it_begins(tmp_path):
    import subprocess
    import sys

    from backend.runtimes.local import _end_mentioning

    (tmp_path / "demo").mkdir()
    (tmp_path / "demo-2").mkdir()
    mine = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path / "demo" / "app")])
    other = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)", str(tmp_path / "demo-2" / "app")])
    try:
        _end_mentioning(tmp_path / "demo")
        assert mine.wait(timeout=10) == -signal.SIGKILL and other.poll() is None
    finally:
        for proc in (mine, other):
            proc.kill()
            proc.wait(timeout=10)
