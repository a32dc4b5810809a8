"""Deployments on a real Docker engine. These tests fail (never skip) when no engine answers:
scripts/setup.sh installs and starts one."""

import json
import subprocess
import sys

import pytest
import requests

from backend.config import Settings
from backend.context import open_modeldeck
from backend.datasets import load_mnist_test
from backend.errors import (
    ChecksumMismatchError,
    DeploymentExistsError,
    DeploymentFailedError,
    DeploymentNotFoundError,
    EndpointUnreachableError,
    RuntimeUnavailableError,
)
from backend.images import BaseImageMissingError, WheelDownloadError
from backend.inspection.evaluation import evaluate_endpoint
from backend.runtimes import DeployConfig, DeploymentState, LocalRuntime, open_runtime
from backend.runtimes.docker import LABEL, DockerRuntime

from .conftest import FIXTURES, copy_home

pytestmark = pytest.mark.docker


@pytest.fixture(scope="module")
def engine():
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as e:
        pytest.fail(f"no Docker engine answers ({e}): run scripts/setup.sh, which installs and starts one")
    return client


@pytest.fixture()
def docker_deck(engine, trained_home, tmp_path):
    deck = open_modeldeck(Settings(home=copy_home(trained_home, tmp_path / "home"), runtime="docker"))
    assert isinstance(deck.runtime, DockerRuntime)
    started = set()
    original = deck.deployments.deploy

    def deploy(model, name, *args, **kwargs):
        started.add(name)
        return original(model, name, *args, **kwargs)

    deck.deployments.deploy = deploy
    yield deck
    for container in engine.containers.list(all=True, filters={"label": LABEL}):
        if container.labels[LABEL] in started:
            container.remove(force=True, v=True)


def test_deploy_score_inspect_and_delete_a_container(docker_deck, engine, sample_model):
    deck = docker_deck
    config = DeployConfig(cpu_cores=1.5, memory_gb=0.75, tags={"team": "qa"}, description="integration test")
    deck.deployments.deploy(sample_model, "t-main", config)
    deployment = deck.deployments.wait_for_deployment("t-main", timeout=180)
    assert deployment.runtime == "docker" and deployment.scoring_uri.startswith("http://127.0.0.1:")

    mnist = load_mnist_test()
    evaluation = evaluate_endpoint(deck.client, deployment.scoring_uri, mnist)
    assert evaluation.accuracy == pytest.approx(sample_model.metrics["accuracy"], abs=1e-4)
    json_path = evaluate_endpoint(deck.client, deployment.scoring_uri, mnist, use_binary=False)
    assert (json_path.predictions == evaluation.predictions).all()

    bad = requests.post(deployment.scoring_uri, data=b'{"data": [[1, 2]]}', headers={"Content-Type": "application/json"})
    assert bad.status_code == 400 and "784 values" in bad.json()["error"]
    assert deck.deployments.get("t-main").state is DeploymentState.HEALTHY

    attrs = engine.api.inspect_container("modeldeck-t-main")
    host = attrs["HostConfig"]
    assert (host["NanoCpus"], host["Memory"]) == (1_500_000_000, 768 * 2**20)
    assert host["ReadonlyRootfs"] and host["CapDrop"] == ["ALL"] and host["SecurityOpt"] == ["no-new-privileges"]
    assert host["PidsLimit"] == 256 and "/tmp" in host["Tmpfs"]
    assert attrs["Config"]["User"] == "10001:10001"
    assert all(b["HostIp"] == "127.0.0.1" for b in attrs["NetworkSettings"]["Ports"]["8000/tcp"])
    assert "modeldeck serving: listening on" in deck.deployments.get_logs("t-main")
    processes = engine.containers.get("modeldeck-t-main").top()["Processes"]
    assert sum("-m serving" in " ".join(p) for p in processes) == 3  # 1.5 cores: a parent and 2 workers
    assert deck.client.info(deployment.scoring_uri)["workers"] == 2

    deck.deployments.delete("t-main")
    assert engine.containers.list(all=True, filters={"name": "modeldeck-t-main"}) == []
    with pytest.raises(EndpointUnreachableError):
        deck.client.run(deployment.scoring_uri, mnist.X[:1])


def test_a_second_deployment_of_the_same_model_builds_nothing(docker_deck, sample_model):
    docker_deck.deployments.deploy(sample_model, "t-warm-a")
    messages = []
    docker_deck.deployments.deploy(sample_model, "t-warm-b", progress=messages.append)
    docker_deck.deployments.wait_for_deployment("t-warm-b", timeout=180)
    assert any("is built already: reusing it" in m for m in messages)
    assert not any(m.startswith("build:") or "pip download" in m for m in messages)
    with pytest.raises(DeploymentExistsError):
        docker_deck.deployments.deploy(sample_model, "t-warm-b")


def test_a_new_process_rediscovers_deployments_from_container_labels(docker_deck, sample_model, tmp_path):
    config = DeployConfig(tags={"stage": "demo"}, description="found again")
    docker_deck.deployments.deploy(sample_model, "t-labels", config)
    deployment = docker_deck.deployments.wait_for_deployment("t-labels", timeout=180)
    env = {"MODELDECK_HOME": str(tmp_path / "other-home"), "MODELDECK_AUTO_TRAIN": "0",
           "PATH": "/usr/bin:/bin", "PYTHONPATH": str(FIXTURES.parent.parent)}
    out = subprocess.run([sys.executable, "-m", "backend", "--runtime", "docker", "deployments", "list", "--json"],
                         env=env, capture_output=True, text=True, timeout=60, check=True).stdout
    [found] = [d for d in json.loads(out) if d["name"] == "t-labels"]
    assert found["state"] == "Healthy" and found["scoring_uri"] == deployment.scoring_uri
    assert found["model"] == "sklearn_mnist:1"
    assert found["config"]["tags"] == {"stage": "demo"} and found["config"]["description"] == "found again"


def test_failing_init_ends_failed_with_traceback_and_a_stopped_container(docker_deck, engine, sample_model):
    docker_deck.deployments.deploy(sample_model, "t-broken", entry_script=FIXTURES / "failing_init_score.py")
    with pytest.raises(DeploymentFailedError) as caught:
        docker_deck.deployments.wait_for_deployment("t-broken", timeout=180)
    assert caught.value.exit_code == 3
    assert "Traceback" in caught.value.logs and "weights are corrupt" in caught.value.logs
    container = engine.containers.get("modeldeck-t-broken")
    assert container.status == "exited"  # stopped, no restart loop, logs still readable
    assert docker_deck.deployments.get("t-broken").state is DeploymentState.FAILED
    docker_deck.deployments.delete("t-broken")
    assert engine.containers.list(all=True, filters={"name": "modeldeck-t-broken"}) == []


def test_a_memory_limit_too_small_to_load_the_model_fails_with_the_reason(docker_deck, sample_model):
    docker_deck.deployments.deploy(sample_model, "t-tiny", DeployConfig(memory_gb=0.03125))
    with pytest.raises(DeploymentFailedError) as caught:
        docker_deck.deployments.wait_for_deployment("t-tiny", timeout=180)
    assert caught.value.exit_code == 137
    assert "memory limit of 32 MiB: deploy with more memory" in str(caught.value)


def test_a_container_deleted_behind_our_back_is_reported_gone(docker_deck, engine, sample_model):
    docker_deck.deployments.deploy(sample_model, "t-gone")
    deployment = docker_deck.deployments.wait_for_deployment("t-gone", timeout=180)
    engine.containers.get("modeldeck-t-gone").remove(force=True, v=True)
    assert "t-gone" not in [d.name for d in docker_deck.deployments.list()]
    with pytest.raises(DeploymentNotFoundError, match="no deployment named 't-gone'"):
        docker_deck.deployments.get("t-gone")
    with pytest.raises(EndpointUnreachableError):
        docker_deck.client.run(deployment.scoring_uri, [[0.0] * 784])


def test_a_changed_model_file_is_refused_before_any_container_starts(docker_deck, engine):
    model = docker_deck.registry.get("sklearn_mnist")
    (docker_deck.registry.blobs_dir / model.files[0].sha256).write_bytes(b"tampered")
    with pytest.raises(ChecksumMismatchError):
        docker_deck.deployments.deploy(model, "t-tampered")
    assert engine.containers.list(all=True, filters={"name": "modeldeck-t-tampered"}) == []


def test_a_missing_base_image_says_how_to_get_one(engine, trained_home, tmp_path, sample_model):
    deck = open_modeldeck(Settings(home=trained_home, runtime="docker", base_image="modeldeck/nothing:here"))
    with pytest.raises(BaseImageMissingError, match="scripts/build-base-image.sh"):
        deck.deployments.deploy(sample_model, "t-nobase")
    assert engine.containers.list(all=True, filters={"name": "modeldeck-t-nobase"}) == []


def test_an_unreachable_engine_is_a_clear_error_and_auto_falls_back_to_local(monkeypatch, tmp_path):
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    settings = Settings(home=tmp_path)
    with pytest.raises(RuntimeUnavailableError, match="no Docker engine answers at unix://.*no-engine.sock"):
        open_runtime(settings, "docker")
    assert isinstance(open_runtime(settings, "auto"), LocalRuntime)
    result = subprocess.run([sys.executable, "-m", "backend", "--runtime", "docker", "deployments", "list"],
                            env={"DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock", "MODELDECK_HOME": str(tmp_path),
                                 "PATH": "/usr/bin:/bin", "PYTHONPATH": str(FIXTURES.parent.parent)},
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1 and "error: no Docker engine answers" in result.stderr
    assert "Traceback" not in result.stderr


def test_a_model_whose_library_version_cannot_be_installed_fails_before_any_container(docker_deck, engine):
    blob = docker_deck.registry.blobs_dir / docker_deck.registry.get("sklearn_mnist").files[0].sha256
    model = docker_deck.registry.register_bytes("ancient", {"model.pkl": blob.read_bytes()},
                                                library_versions={"scikit-learn": "0.0.1"})
    with pytest.raises(WheelDownloadError, match="scikit-learn==0.0.1"):
        docker_deck.deployments.deploy(model, "t-ancient")
    assert engine.containers.list(all=True, filters={"name": "modeldeck-t-ancient"}) == []
