"""Deployments on a real Docker engine. These tests fail (never skip) when no engine answers:
scripts/setup.sh installs and starts one."""

import base64
import hashlib
import json
import os
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
import requests

from backend.config import Settings
from backend.context import open_modeldeck
from backend.data.builtin import load_mnist_test
from backend.errors import (
    BaseImageMissingError,
    ChecksumMismatchError,
    DeploymentError,
    DeploymentExistsError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    EndpointUnreachableError,
    ReadOnlyDeploymentError,
    RuntimeUnavailableError,
    WheelDownloadError,
)
from backend.inspection.evaluation import evaluate_endpoint
from backend.progress import ProgressKind
from backend.registry import current_library_versions
from backend.runtimes import DeployConfig, DeploymentState, Runtimes, environment_images
from backend.runtimes.docker import HOME_LABEL, container_name
from backend.runtimes.environment_images import ImageBuilder
from backend.runtimes.front import Front
from backend.runtimes.local import LocalRuntime

from .conftest import FIXTURES, copy_home, remove_home_deployments

pytestmark = pytest.mark.docker


def home_volumes(engine, home_id: str) -> list:
    return engine.volumes.list(filters={"label": f"{HOME_LABEL}={home_id}"})


@pytest.fixture()
def docker_deck(engine, trained_home, tmp_path):
    """A home whose new deployments go to Docker; every container of this home is removed afterwards."""
    deck = open_modeldeck(Settings(home=copy_home(trained_home, tmp_path / "home"), runtime="docker"))
    yield deck
    remove_home_deployments(engine, deck.home.path)


def test_deploy_score_inspect_and_delete_a_container(docker_deck, engine, sample_model):
    deck = docker_deck
    config = DeployConfig(cpu_cores=1.5, memory_gb=0.75, tags={"team": "qa"}, description="integration test")
    deployment = deck.deployments.deploy_and_wait(sample_model, "t-main", config, timeout=180)
    assert deployment.runtime == "docker" and deployment.scoring_uri.startswith("http://127.0.0.1:")

    mnist = load_mnist_test()
    evaluation = evaluate_endpoint(deck.client, deployment.scoring_uri, mnist)
    assert evaluation.accuracy == pytest.approx(sample_model.metrics["accuracy"], abs=1e-4)
    json_path = evaluate_endpoint(deck.client, deployment.scoring_uri, mnist, use_binary=False)
    assert (json_path.predictions == evaluation.predictions).all()

    bad = requests.post(deployment.scoring_uri, data=b'{"data": [[1, 2]]}', headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "784 values" in bad.json()["error"]
    assert deck.deployments.get("t-main").state is DeploymentState.HEALTHY

    cname = container_name(deck.home.id, "t-main")
    attrs = engine.api.inspect_container(cname)
    host = attrs["HostConfig"]
    assert (host["NanoCpus"], host["Memory"]) == (1_500_000_000, 768 * 2**20)
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 256 and "/tmp" in host["Tmpfs"]
    assert attrs["Config"]["User"] == "10001:10001"
    assert host["NetworkMode"] == "none" and not attrs["NetworkSettings"]["Ports"]  # the front reaches its socket
    assert deployment.scoring_uri == f"http://127.0.0.1:{attrs['Config']['Labels']['modeldeck.port']}/score"
    assert "modeldeck serving: listening on" in deck.deployments.get_logs("t-main")
    assert attrs["HostConfig"]["RestartPolicy"]["Name"] == "on-failure"  # armed once it was Healthy
    processes = engine.containers.get(cname).top()["Processes"]
    assert sum("-m serving" in " ".join(p) for p in processes) == 3  # 1.5 cores: a parent and 2 workers
    assert deck.client.info(deployment.scoring_uri)["workers"] == 2

    deck.deployments.delete("t-main")
    assert engine.containers.list(all=True, filters={"name": cname}) == []
    with pytest.raises(EndpointUnreachableError):
        deck.client.run(deployment.scoring_uri, mnist.X[:1])


def test_a_second_deployment_of_the_same_model_builds_nothing(docker_deck, sample_model):
    docker_deck.deployments.deploy(sample_model, "t-warm-a")
    messages = []
    docker_deck.deployments.deploy_and_wait(sample_model, "t-warm-b", timeout=180, progress=messages.append)
    assert any("is built already: reusing it" in m.message for m in messages)
    assert not any(m.kind is ProgressKind.BUILD_LOG or "pip download" in m.message for m in messages)
    with pytest.raises(DeploymentExistsError):
        docker_deck.deployments.deploy(sample_model, "t-warm-b")


def list_json(home, *extra) -> list[dict]:
    env = {"MODELDECK_HOME": str(home), "MODELDECK_AUTO_TRAIN": "0", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(FIXTURES.parent.parent)}
    out = subprocess.run([sys.executable, "-m", "backend", "deployments", "list", "--json", *extra],
                         env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    return json.loads(out)


def test_a_new_process_rediscovers_deployments_from_container_labels(docker_deck, sample_model):
    config = DeployConfig(tags={"stage": "demo"}, description="found again")
    deployment = docker_deck.deployments.deploy_and_wait(sample_model, "t-labels", config, timeout=180)
    [found] = list_json(docker_deck.home.path)
    assert found["name"] == "t-labels" and found["runtime"] == "docker" and found["owned"]
    assert found["state"] == "Healthy" and found["scoring_uri"] == deployment.scoring_uri
    assert found["model"] == "sklearn_mnist:1"
    assert found["config"]["tags"] == {"stage": "demo"} and found["config"]["description"] == "found again"


def test_two_homes_on_one_engine_do_not_see_or_touch_each_others_deployments(docker_deck, engine, sample_model,
                                                                               trained_home, tmp_path):
    docker_deck.deployments.deploy_and_wait(sample_model, "t-mine", timeout=180)
    other = open_modeldeck(Settings(home=copy_home(trained_home, tmp_path / "other"), runtime="docker"))
    try:
        assert other.deployments.list() == []
        assert list_json(other.home.path) == []
        with pytest.raises(ReadOnlyDeploymentError, match="belongs to another ModelDeck home"):
            other.deployments.delete("t-mine")
        with pytest.raises(ReadOnlyDeploymentError):
            other.deployments.get_logs("t-mine")
        seen = [d for d in list_json(other.home.path, "--all") if d["name"] == "t-mine"]
        assert [(d["owned"], d["home"]) for d in seen] == [(False, str(docker_deck.home.path))]
        # the same name in the other home is its own deployment, not a clash
        other.deployments.deploy_and_wait(sample_model, "t-mine", timeout=180)
        assert {d.name: d.owned for d in other.deployments.list()} == {"t-mine": True}
        assert docker_deck.deployments.get("t-mine").state is DeploymentState.HEALTHY
    finally:
        remove_home_deployments(engine, other.home.path)


def test_a_local_and_a_docker_deployment_are_listed_and_found_together(docker_deck, sample_model):
    docker_deck.deployments.deploy_and_wait(sample_model, "t-in-docker", timeout=180)
    docker_deck.deployments.deploy_and_wait(sample_model, "t-in-local", runtime="local", timeout=180)
    try:
        listed = {d.name: d.runtime for d in docker_deck.deployments.list()}
        assert listed == {"t-in-docker": "docker", "t-in-local": "local"}
        with pytest.raises(DeploymentExistsError, match="exists already \\(on local\\)"):
            docker_deck.deployments.deploy(sample_model, "t-in-local")  # the target is docker: still a clash
        env = {**os.environ, "MODELDECK_HOME": str(docker_deck.home.path), "MODELDECK_AUTO_TRAIN": "0",
               "PYTHONPATH": str(FIXTURES.parent.parent)}
        out = subprocess.run([sys.executable, "-m", "backend", "evaluate", "t-in-local", "--json"], env=env,
                             capture_output=True, text=True, timeout=120)
        assert out.returncode == 0, out.stderr
        assert json.loads(out.stdout)["accuracy"] == pytest.approx(sample_model.metrics["accuracy"], abs=1e-4)
    finally:
        docker_deck.deployments.delete("t-in-local")


def test_a_name_made_twice_while_the_engine_was_away_is_said_and_resolved_by_runtime(
        docker_deck, sample_model, monkeypatch):
    docker_deck.deployments.deploy_and_wait(sample_model, "t-twice", timeout=180)
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")  # the same home, the engine away
    away = open_modeldeck(docker_deck.settings)
    away.deployments.deploy_and_wait(sample_model, "t-twice", runtime="auto", timeout=180)  # falls back to local
    monkeypatch.undo()
    assert docker_deck.deployments.snapshot().ambiguous == {"t-twice"}
    with pytest.raises(DeploymentError, match="'t-twice' exists on docker and local") as caught:
        docker_deck.deployments.delete("t-twice")
    assert "--runtime local" in str(caught.value)
    docker_deck.deployments.delete("t-twice", runtime="local")
    assert [(d.name, d.runtime) for d in docker_deck.deployments.list()] == [("t-twice", "docker")]


def test_the_scoring_uri_survives_a_crash_and_a_docker_restart(docker_deck, engine, sample_model):
    deployment = docker_deck.deployments.deploy_and_wait(sample_model, "t-crash", timeout=180,
                                                         entry_script=FIXTURES / "crashing_score.py")
    uri = deployment.scoring_uri
    assert requests.post(uri, json={"data": [[0]]}, timeout=10).json() == ["alive"]
    container = engine.containers.get(container_name(docker_deck.home.id, "t-crash"))
    for code in (1, 0):  # os._exit(0) too: a worker that ends for any reason is replaced
        lost = requests.post(uri, json={"data": [[0]], "crash": code}, timeout=10)
        assert lost.status_code == 502 and "does not answer" in lost.json()["error"]  # said by the front
        wait_until_answering(uri)  # the server forked a new worker, on the same host port
    again = docker_deck.deployments.get("t-crash")
    assert again.scoring_uri == uri and again.state is DeploymentState.HEALTHY
    container.reload()
    assert container.attrs["RestartCount"] == 0 and "starting a new one" in docker_deck.deployments.get_logs("t-crash")
    # The whole server killed, as the OOM killer would (not `docker kill`, which the engine takes for a
    # wanted stop): the engine restarts it, on the same port.
    os.kill(container.attrs["State"]["Pid"], 9)
    deadline = time.monotonic() + 60
    while container.attrs["RestartCount"] == 0 and time.monotonic() < deadline:
        time.sleep(0.1)
        container.reload()
    assert container.attrs["RestartCount"] == 1
    wait_until_answering(uri)
    engine.containers.get(container_name(docker_deck.home.id, "t-crash")).restart(timeout=5)
    wait_until_answering(uri)
    assert docker_deck.deployments.get("t-crash").scoring_uri == uri


def test_a_200_mb_body_is_a_413_and_the_container_stays_up_on_its_uri(docker_deck, engine, sample_model):
    import socket
    from urllib.parse import urlparse

    deployment = docker_deck.deployments.deploy_and_wait(sample_model, "t-big", DeployConfig(memory_gb=1), timeout=180)
    uri = deployment.scoring_uri
    assert docker_deck.client.info(uri)["max_body_bytes"] == 128 * 2**20
    container = engine.containers.get(container_name(docker_deck.home.id, "t-big"))
    before = memory_in_use(container)
    row = b"[" + b",".join([b"0.5"] * 784) + b"]"
    chunk = b",".join([row] * 256) + b","  # about 0.8 MB of valid rows
    url = urlparse(uri)
    for declared in (True, False):  # a Content-Length above the limit, then a chunked body that grows past it
        with socket.create_connection((url.hostname, url.port), timeout=60) as conn:
            # read while sending: the answer comes before the body ends, and a reset that follows the
            # close would drop an answer still unread (and one answer may come in two segments)
            received: list[bytes] = []
            reader = threading.Thread(target=read_until_closed, args=(conn, received))
            reader.start()
            head = (f"POST /score HTTP/1.1\r\nHost: {url.hostname}\r\nContent-Type: application/json\r\n"
                    + ("Content-Length: 209715200\r\n" if declared else "Transfer-Encoding: chunked\r\n") + "\r\n")
            conn.sendall(head.encode())
            sent, reset = 0, False
            if declared:
                # Refused on its head alone: the answer is awaited, no body sent. (Body bytes a closing server
                # leaves unread make its kernel reset the connection, and a reset drops an answer not read yet:
                # on a busy machine the reader lost that race.)
                reader.join(timeout=60)
                sent = 200 * 2**20
            try:
                while sent < 200 * 2**20 and not received:
                    piece = (b'{"data": [' if sent == 0 else b"") + chunk
                    conn.sendall(piece if declared else b"%x\r\n%s\r\n" % (len(piece), piece))
                    sent += len(piece)
            except (BrokenPipeError, ConnectionResetError):
                reset = True  # the server answered and closed before all of it was sent
            reader.join(timeout=60)
            answer = b"".join(received).decode(errors="replace")
        if declared:  # said by the front, which never passed the body on
            assert answer.startswith("HTTP/1.1 413") and "limit of 128 MiB" in answer, answer[:200]
        else:
            # A chunked body's 413 is the server's, which closes while the body still arrives: the reset that follows
            # can drop all or part of the answer before this client reads it (CI runs on a busy machine saw both; a
            # lingering drain would deliver it whole). Refused either way; the container's state below is the point.
            assert answer.startswith("HTTP/1.1 413") or (answer == "" and reset), answer[:200]
    container.reload()
    assert container.status == "running" and container.attrs["RestartCount"] == 0
    assert docker_deck.deployments.get("t-big").scoring_uri == uri
    assert docker_deck.client.run(uri, load_mnist_test().X[:3]) == [7, 2, 1]
    after = memory_in_use(container)
    assert after < before + 64 * 2**20, (before, after)  # nothing of the refused bodies was kept


def read_until_closed(conn, received: list) -> None:
    """Everything the peer sends on `conn` until it closes (or resets) the connection."""
    try:
        while chunk := conn.recv(65536):
            received.append(chunk)
    except OSError:
        pass


def memory_in_use(container) -> int:
    """The container's memory without the page cache (cgroup v1 or v2), as the OOM killer counts it."""
    stats = container.stats(stream=False)["memory_stats"]
    cache = stats.get("stats", {}).get("cache", stats.get("stats", {}).get("inactive_file", 0))
    return int(stats["usage"]) - int(cache)


def wait_until_answering(uri: str, seconds: float = 120) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            if requests.post(uri, json={"data": [[0]]}, timeout=5).json() == ["alive"]:
                return
        except requests.RequestException:
            pass
        time.sleep(0.2)
    pytest.fail(f"{uri} did not answer again within {seconds:.0f} s")


def test_failing_init_ends_failed_with_traceback_and_a_stopped_container(docker_deck, engine, sample_model):
    with pytest.raises(DeploymentFailedError) as caught:
        docker_deck.deployments.deploy_and_wait(sample_model, "t-broken", timeout=180,
                                                entry_script=FIXTURES / "failing_init_score.py")
    assert caught.value.exit_code == 3
    assert "Traceback" in caught.value.logs and "weights are corrupt" in caught.value.logs
    container = engine.containers.get(container_name(docker_deck.home.id, "t-broken"))
    assert container.status == "exited"  # stopped, no restart loop, logs still readable
    assert docker_deck.deployments.get("t-broken").state is DeploymentState.FAILED
    docker_deck.deployments.delete("t-broken")
    assert engine.containers.list(all=True, filters={"name": container.name}) == []


def test_a_container_stopped_with_docker_stop_says_stopped_not_a_model_failure(docker_deck, engine, sample_model):
    docker_deck.deployments.deploy_and_wait(sample_model, "t-stopped", timeout=180)
    container = engine.containers.get(container_name(docker_deck.home.id, "t-stopped"))
    container.stop(timeout=10)  # docker stop
    container.reload()
    stopped = docker_deck.deployments.get("t-stopped")
    assert stopped.detail == ("the container was stopped from outside ModelDeck (docker stop: exit code "
                              f"{container.attrs['State']['ExitCode']}): delete it and deploy again")
    assert stopped.state is DeploymentState.FAILED  # the state the CLI and pages know; no restart by the engine
    docker_deck.deployments.delete("t-stopped")
    assert engine.containers.list(all=True, filters={"name": container.name}) == []


def test_a_memory_limit_too_small_to_load_the_model_fails_with_the_reason(docker_deck, sample_model):
    with pytest.raises(DeploymentFailedError) as caught:
        docker_deck.deployments.deploy_and_wait(sample_model, "t-tiny", DeployConfig(memory_gb=0.03125), timeout=180)
    assert caught.value.exit_code == 137
    assert "memory limit of 32 MiB: deploy with more memory" in str(caught.value)


def test_a_container_deleted_behind_our_back_is_reported_gone_and_its_folder_and_route_swept(docker_deck, engine,
                                                                                            sample_model):
    deployment = docker_deck.deployments.deploy_and_wait(sample_model, "t-gone", timeout=180)
    docker_deck.deployments.deploy_and_wait(sample_model, "t-stays", timeout=180)
    folders = docker_deck.home.path / "docker"
    front = Front(docker_deck.home.path / "front")
    assert len(list(folders.iterdir())) == 2 and len(front.routes()) == 2  # a folder and a route each
    engine.containers.get(container_name(docker_deck.home.id, "t-gone")).remove(force=True)  # docker rm -f
    assert len(list(folders.iterdir())) == 2  # nothing watches the engine...
    docker_deck.deployments.delete("t-stays")
    assert list(folders.iterdir()) == [] and front.routes() == []  # ...and ModelDeck's next change sweeps it
    assert "t-gone" not in [d.name for d in docker_deck.deployments.list()]
    assert home_volumes(engine, docker_deck.home.id) == []
    with pytest.raises(DeploymentNotFoundError, match="no deployment named 't-gone'"):
        docker_deck.deployments.get("t-gone")
    with pytest.raises(EndpointUnreachableError):
        docker_deck.client.run(deployment.scoring_uri, [[0.0] * 784])


def test_a_changed_model_file_is_refused_before_any_container_starts(docker_deck, engine):
    model = docker_deck.registry.get("sklearn_mnist", 1)
    (docker_deck.registry.blobs_dir / model.files[0].sha256).write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError):
        docker_deck.deployments.deploy(model, "t-tampered")
    assert engine.containers.list(all=True, filters={"label": f"{HOME_LABEL}={docker_deck.home.id}"}) == []


def test_a_missing_base_image_says_how_to_get_one(engine, trained_home, tmp_path, sample_model):
    home = copy_home(trained_home, tmp_path / "home")
    deck = open_modeldeck(Settings(home=home, runtime="docker", base_image="modeldeck/nothing:here"))
    with pytest.raises(BaseImageMissingError, match="scripts/build-base-image.sh"):
        deck.deployments.deploy(sample_model, "t-nobase")
    assert engine.containers.list(all=True, filters={"label": f"{HOME_LABEL}={deck.home.id}"}) == []


def tiny_wheel(folder: Path) -> None:
    """tinypkg 1.0, a pure-Python wheel made here: `tinypkg.VALUE` is 42."""
    files = {"tinypkg/__init__.py": b"VALUE = 42\n",
             "tinypkg-1.0.dist-info/METADATA": b"Metadata-Version: 2.1\nName: tinypkg\nVersion: 1.0\n",
             "tinypkg-1.0.dist-info/WHEEL": b"Wheel-Version: 1.0\nGenerator: tests\nRoot-Is-Purelib: true\n"
                                             b"Tag: py3-none-any\n"}
    record = "".join(f"{name},sha256={base64.urlsafe_b64encode(hashlib.sha256(content).digest()).rstrip(b'=').decode()},"
                     f"{len(content)}\n" for name, content in files.items()) + "tinypkg-1.0.dist-info/RECORD,,\n"
    with zipfile.ZipFile(folder / "tinypkg-1.0-py3-none-any.whl", "w") as wheel:
        for name, content in files.items():
            wheel.writestr(name, content)
        wheel.writestr("tinypkg-1.0.dist-info/RECORD", record)


def test_an_environment_built_under_a_private_umask_is_readable_by_the_servers_user(
        engine, sample_model, tmp_path, monkeypatch):
    """The image's packages are unpacked on the host (`pip install --target`) and its code written there, under the
    user's umask, which may be 077: the server runs as uid 10001 in the image and must read both. A real build of
    the real Dockerfile through ensure(), of an environment with one small package."""
    monkeypatch.setattr(environment_images, "requirements_for", lambda *args: "tinypkg==1.0\n")

    def download(requirements, python, dest, progress):
        dest.mkdir(parents=True)
        (dest.parent / "requirements.txt").write_text(requirements)
        tiny_wheel(dest)

    monkeypatch.setattr(environment_images, "download_wheels", download)
    files = environment_images.serving_files()  # and a file of this test's own: a new environment tag on every run
    monkeypatch.setattr(environment_images, "serving_files",
                        lambda: [*files, ("serving/zz_private.py", f"# {tmp_path}\n".encode())])
    builder = ImageBuilder(engine, tmp_path / "cache", built_by=str(tmp_path))  # removed at the run's end
    umask = os.umask(0o077)
    try:
        tag = builder.ensure(sample_model, current_library_versions(), lambda event: None)
    finally:
        os.umask(umask)
    out = engine.containers.run(tag, ["python", "-c", "import os, serving.zz_private, tinypkg; "
                                      "print(os.getuid(), tinypkg.VALUE, tinypkg.__file__)"],
                                remove=True, network_disabled=True)
    assert out.decode().split() == ["10001", "42", "/opt/venv/lib/python3.11/site-packages/tinypkg/__init__.py"]


def test_an_unreachable_engine_is_a_clear_error_and_auto_falls_back_to_local(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    deck = open_modeldeck(Settings(home=tmp_path / "home"))
    with pytest.raises(RuntimeUnavailableError, match="no Docker engine answers at unix://.*no-engine.sock"):
        deck.runtimes.open("docker")
    assert isinstance(deck.runtimes.open("auto"), LocalRuntime)
    assert [(t.name, t.available) for t in Runtimes(deck.settings, deck.home).statuses()] == \
        [("docker", False), ("local", True)]
    env = {"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "MODELDECK_HOME": str(tmp_path / "home"),
           "MODELDECK_RUNTIME": "docker", "PATH": "/usr/bin:/bin", "PYTHONPATH": str(FIXTURES.parent.parent)}

    def cli(*args):
        return subprocess.run([sys.executable, "-m", "backend", *args], env=env, capture_output=True, text=True,
                              timeout=120)

    listed = cli("deployments", "list")
    assert listed.returncode == 0 and "docker runtime unavailable: no Docker engine answers" in listed.stderr
    models = cli("models", "list", "--json")  # the registry needs no engine, even with MODELDECK_RUNTIME=docker
    assert models.returncode == 0 and [m["id"] for m in json.loads(models.stdout)] == \
        ["sklearn_mnist:1", "sklearn_mnist:2"]  # the first run
    deployed = cli("deploy", "sklearn_mnist", "--name", "nowhere")
    assert deployed.returncode == 1 and "error: no Docker engine answers" in deployed.stderr
    assert "Traceback" not in listed.stderr + models.stderr + deployed.stderr


def test_a_model_whose_library_version_cannot_be_installed_fails_before_any_container(docker_deck, engine):
    blob = docker_deck.registry.blobs_dir / docker_deck.registry.get("sklearn_mnist", 1).files[0].sha256
    model = docker_deck.registry.register_bytes("ancient", {"model.pkl": blob.read_bytes()},
                                                library_versions={"scikit-learn": "0.0.1"})
    with pytest.raises(WheelDownloadError, match="scikit-learn==0.0.1"):
        docker_deck.deployments.deploy(model, "t-ancient")
    assert engine.containers.list(all=True, filters={"label": f"{HOME_LABEL}={docker_deck.home.id}"}) == []


def test_key_auth_refuses_strangers_and_a_key_rotates_without_a_restart(docker_deck, engine, sample_model):
    deck = docker_deck
    deployment = deck.deployments.deploy_and_wait(sample_model, "t-keys", DeployConfig(auth_enabled=True), timeout=180)
    uri, row = deployment.scoring_uri, {"data": load_mnist_test().X[:1].tolist()}
    keys = deck.deployments.keys("t-keys")
    assert keys.primary != keys.secondary and len(keys.primary) >= 40
    refused = requests.post(uri, json=row, timeout=10)
    assert refused.status_code == 401 and "Authorization: Bearer" in refused.json()["error"]
    assert requests.get(uri.replace("/score", "/ready"), timeout=5).status_code == 200  # probes stay open
    for key in (keys.primary, keys.secondary):
        assert requests.post(uri, json=row, headers={"Authorization": f"Bearer {key}"}, timeout=10).json() == [7]
    worker = deck.client.info(uri, key=keys.primary)["worker_pid"]
    rotated = deck.deployments.regen_key("t-keys", "primary")
    assert rotated.secondary == keys.secondary and rotated.primary != keys.primary
    assert deck.deployments.keys("t-keys") == rotated
    old = requests.post(uri, json=row, headers={"Authorization": f"Bearer {keys.primary}"}, timeout=10)
    assert old.status_code == 401
    assert deck.client.run(uri, row["data"], key=rotated.primary) == [7]
    assert deck.client.run(uri, row["data"], key=rotated.secondary) == [7]
    assert deck.client.info(uri, key=rotated.primary)["worker_pid"] == worker  # no restart
    assert deck.deployments.get("t-keys").state is DeploymentState.HEALTHY
    with pytest.raises(DeploymentError, match="without key auth"):
        deck.deployments.keys(deck.deployments.deploy_and_wait(sample_model, "t-open", timeout=180).name)


def test_a_fault_in_run_is_a_500_with_a_request_id_whose_traceback_is_in_the_logs(docker_deck, sample_model):
    deployment = docker_deck.deployments.deploy_and_wait(sample_model, "t-fault", timeout=180,
                                                         entry_script=FIXTURES / "tutorial_score.py")
    answer = requests.post(deployment.scoring_uri, json={"rows": [[0.0]]}, timeout=10)  # the tutorial's run: KeyError
    assert answer.status_code == 500 and answer.json()["type"] == "KeyError" and "Traceback" not in answer.text
    request_id = answer.json()["request_id"]
    deadline = time.monotonic() + 15  # the server logs before it answers, but the engine's log reader may lag
    while request_id not in (logs := docker_deck.deployments.get_logs("t-fault")) and time.monotonic() < deadline:
        time.sleep(0.2)
    request_line = next((line for line in logs.splitlines() if request_id in line), None)
    assert request_line is not None, logs[-2000:]
    assert "the scoring script raised KeyError" in request_line
    assert "KeyError: 'data'" in logs.split(request_line, 1)[1]


def test_an_init_that_never_returns_times_out_at_the_deadline_and_is_stopped(docker_deck, engine, sample_model):

    docker_deck.deployments.deploy(sample_model, "t-hangs", entry_script=FIXTURES / "hanging_init_score.py")
    started = time.monotonic()  # the wait only: a first deploy of changed serving code builds its image first
    with pytest.raises(DeploymentFailedError, match="timed out after 8 s") as caught:
        docker_deck.deployments.wait_for_deployment("t-hangs", timeout=8)
    took = time.monotonic() - started
    assert took < 8 + 15, took  # stopped at once: SIGTERM ends a hanging init() (no 5 s kill wait)
    container = engine.containers.get(container_name(docker_deck.home.id, "t-hangs"))
    assert container.status == "exited" and container.attrs["State"]["ExitCode"] == 128 + 15
    assert caught.value.state == "Transitioning"


def test_a_deploy_killed_half_way_leaves_a_deletable_name_and_nothing_behind(docker_deck, engine, sample_model):
    """The CLI is stopped (SIGSTOP) the moment the engine reports its container created, then killed: the
    name reads Failed "interrupted" (or, had it got as far as starting it, a working deployment) and
    delete leaves no container, volume or staged model copy."""
    import signal

    deck = docker_deck
    env = {**os.environ, "MODELDECK_HOME": str(deck.home.path), "MODELDECK_RUNTIME": "docker"}
    events = engine.events(decode=True, filters={"type": "container", "event": "create",
                                                 "label": f"{HOME_LABEL}={deck.home.id}"})
    cli = subprocess.Popen([sys.executable, "-m", "backend", "deploy", "sklearn_mnist", "--name", "t-killed"],
                           env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        next(iter(events))
        cli.send_signal(signal.SIGSTOP)
    finally:
        events.close()
        cli.kill()
        cli.wait(timeout=10)
    found = deck.deployments.get("t-killed")
    status = engine.containers.get(container_name(deck.home.id, "t-killed")).status
    if status == "created":
        assert found.state is DeploymentState.FAILED and found.detail.startswith("interrupted"), found
    assert "t-killed" in [d.name for d in deck.deployments.list()]
    assert list((deck.home.path / "staging").iterdir()), "the killed deploy's staging folder is expected here"
    deck.deployments.delete("t-killed")
    assert engine.containers.list(all=True, filters={"label": f"{HOME_LABEL}={deck.home.id}"}) == []
    assert home_volumes(engine, deck.home.id) == []
    assert list((deck.home.path / "staging").iterdir()) == []  # swept: its maker is gone
    deck.deployments.deploy_and_wait(sample_model, "t-killed", timeout=180)  # the name is free again


def test_metrics_answer_in_the_hardened_container_with_the_key_and_move_after_a_score(docker_deck, engine,
                                                                                       sample_model):
    from backend.services.traffic import scrape_deployment
    from backend.traffic.metrics import scrape

    deployment = docker_deck.deployments.deploy_and_wait(sample_model, "t-metrics", DeployConfig(auth_enabled=True),
                                                         timeout=300)
    base = deployment.scoring_uri.rsplit("/score", 1)[0]
    assert requests.get(base + "/metrics", timeout=10).status_code == 401  # as /info: the key is wanted
    before = scrape_deployment(docker_deck, deployment)
    key = docker_deck.deployments.key_for(deployment)
    docker_deck.client.run(deployment.scoring_uri, load_mnist_test().X[:7].tolist(), key=key)
    after = scrape(docker_deck.client, deployment.scoring_uri, key)
    assert after.count() - before.count() == 1 and after.rows_scored - before.rows_scored == 7
    container = engine.containers.get(container_name(docker_deck.home.id, "t-metrics"))
    assert container.attrs["HostConfig"]["ReadonlyRootfs"] is True
    listed = container.exec_run(["sh", "-c", "ls -d /tmp/modeldeck-metrics-*/ && id -u"], user="")
    assert listed.exit_code == 0 and listed.output.decode().split()[-1] == "10001"  # on the tmpfs, as the server user


def test_tritonclient_infers_against_the_hardened_container_on_its_127_0_0_1_port(docker_deck, sample_model,
                                                                                  sample_model_dir):
    import joblib
    import numpy as np
    import tritonclient.http as triton

    deployment = docker_deck.deployments.deploy_and_wait(sample_model, "v2t-docker", timeout=300)
    assert deployment.scoring_uri.startswith("http://127.0.0.1:")  # the published port, never the bridge's 172.x
    client = triton.InferenceServerClient(deployment.scoring_uri.removeprefix("http://").rsplit("/score", 1)[0])
    try:
        assert client.is_server_ready() and client.is_model_ready("sklearn_mnist")
        X = load_mnist_test().X[:1000]
        tensor = triton.InferInput("input-0", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X, binary_data=True)
        result = client.infer("v2t-docker", [tensor])  # the deployment's name, an alias of the model's
        model = joblib.load(sample_model_dir / "sklearn_mnist_model.pkl")
        assert np.array_equal(result.as_numpy("predict"), model.predict(X))
        # up to float32 rounding (another BLAS kernel may sum in another order; see test_v2_protocol)
        assert np.allclose(result.as_numpy("predict_proba"), model.predict_proba(X), rtol=0, atol=1e-5)
        assert result.get_response()["model_name"] == "sklearn_mnist"
    finally:
        client.close()
        docker_deck.deployments.delete("v2t-docker")


def test_class_names_given_at_registration_are_what_the_container_answers(docker_deck, engine, tmp_path):
    """A two-class model registered with class names, deployed in a container: /score's labels (JSON and
    .npy), its probabilities' classes, /info, the V2 metadata and inference all carry the names."""
    import pickle

    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from backend.registry import parse_signature

    cancer = load_breast_cancer()  # classes 0 (malignant) and 1 (benign)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(cancer.data[:400], cancer.target[:400])
    (tmp_path / "cancer.pkl").write_bytes(pickle.dumps(model))
    names = ["malignant", "benign"]
    registered = docker_deck.registry.register("cancer", [tmp_path / "cancer.pkl"],
                                               signature=parse_signature("30", classes="malignant, benign"))
    deployment = docker_deck.deployments.deploy_and_wait(registered, "t-cancer", timeout=180)
    assert deployment.runtime == "docker"
    uri, X = deployment.scoring_uri, cancer.data[400:420].astype("float32")
    expected = [names[k] for k in model.predict(X)]
    assert set(expected) == set(names)  # both classes among the rows sent

    answer = requests.post(uri, json={"data": X.tolist(), "proba": True}, timeout=30).json()
    assert answer["predictions"] == expected and answer["classes"] == names
    assert np.allclose(answer["probabilities"], model.predict_proba(X), atol=1e-5)
    assert requests.post(uri, json={"data": X.tolist()}, timeout=30).json() == expected
    assert list(docker_deck.client.scores(uri, X).labels) == expected  # the .npy path
    assert docker_deck.client.info(uri)["classes"] == names

    base = uri.rsplit("/score", 1)[0]
    metadata = requests.get(f"{base}/v2/models/cancer", timeout=10).json()
    assert metadata["outputs"] == [
        {"name": "predict", "datatype": "BYTES", "shape": [-1], "parameters": {"classes": names}},
        {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2], "parameters": {"classes": names}}]
    inferred = requests.post(f"{base}/v2/models/cancer/infer", timeout=30, json={
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": list(X.shape), "data": X.ravel().tolist()}],
        "outputs": [{"name": "predict"}]}).json()
    assert inferred["outputs"][0]["datatype"] == "BYTES" and inferred["outputs"][0]["data"] == expected

    signature = docker_deck.registry.get("cancer", 1).signature
    assert signature.class_labels == tuple(names) and "confirmed by deployment t-cancer" in signature.source
    docker_deck.deployments.delete("t-cancer")
    assert engine.containers.list(all=True, filters={"name": container_name(docker_deck.home.id, "t-cancer")}) == []


def test_a_model_that_encodes_text_columns_is_scored_with_category_names_in_a_container(docker_deck, engine, tmp_path):
    """A ColumnTransformer + OneHotEncoder pipeline, fitted on a DataFrame, deployed in a container (pandas is in
    the environment image): records with category names answer as scikit-learn does; an unknown category is a 400
    that names it, and the container keeps answering."""
    import pickle

    from .test_categories import fitted, table

    model = fitted()
    (tmp_path / "shapes.pkl").write_bytes(pickle.dumps(model))
    registered = docker_deck.registry.register("shapes", [tmp_path / "shapes.pkl"])
    deployment = docker_deck.deployments.deploy_and_wait(registered, "t-shapes", timeout=300)
    frame, _ = table(10)
    records = frame.to_dict(orient="records")
    uri = deployment.scoring_uri
    assert requests.post(uri, json={"data": records}, timeout=30).json() == list(model.predict(frame))
    assert docker_deck.client.info(uri)["categories"] == {"colour": ["blue", "green", "red"],
                                                          "shape": ["round", "square"]}
    records[0]["shape"] = "oval"
    refused = requests.post(uri, json={"data": records}, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"].startswith(
        'column "shape", row 0: "oval" is not one of the model\'s categories ("round", "square")')
    assert requests.get(uri.rsplit("/score", 1)[0] + "/health", timeout=10).status_code == 200
