"""A probing model (a pickle whose __reduce__ runs code when loaded, and a scoring script that runs it again
at score time: tests/fixtures/probe_score.py) deployed for real, reporting what model code can do.

On the local runtime the sandbox's promises are asserted; without a sandbox the refusal and --trust-model
are; on the Docker runtime its container's (no network, no rights, keys read-only). Every report is
written to `<basetemp>/probe-<runtime>.json` for the README's table.
"""

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from backend.config import Settings
from backend.context import open_modeldeck
from backend.errors import UntrustedModelError
from backend.runtimes import DeployConfig, DeploymentState
from benchmarks.common import group_pids

from .conftest import FIXTURES, copy_home, remove_home_deployments

SECRET = "MODELDECK_PROBE_SECRET"
SECRET_VALUE = "s3cret-in-the-deployers-environment"
SANDBOX_ENVIRONMENT = {"AZUREML_MODEL_DIR", "MODEL_DIR", "OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS",
                       "PYTHONPATH", "PYTHONUNBUFFERED", "PATH", "HOME", "TMPDIR", "LANG",
                       "PWD", "PROMETHEUS_MULTIPROC_DIR", "MODELDECK_MEMORY_MB"}  # set by bwrap's --chdir, and by the server itself


class ProbingPickle:
    """Unpickled, it runs the probe (the fixture's source) and becomes the report."""

    def __reduce__(self):
        source = (FIXTURES / "probe_score.py").read_text()
        return eval, (f"(exec({source!r}, (g := {{'__name__': 'probe'}})), g['probe']())[1]",)


def register_probe(deck, folder: Path):
    folder.mkdir()
    (folder / "probe.pkl").write_bytes(pickle.dumps(ProbingPickle()))
    shutil.copyfile(FIXTURES / "probe_score.py", folder / "score.py")
    return deck.registry.register("probe", [folder / "probe.pkl", folder / "score.py"],
                                  description="reports what model code can do where it runs")


def run_probe(deck, deployment, request: dict) -> dict:
    key = deck.deployments.key_for(deployment)
    answer = requests.post(deployment.scoring_uri, json=request, timeout=60,
                           headers={"Authorization": f"Bearer {key}"} if key else {})
    assert answer.status_code == 200, answer.text
    return answer.json()


def probe_request(deck, deployment, other_keys: Path | None) -> dict:
    """Everything a malicious model would try: the machine's secrets, the home, another deployment's keys,
    the Docker socket, its own files, the network (out, and back to its own scoring port)."""
    home = deck.home.path
    folder = deck.settings.local_deployments_dir / deployment.name
    port = int(deployment.scoring_uri.split(":")[2].split("/")[0])
    own = [str(folder / "keys" / "keys.json"), str(folder / "model" / "probe.pkl"), str(folder / "app" / "score.py")]
    return {"secret": SECRET, "threads": True, "address_space_gb": deployment.config.memory_gb + 1,
            "read": ["/etc/shadow", "/etc/passwd", str(home / "registry.sqlite3"), str(home / "blobs"),
                     str(other_keys or home / "deployments"), "/var/run/docker.sock", "/run/docker.sock",
                     str(Path.home()), str(Path.home() / ".bashrc"), *own],
            "write": [*own, str(folder / "model"), str(folder / "app"), str(folder / "run"), "/tmp", "/dev/shm",
                      "/dev", "/"],
            "connect": [["1.1.1.1", 53], ["127.0.0.1", port]]}


def record(tmp_path_factory, runtime: str, report: dict) -> None:
    path = tmp_path_factory.getbasetemp() / f"probe-{runtime}.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True))
    print(f"probe report ({runtime}): {path}\n{json.dumps(report['at_score'], indent=1, sort_keys=True)}")


def test_model_code_in_the_local_sandbox_has_no_network_no_rights_no_secrets_and_only_its_own_files(
        local_deck, sample_model, tmp_path, tmp_path_factory, monkeypatch):
    deck = local_deck
    monkeypatch.setenv(SECRET, SECRET_VALUE)  # in the deploying process: must not reach the model
    deck.deployments.deploy_and_wait(sample_model, "other", DeployConfig(auth_enabled=True), timeout=180)
    other_keys = deck.settings.local_deployments_dir / "other" / "keys" / "keys.json"
    deployment = deck.deployments.deploy_and_wait(register_probe(deck, tmp_path / "probe"), "probe",
                                                  DeployConfig(auth_enabled=True, memory_gb=1.0), timeout=180)
    assert deployment.isolation.startswith("sandboxed (bubblewrap): no network")
    request = probe_request(deck, deployment, other_keys)
    reports = run_probe(deck, deployment, request)
    record(tmp_path_factory, "local-sandboxed", reports)
    at_load, seen = reports["at_load"], reports["at_score"]
    for report in (at_load, seen):  # the pickle's code at load time, the script's at score time
        assert (report["uid"], report["gid"], report["cap_eff"]) == (65534, 65534, "0000000000000000")
        assert report["interfaces"] == ["lo"]
        assert not report["secret_visible"] and set(report["environment"]) <= SANDBOX_ENVIRONMENT
    assert seen["cap_bnd"] == "0000000000000000" and seen["hostname"] == "modeldeck-sandbox"
    assert seen["processes_visible"] <= 4  # bwrap's init, the supervisor, its worker (and no one else's)
    for target, outcome in seen["connect"].items():  # no packet leaves, and its scoring port is not reachable back
        assert outcome["outcome"].startswith("failed") and outcome["seconds"] < 0.5, (target, outcome)
    readable = {path for path, answer in seen["read"].items() if answer == "yes"}
    # its own three files; the home only where the interpreter lives in it (here /root/.pyenv: nothing else shows)
    assert readable - {str(Path.home())} == set(request["read"][-3:]), seen["read"]
    writable = {path for path, answer in seen["write"].items() if answer == "yes"}
    assert writable == {str(deck.settings.local_deployments_dir / "probe" / "run"), "/tmp", "/dev/shm"}, seen["write"]
    assert "Read-only file system" in seen["write"][request["write"][0]]  # its keys: readable, not replaceable
    limits = seen["limits"]
    assert (limits["data"], limits["address_space"], limits["open_files"], limits["processes"]) == (
        str(2**30), str(2**31), "4096", "128")
    assert seen["address_space"].startswith("refused")
    # RLIMIT_NPROC binds a deployment made by a user; the kernel exempts root's (then threads are bounded by
    # the address space: 8 MiB stacks within memory_gb + 1 GiB)
    assert seen["threads_started"] < 128 if os.geteuid() else seen["threads_started"] == 600  # the probe stops at 600
    assert SECRET_VALUE not in deck.deployments.get_logs("probe")


def test_every_process_of_a_sandboxed_server_ends_with_delete_even_once_its_starter_is_gone(local_deck, sample_model):
    import signal

    deck = local_deck
    deck.deployments.deploy_and_wait(sample_model, "grouped", timeout=180)
    folder = deck.settings.local_deployments_dir / "grouped"
    group = json.loads((folder / "process.json").read_text())["pid"]
    members = group_pids(group)
    commands = [Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0] for pid in members]
    assert b"/bin/bash" in commands and commands.count(b"/usr/bin/bwrap") == 2  # bwrap, and its init inside
    assert sum(command.endswith(b"python") or b"python3" in command for command in commands) == 2  # supervisor, worker
    [outer] = [pid for pid in members if parent_of(pid) == group]  # bwrap, outside the sandbox
    os.kill(group, signal.SIGKILL)  # the wrapper shell dies; the sandbox does not
    os.kill(outer, signal.SIGKILL)  # and bwrap outside too: its init and the server inside go on
    time.sleep(0.5)
    assert deck.deployments.get("grouped").state is DeploymentState.HEALTHY
    deck.deployments.delete("grouped")
    deadline = time.monotonic() + 15
    while group_pids(group) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert group_pids(group) == []


def test_a_stopped_sandboxed_server_records_its_own_exit_code(local_deck, sample_model):
    from backend.errors import DeploymentFailedError

    local_deck.deployments.deploy(sample_model, "broken", entry_script=FIXTURES / "failing_init_score.py")
    with pytest.raises(DeploymentFailedError) as caught:
        local_deck.deployments.wait_for_deployment("broken", timeout=180)
    assert caught.value.exit_code == 3 and "weights are corrupt" in caught.value.logs  # the server's, not bwrap's


def parent_of(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def test_without_a_sandbox_a_model_is_refused_unless_trusted_and_then_runs_with_the_users_rights(
        local_deck, tmp_path, tmp_path_factory, monkeypatch):
    deck = local_deck
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap to be found, as where bubblewrap is not installed
    monkeypatch.setenv(SECRET, SECRET_VALUE)
    model = register_probe(deck, tmp_path / "probe")
    assert "not sandboxed: bubblewrap is not installed" in deck.runtimes.open("local").describe()
    with pytest.raises(UntrustedModelError) as refused:
        deck.deployments.deploy(model, "trusted")
    assert "cannot sandbox probe:1 on this machine: bubblewrap is not installed" in str(refused.value)
    assert "runs its code (probe.pkl, score.py) with your user's full rights" in str(refused.value)
    assert "--trust-model" in str(refused.value) and deck.deployments.list() == []
    deployment = deck.deployments.deploy_and_wait(model, "trusted", DeployConfig(trust_model=True), timeout=180)
    assert deployment.isolation.startswith("not sandboxed (--trust-model)")
    assert deployment.config.trust_model
    reports = run_probe(deck, deployment, probe_request(deck, deployment, None))
    record(tmp_path_factory, "local-trusted", reports)
    seen = reports["at_score"]
    assert seen["uid"] == os.getuid() and "lo" in seen["interfaces"] and len(seen["interfaces"]) > 1
    assert seen["read"][str(deck.home.path / "registry.sqlite3")] == "yes"  # what --trust-model means
    assert not seen["secret_visible"]  # even so, the deploying process's environment stays its own


def test_the_cli_refuses_an_unsandboxable_model_and_deploys_it_with_trust_model(trained_home, tmp_path):
    home = copy_home(trained_home, tmp_path / "cli-home")
    env = {**os.environ, "MODELDECK_HOME": str(home), "MODELDECK_RUNTIME": "local", "PATH": "/nonexistent",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    cli = [sys.executable, "-m", "backend"]
    refused = subprocess.run([*cli, "deploy", "sklearn_mnist", "--name", "cli-untrusted"], env=env,
                             capture_output=True, text=True, timeout=120)
    assert refused.returncode != 0 and "--trust-model" in refused.stderr and "full rights" in refused.stderr
    try:
        trusted = subprocess.run([*cli, "deploy", "sklearn_mnist", "--name", "cli-trusted", "--trust-model"],
                                 env=env, capture_output=True, text=True, timeout=240)
        assert trusted.returncode == 0, trusted.stderr
        assert "cli-trusted: not sandboxed (--trust-model)" in trusted.stderr
        listed = subprocess.run([*cli, "deployments", "list", "--json"], env=env, capture_output=True, text=True,
                                timeout=60)
        [found] = json.loads(listed.stdout)
        assert found["config"]["trust_model"] is True and found["isolation"].startswith("not sandboxed")
    finally:
        subprocess.run([*cli, "deployments", "delete", "cli-trusted"], env=env, capture_output=True, timeout=60)


@pytest.mark.docker
def test_model_code_in_a_docker_deployment_has_no_network_no_rights_and_cannot_replace_its_keys(
        engine, trained_home, tmp_path, tmp_path_factory, monkeypatch):
    deck = open_modeldeck(Settings(home=copy_home(trained_home, tmp_path / "home"), runtime="docker"))
    monkeypatch.setenv(SECRET, SECRET_VALUE)
    try:
        deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "other", DeployConfig(auth_enabled=True),
                                         timeout=300)
        deployment = deck.deployments.deploy_and_wait(register_probe(deck, tmp_path / "probe"), "probe",
                                                      DeployConfig(auth_enabled=True), timeout=300)
        assert deployment.isolation.startswith("container: no network")
        request = probe_request(deck, deployment, None)
        own = ["/var/modeldeck/keys/keys.json", "/var/modeldeck/model/probe.pkl", "/var/modeldeck/app/score.py"]
        request["read"] += [*own, "/proc/1/environ"]
        request["write"] = [*own, "/var/modeldeck/model", "/var/modeldeck/app", "/var/modeldeck/keys",
                            "/var/modeldeck/run", "/var/modeldeck", "/tmp", "/dev/shm", "/"]
        request["connect"] += [["172.17.0.1", 2375], ["8.8.8.8", 53]]
        reports = run_probe(deck, deployment, request)
        record(tmp_path_factory, "docker", {**reports, "isolation": deployment.isolation})
        for report in (reports["at_load"], reports["at_score"]):
            assert (report["uid"], report["cap_eff"]) == (10001, "0000000000000000")
            assert report["interfaces"] == ["lo"]  # --network none: no bridge, no route, no DNS
            assert not report["secret_visible"]
        seen = reports["at_score"]
        for target, outcome in seen["connect"].items():  # no packet leaves: each refused at once
            assert outcome["outcome"].startswith("failed") and outcome["seconds"] < 0.5, (target, outcome)
        readable = {path for path, answer in seen["read"].items() if answer == "yes"}
        assert set(own) <= readable and not readable & {"/etc/shadow", "/var/run/docker.sock", "/run/docker.sock"}
        writable = {path for path, answer in seen["write"].items() if answer == "yes"}
        assert writable == {"/var/modeldeck/run", "/tmp", "/dev/shm"}, seen["write"]
        assert "Read-only file system" in seen["write"]["/var/modeldeck/keys"]  # its keys: not replaceable, even by chmod
    finally:
        remove_home_deployments(engine, deck.home.path)
