"""From laptop to cluster, as far as this machine can go: no cluster runs here, so the exported pod spec is
run by Docker the way a kubelet would run it — the built image, the container's env, user and group,
fsGroup, read-only root, dropped capabilities, no privilege escalation, cpu and memory limits, the
memory-backed emptyDir at /tmp and the Secret's file with its mode — and its probes and the scoring
contract are asked through the port published on 127.0.0.1. The Docker tests fail (never skip) when no
engine answers."""

import json
import os
import subprocess
import sys
import time

import pytest
import requests
import yaml

from backend.runtimes.probe import free_port

from .conftest import copy_home

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
IMAGE = f"modeldeck-test/cluster:{os.getpid()}"  # per session: two sessions on one engine stay apart
pytestmark = pytest.mark.docker


def cli(home, *args):
    env = {**os.environ, "MODELDECK_HOME": str(home), "MODELDECK_RUNTIME": "docker", "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-m", "backend", *args], env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


@pytest.fixture(scope="module")
def cluster_home(engine, trained_home, tmp_path_factory):
    """A home with sklearn_mnist:1 and its self-contained image built with key auth (removed afterwards)."""
    home = copy_home(trained_home, tmp_path_factory.mktemp("cluster") / "home")
    cli(home, "build", "sklearn_mnist:1", "--tag", IMAGE, "--auth", "key")
    yield home
    engine.images.remove(IMAGE, force=True)


def quantity_bytes(text: str) -> int:
    units = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30}
    return int(text[:-2]) * units[text[-2:]] if text[-2:] in units else int(text)


def quantity_cores(text: str) -> float:
    return int(text[:-1]) / 1000 if text.endswith("m") else float(text)


def run_pod(engine, pod: dict, secrets: dict[str, dict], folder) -> tuple[object, int]:
    """Starts the pod's one container as a kubelet would (the parts a single Docker engine can honour),
    its container port published on 127.0.0.1; returns the container and that host port."""
    [container] = pod["containers"]
    security = {**pod.get("securityContext", {}), **container.get("securityContext", {})}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    tmpfs, binds = {}, {}
    for mount in container.get("volumeMounts", []):
        volume = volumes[mount["name"]]
        if "emptyDir" in volume:
            assert volume["emptyDir"].get("medium") == "Memory"
            tmpfs[mount["mountPath"]] = f"size={quantity_bytes(volume['emptyDir']['sizeLimit'])},mode=1777"
        else:  # a Secret: its items as files owned by root and the pod's fsGroup, with the defaultMode
            secret = secrets[volume["secret"]["secretName"]]
            where = folder / mount["name"]
            where.mkdir()
            for item in volume["secret"]["items"]:
                path = where / item["path"]
                path.write_text(secret["stringData"][item["key"]])
                os.chown(path, 0, pod["securityContext"]["fsGroup"])
                path.chmod(volume["secret"]["defaultMode"])
            binds[str(where)] = {"bind": mount["mountPath"], "mode": "ro" if mount.get("readOnly") else "rw"}
    [port] = container["ports"]
    host_port = free_port()
    limits = container["resources"]["limits"]
    started = engine.containers.run(
        container["image"], detach=True, environment={e["name"]: e["value"] for e in container["env"]},
        user=f"{security['runAsUser']}:{security['runAsGroup']}", group_add=[str(pod["securityContext"]["fsGroup"])],
        read_only=security["readOnlyRootFilesystem"], cap_drop=security["capabilities"]["drop"],
        security_opt=[] if security["allowPrivilegeEscalation"] else ["no-new-privileges"],
        mem_limit=quantity_bytes(limits["memory"]), nano_cpus=int(quantity_cores(limits["cpu"]) * 1e9),
        tmpfs=tmpfs, volumes=binds, ports={f"{port['containerPort']}/tcp": ("127.0.0.1", host_port)})
    assert security["runAsNonRoot"] and security["runAsUser"] != 0
    return started, host_port


def probe_until_ready(url: str, container: dict, running, timeout: float = 60.0) -> None:
    """What the kubelet asks: startup, then readiness, then liveness, by the probes' own paths."""
    deadline = time.monotonic() + timeout
    for name in ("startupProbe", "readinessProbe", "livenessProbe"):
        path = container[name]["httpGet"]["path"]
        while True:
            running.reload()
            assert running.status != "exited", running.logs().decode()[-2000:]
            try:
                if requests.get(url + path, timeout=container[name]["timeoutSeconds"]).status_code == 200:
                    break
            except requests.ConnectionError:
                pass
            assert time.monotonic() < deadline, f"{name} {path} not answered:\n{running.logs().decode()[-2000:]}"
            time.sleep(0.2)


def test_the_exported_deployment_runs_the_built_image_as_a_kubelet_would(engine, cluster_home, tmp_path):
    out = tmp_path / "k8s"
    cli(cluster_home, "export", "kubernetes", "sklearn_mnist:1", "--name", "mnist-demo", "--image", IMAGE,
        "--auth", "key", "--cpu-cores", "2", "--memory-gb", "0.75", "--namespace", "ml", "--out", str(out))
    found = {path.name: yaml.safe_load(path.read_text()) for path in out.glob("*.yaml")}
    secret = found["10-secret.yaml"]
    pod = found["20-deployment.yaml"]["spec"]["template"]["spec"]
    running, port = run_pod(engine, pod, {secret["metadata"]["name"]: secret}, tmp_path)
    try:
        url = f"http://127.0.0.1:{port}"
        probe_until_ready(url, pod["containers"][0], running)
        keys = json.loads(secret["stringData"]["keys.json"])
        row = {"data": [[0.0] * 784]}
        assert requests.post(f"{url}/score", json=row, timeout=10).status_code == 401
        headers = {"Authorization": f"Bearer {keys['primary']}"}
        answer = requests.post(f"{url}/score", json=row, headers=headers, timeout=10)
        assert answer.status_code == 200 and len(answer.json()) == 1
        info = requests.get(f"{url}/info", headers=headers, timeout=5).json()
        assert (info["deployment"], info["model"], info["workers"]) == ("mnist-demo", "sklearn_mnist:1", 2)
        assert info["image"]["model"]["id"] == "sklearn_mnist:1" and info["auth"] == "key"
        assert running.exec_run(["id", "-u"]).output.decode().strip() == "10001"
    finally:
        running.remove(force=True, v=True)


def test_the_exported_kserve_predictor_runs_the_built_image_and_answers_the_triton_client(engine, cluster_home,
                                                                                           tmp_path):
    import joblib
    import numpy as np
    import tritonclient.http as triton

    from backend.data.builtin import load_mnist_test
    from backend.registry import ModelRegistry

    out = tmp_path / "kserve"
    cli(cluster_home, "export", "kserve", "sklearn_mnist:1", "--name", "mnist-kserve", "--image", IMAGE,
        "--auth", "key", "--autoscale", "1:3", "--out", str(out))
    found = {path.name: yaml.safe_load(path.read_text()) for path in out.glob("*.yaml")}
    secret, service = found["10-secret.yaml"], found["20-inferenceservice.yaml"]
    predictor = service["spec"]["predictor"]
    pod = {key: value for key, value in predictor.items() if key not in ("minReplicas", "maxReplicas")}
    running, port = run_pod(engine, pod, {secret["metadata"]["name"]: secret}, tmp_path)
    try:
        probe_until_ready(f"http://127.0.0.1:{port}", pod["containers"][0], running)
        key = json.loads(secret["stringData"]["keys.json"])["secondary"]
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_ready()
        mnist = load_mnist_test()
        X = mnist.X[:200]
        tensor = triton.InferInput("input-0", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X)
        with pytest.raises(triton.InferenceServerException, match="401|wants a key|Unauthorized"):
            client.infer("mnist-kserve", [tensor])
        # KServe routes by the InferenceService's name: the server takes it as its model's alias
        result = client.infer("mnist-kserve", [tensor], headers={"Authorization": f"Bearer {key}"})
        registry = ModelRegistry(cluster_home / "registry.sqlite3", cluster_home / "blobs")
        model_dir = registry.materialize(registry.get("sklearn_mnist", 1), tmp_path / "model")
        model = joblib.load(next(model_dir.glob("*.pkl")))
        assert result.as_numpy("predict").tolist() == model.predict(X).tolist()
        assert np.allclose(result.as_numpy("predict_proba"), model.predict_proba(X), atol=1e-6)
        metadata = client.get_model_metadata("mnist-kserve", headers={"Authorization": f"Bearer {key}"})
        assert metadata["name"] == "sklearn_mnist" and metadata["inputs"][0]["shape"] == [-1, 784]
        client.close()
    finally:
        running.remove(force=True, v=True)
