"""`modeldeck export kubernetes|kserve`: the real CLI's files checked against the Kubernetes API schemas
(kubernetes-validate, strict: no field the API does not know), the pure options -> manifests functions
field by field, and refusals with their messages.

The KServe InferenceService is a CRD: no schema of the Kubernetes API covers it, so only its predictor's
pod spec is validated (placed into a core/v1 Pod); the KServe fields themselves are unit-tested.
"""

import json
import os
import subprocess
import sys
import zipfile
from io import BytesIO
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from backend import cli as cli_module
from backend.errors import ExportError, InvalidDeployConfigError
from backend.packaging import kserve
from backend.packaging.kubernetes import (
    ExportOptions,
    ModelIdentity,
    cpu_quantity,
    kubernetes_manifests,
    label_value,
    memory_quantity,
    parse_autoscale,
)
from backend.packaging.self_contained import default_tag
from backend.packaging.writer import (
    KUBERNETES_VERSION,
    build_export,
    image_warnings,
    write_export,
    zip_export,
)
from backend.runtimes.base import DeployConfig, Keys, worker_plan

from .conftest import copy_home

MODEL = ModelIdentity("sklearn_mnist", 1, "ab" * 32, "the tutorial's logistic regression", 784)
KEYS = Keys("primary-key", "secondary-key")
NAMESPACED = {"Secret", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy",
              "InferenceService"}


def validate(manifest: dict) -> None:
    """Strict validation against the Kubernetes API this export is written for."""
    assert kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION


def options(**kwargs) -> ExportOptions:
    return ExportOptions(**{"name": "mnist-demo", "image": "modeldeck/sklearn-mnist:1", **kwargs})


def by_kind(manifests: dict) -> dict:
    return {m["kind"]: m for m in manifests.values()}


def container(manifests: dict) -> dict:
    return by_kind(manifests)["Deployment"]["spec"]["template"]["spec"]["containers"][0]


def env_of(spec: dict) -> dict:
    return {e["name"]: e["value"] for e in spec["env"]}


@pytest.fixture()
def export_env(trained_home, cli_env) -> dict:
    """A CLI environment whose home holds sklearn_mnist:1 only (no first-run training)."""
    copy_home(trained_home, Path(cli_env["MODELDECK_HOME"]))
    cli_env["MODELDECK_AUTO_TRAIN"] = "0"
    cli_env["DOCKER_HOST"] = "unix:///nonexistent/docker.sock"  # the image check finds no engine: silent
    return cli_env


def run_cli(env, *args):
    return subprocess.run([sys.executable, "-m", "backend", *args], env=env, capture_output=True, text=True,
                          timeout=120)


def read_dir(out: Path) -> dict:
    return {p.name: yaml.safe_load(p.read_text()) for p in sorted(out.glob("*.yaml"))}


# --- the real CLI, every file validated ------------------------------------------------------------------


def test_the_default_export_writes_files_that_validate_strictly_and_says_how_to_apply_them(export_env, tmp_path):
    out = tmp_path / "manifests"
    result = run_cli(export_env, "export", "kubernetes", "sklearn_mnist:1", "--name", "mnist-demo",
                     "--image", "modeldeck/sklearn-mnist:1", "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = read_dir(out)
    assert list(files) == ["20-deployment.yaml", "30-service.yaml", "50-pdb.yaml", "60-networkpolicy.yaml"]
    for manifest in files.values():
        validate(manifest)
        assert "namespace" not in manifest["metadata"]
    assert [line for line in result.stdout.splitlines() if line.startswith("wrote ")] == \
        [f"wrote {out / name}" for name in [*files, "README.txt"]]
    assert f"apply with: kubectl apply -f {out}" in result.stdout
    assert "the image: modeldeck build sklearn_mnist:1 --tag modeldeck/sklearn-mnist:1" in result.stdout
    assert "keys" not in result.stdout and "warning" not in result.stderr
    readme = (out / "README.txt").read_text()
    assert f"kubectl apply -f {out}" in readme and "kubectl port-forward svc/mnist-demo 8000:8000" in readme
    assert "curl -s http://127.0.0.1:8000/score" in readme and "Authorization" not in readme
    assert "docker save modeldeck/sklearn-mnist:1 |" in readme and "docker push" in readme
    deployment = files["20-deployment.yaml"]["metadata"]
    assert deployment["annotations"]["modeldeck.io/model-id"] == "sklearn_mnist:1"
    assert deployment["labels"]["modeldeck.io/version"] == "1"


def test_every_option_at_once_validates_strictly_and_the_keys_can_be_read_back(export_env, tmp_path):
    out = tmp_path / "all"
    result = run_cli(export_env, "export", "kubernetes", "sklearn_mnist", "--name", "mnist-prod", "--image",
                     "registry.example:5000/ml/sklearn-mnist:1", "--cpu-cores", "2.5",
                     "--memory-gb", "1.5", "--autoscale", "2:6", "--auth", "key", "--namespace", "ml-serving",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = read_dir(out)
    assert list(files) == ["00-namespace.yaml", "10-secret.yaml", "20-deployment.yaml", "30-service.yaml",
                           "40-hpa.yaml", "50-pdb.yaml", "60-networkpolicy.yaml"]
    for manifest in files.values():
        validate(manifest)
        if manifest["kind"] in NAMESPACED:
            assert manifest["metadata"]["namespace"] == "ml-serving"
    keys = Keys.from_json(files["10-secret.yaml"]["stringData"]["keys.json"])
    assert len(keys.primary) >= 40 and keys.primary != keys.secondary
    assert oct((out / "10-secret.yaml").stat().st_mode & 0o777) == "0o600"
    assert "kubectl get secret mnist-prod-keys -n ml-serving -o jsonpath='{.data.keys\\.json}' | base64 -d" \
        in result.stdout
    assert "clear text: keep it private" in result.stdout
    readme = (out / "README.txt").read_text()
    assert 'Authorization: Bearer $KEY' in readme and "kubectl port-forward -n ml-serving svc/mnist-prod" in readme
    assert "modeldeck build sklearn_mnist:1 --tag registry.example:5000/ml/sklearn-mnist:1 --auth key" in readme
    pod = files["20-deployment.yaml"]["spec"]["template"]["spec"]
    assert "replicas" not in files["20-deployment.yaml"]["spec"]  # the HPA owns the count
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "2500m", "memory": "1536Mi"}
    assert env_of(pod["containers"][0])["MODELDECK_WORKERS"] == "2"  # worker_plan(2.5): round(2.5) == 2


def test_kserve_export_writes_an_inference_service_whose_pod_spec_validates_as_a_pod(export_env, tmp_path):
    out = tmp_path / "kserve"
    result = run_cli(export_env, "export", "kserve", "sklearn_mnist", "--name", "mnist-kserve", "--image",
                     "modeldeck/sklearn-mnist:1", "--autoscale", "1:4", "--auth", "key", "--namespace", "models",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    files = read_dir(out)
    assert list(files) == ["00-namespace.yaml", "10-secret.yaml", "20-inferenceservice.yaml"]
    validate(files["00-namespace.yaml"])
    validate(files["10-secret.yaml"])
    isvc = files["20-inferenceservice.yaml"]
    with pytest.raises(kubernetes_validate.SchemaNotFoundError):  # a CRD: the API schemas do not know it
        kubernetes_validate.validate(isvc, KUBERNETES_VERSION, strict=True)
    predictor = dict(isvc["spec"]["predictor"])
    assert (predictor.pop("minReplicas"), predictor.pop("maxReplicas")) == (1, 4)
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "mnist-kserve-predictor",
                                                              "namespace": "models"}, "spec": predictor})
    assert "kubectl port-forward -n models svc/mnist-kserve-predictor 8000:80" in (out / "README.txt").read_text()
    assert f"apply with: kubectl apply -f {out}" in result.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--replicas", "0"], "replicas must be a whole number of at least 1, got 0"),
    (["--replicas", "3", "--autoscale", "2:6"], "give replicas (3) or autoscale (2:6), not both"),
    (["--namespace", "kube-system"], "namespace 'kube-system' belongs to Kubernetes itself"),
    (["--autoscale", "5:2"], "autoscale 5:2 is not a range: MIN must be at least 1 and at most MAX"),
    (["--autoscale", "0:2"], "autoscale 0:2 is not a range: MIN must be at least 1 and at most MAX"),
    (["--autoscale", "three"], "autoscale must be MIN:MAX (two whole numbers, for example 2:5), got 'three'"),
    (["--namespace", "ML_Serving"], "namespace 'ML_Serving' is not a DNS-1123 label"),
    (["--name", "9lives"], "name '9lives' is not a DNS-1035 label"),
    (["--name", "Mnist"], "name 'Mnist' is not a DNS-1035 label"),
    (["--cpu-cores", "0"], "CPU cores must be between 0.1 and 64, got 0"),
    (["--memory-gb", "2000"], "memory must be between 0.03125 and 1024 GB, got 2000"),
    (["--image", "My Image"], "image tag 'My Image' is not a valid Docker image name"),
])
def test_invalid_options_are_refused_with_the_rule_and_nothing_is_written(
        args, message, trained_home, tmp_path, monkeypatch, capsys):
    home = copy_home(trained_home, tmp_path / "home")
    monkeypatch.setenv("MODELDECK_HOME", str(home))
    monkeypatch.setenv("MODELDECK_AUTO_TRAIN", "0")
    out = tmp_path / "out"
    base = {"--name": "mnist-demo", "--image": "modeldeck/sklearn-mnist:1"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = ["export", "kubernetes", "sklearn_mnist:1", *[x for pair in base.items() for x in pair], "--out", str(out)]
    assert cli_module.main(argv) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
    assert not out.exists()


def test_an_unknown_model_and_a_bad_replica_count_exit_non_zero_from_a_shell(export_env, tmp_path):
    missing = run_cli(export_env, "export", "kubernetes", "nope:1", "--name", "x1", "--image", "a/b:1",
                      "--out", str(tmp_path / "o"))
    assert missing.returncode == 1 and "error: model 'nope:1' is not registered (registered: sklearn_mnist:1)" in missing.stderr
    typo = run_cli(export_env, "export", "kubernetes", "sklearn_mnist", "--name", "x1", "--image", "a/b:1",
                   "--replicas", "two", "--out", str(tmp_path / "o"))
    assert typo.returncode == 2 and "argument --replicas: invalid int value: 'two'" in typo.stderr
    kserve_replicas = run_cli(export_env, "export", "kserve", "sklearn_mnist", "--name", "x1", "--image", "a/b:1",
                              "--replicas", "2", "--out", str(tmp_path / "o"))
    assert kserve_replicas.returncode == 2 and "unrecognized arguments: --replicas 2" in kserve_replicas.stderr


# --- one option at a time: the fields it sets, and what is absent without it -----------------------------


def test_without_options_there_is_no_namespace_secret_or_autoscaler():
    manifests = kubernetes_manifests(MODEL, options())
    assert set(by_kind(manifests)) == {"Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}
    pod = by_kind(manifests)["Deployment"]["spec"]["template"]["spec"]
    assert [v["name"] for v in pod["volumes"]] == ["tmp"]
    assert "MODELDECK_KEYS_FILE" not in env_of(pod["containers"][0])
    assert by_kind(manifests)["Deployment"]["spec"]["replicas"] == 1


def test_replicas_set_the_deployment_and_the_budget_lets_one_pod_go():
    kinds = by_kind(kubernetes_manifests(MODEL, options(replicas=4)))
    assert kinds["Deployment"]["spec"]["replicas"] == 4
    assert kinds["PodDisruptionBudget"]["spec"] == {
        "maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "mnist-demo"}},
        "unhealthyPodEvictionPolicy": "AlwaysAllow"}
    one = by_kind(kubernetes_manifests(MODEL, options()))["PodDisruptionBudget"]["spec"]
    assert "minAvailable" not in one and one["maxUnavailable"] == 1  # one replica: a drain can still move it


def test_autoscale_adds_a_cpu_autoscaler_and_starts_the_deployment_at_min():
    kinds = by_kind(kubernetes_manifests(MODEL, options(autoscale=(2, 8))))
    hpa = kinds["HorizontalPodAutoscaler"]
    assert hpa["apiVersion"] == "autoscaling/v2"
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "mnist-demo"}
    assert (hpa["spec"]["minReplicas"], hpa["spec"]["maxReplicas"]) == (2, 8)
    assert hpa["spec"]["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 70}}}]
    # no replicas in the file: a re-apply (a new version) must not scale a busy Deployment back to MIN
    assert "replicas" not in kinds["Deployment"]["spec"]
    assert parse_autoscale("3:3") == (3, 3)


def test_key_auth_adds_a_secret_mounted_read_only_where_the_image_reads_it():
    manifests = kubernetes_manifests(MODEL, options(config=DeployConfig(auth_enabled=True)), KEYS)
    secret = by_kind(manifests)["Secret"]
    assert secret["type"] == "Opaque" and secret["metadata"]["name"] == "mnist-demo-keys"
    assert json.loads(secret["stringData"]["keys.json"]) == {"primary": "primary-key", "secondary": "secondary-key"}
    pod = by_kind(manifests)["Deployment"]["spec"]["template"]["spec"]
    assert pod["securityContext"]["fsGroup"] == 10001
    assert {"name": "keys", "secret": {"secretName": "mnist-demo-keys", "defaultMode": 0o440,
                                       "items": [{"key": "keys.json", "path": "keys.json"}]}} in pod["volumes"]
    spec = pod["containers"][0]
    assert {"name": "keys", "mountPath": "/etc/modeldeck/keys", "readOnly": True} in spec["volumeMounts"]
    assert env_of(spec)["MODELDECK_KEYS_FILE"] == "/etc/modeldeck/keys/keys.json"
    assert by_kind(manifests)["Deployment"]["metadata"]["annotations"]["modeldeck.io/auth"] == "key"
    with pytest.raises(ExportError, match="needs the keys"):
        kubernetes_manifests(MODEL, options(config=DeployConfig(auth_enabled=True)))
    generated = build_export("kubernetes", MODEL, options(config=DeployConfig(auth_enabled=True)))
    assert generated.keys is not None and generated.keys.primary in generated.files("d")["10-secret.yaml"]


def test_a_namespace_is_created_first_and_set_on_every_namespaced_object():
    manifests = kubernetes_manifests(MODEL, options(namespace="ml", autoscale=(1, 2),
                                                    config=DeployConfig(auth_enabled=True)), KEYS)
    first = next(iter(manifests.values()))
    assert first["kind"] == "Namespace" and first["metadata"]["name"] == "ml"
    # warn and audit only: applying it to a namespace shared already must not refuse other teams' pods
    assert first["metadata"]["labels"] == {"pod-security.kubernetes.io/warn": "restricted",
                                           "pod-security.kubernetes.io/audit": "restricted"}
    assert "namespace" not in first["metadata"]
    assert all(m["metadata"]["namespace"] == "ml" for m in manifests.values() if m["kind"] != "Namespace")
    assert list(manifests) == sorted(manifests)  # `kubectl apply -f DIR` reads files in name order


def test_cpu_and_memory_set_requests_equal_to_limits_and_the_worker_count():
    manifests = kubernetes_manifests(MODEL, options(config=DeployConfig(cpu_cores=0.25, memory_gb=0.5)))
    spec = container(manifests)
    assert spec["resources"] == {"requests": {"cpu": "250m", "memory": "512Mi"},
                                 "limits": {"cpu": "250m", "memory": "512Mi"}}
    env = env_of(spec)
    assert env["MODELDECK_WORKERS"] == str(worker_plan(0.25)[0]) == "1"
    assert env["OMP_NUM_THREADS"] == env["OPENBLAS_NUM_THREADS"] == env["MKL_NUM_THREADS"] == "1"
    assert env["MODELDECK_DEPLOYMENT"] == "mnist-demo"
    assert env["MODELDECK_MAX_BODY_MB"] == f"{DeployConfig(cpu_cores=0.25, memory_gb=0.5).body_limit_mb:g}"
    assert env["MODELDECK_RUN_TIMEOUT"] == "60"
    assert env_of(container(kubernetes_manifests(MODEL, options(config=DeployConfig(run_timeout_s=7.5)))))[
        "MODELDECK_RUN_TIMEOUT"] == "7.5"
    assert env_of(container(kubernetes_manifests(MODEL, options(config=DeployConfig(cpu_cores=4)))))[
        "MODELDECK_WORKERS"] == "4"
    assert (cpu_quantity(1.0), cpu_quantity(0.1), cpu_quantity(64), cpu_quantity(1.5)) == ("1", "100m", "64", "1500m")
    assert (memory_quantity(0.03125), memory_quantity(1), memory_quantity(0.3)) == ("32Mi", "1024Mi", "308Mi")
    with pytest.raises(InvalidDeployConfigError, match="CPU cores must be between 0.1 and 64, got 65"):
        options(config=DeployConfig(cpu_cores=65))


def test_the_pod_is_hardened_as_the_image_contract_allows():
    manifests = kubernetes_manifests(MODEL, options())
    pod = by_kind(manifests)["Deployment"]["spec"]["template"]["spec"]
    spec = pod["containers"][0]
    assert spec["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": 10001, "runAsGroup": 10001, "readOnlyRootFilesystem": True,
        "allowPrivilegeEscalation": False, "privileged": False, "capabilities": {"drop": ["ALL"]},
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] == 10001
    assert pod["automountServiceAccountToken"] is False and pod["terminationGracePeriodSeconds"] <= 30
    assert {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": "64Mi"}} in pod["volumes"]
    assert {"name": "tmp", "mountPath": "/tmp"} in spec["volumeMounts"]
    assert spec["image"] == "modeldeck/sklearn-mnist:1" and spec["imagePullPolicy"] == "IfNotPresent"
    assert spec["ports"] == [{"name": "http", "containerPort": 8000, "protocol": "TCP"}]
    assert spec["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert spec["livenessProbe"]["httpGet"]["path"] == "/health"
    assert spec["startupProbe"]["httpGet"]["path"] == "/health"
    assert spec["startupProbe"]["periodSeconds"] * spec["startupProbe"]["failureThreshold"] >= 60


def test_the_service_and_network_policy_open_only_the_scoring_port_and_no_egress():
    kinds = by_kind(kubernetes_manifests(MODEL, options()))
    service = kinds["Service"]["spec"]
    assert service["type"] == "ClusterIP" and service["selector"] == {"app.kubernetes.io/name": "mnist-demo"}
    assert service["ports"] == [{"name": "http", "port": 8000, "targetPort": "http", "protocol": "TCP"}]
    policy = kinds["NetworkPolicy"]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"] and policy["egress"] == []
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 8000}]}]


def test_labels_carry_the_model_without_colons_and_annotations_the_facts():
    deployment = by_kind(kubernetes_manifests(MODEL, options()))["Deployment"]
    labels = deployment["metadata"]["labels"]
    assert labels == {"app.kubernetes.io/name": "mnist-demo", "app.kubernetes.io/managed-by": "modeldeck",
                      "modeldeck.io/model": "sklearn_mnist", "modeldeck.io/version": "1"}
    assert deployment["spec"]["template"]["metadata"]["labels"] == labels
    assert deployment["spec"]["selector"] == {"matchLabels": {"app.kubernetes.io/name": "mnist-demo"}}
    assert deployment["metadata"]["annotations"] == {
        "modeldeck.io/model-id": "sklearn_mnist:1", "modeldeck.io/model-sha256": "ab" * 32,
        "modeldeck.io/image": "modeldeck/sklearn-mnist:1", "modeldeck.io/auth": "none",
        "modeldeck.io/description": "the tutorial's logistic regression"}
    assert label_value("_odd:name.") == "odd-name" and len(label_value("m" * 100)) == 63
    assert default_tag("Fancy_Model.v2", 3) == "modeldeck/fancy_model.v2:3"


# --- KServe ----------------------------------------------------------------------------------------------


def test_kserve_predictor_is_the_custom_container_speaking_the_open_inference_protocol():
    manifests = kserve.kserve_manifests(MODEL, options(namespace="ml", config=DeployConfig(auth_enabled=True)), KEYS)
    assert list(manifests) == ["00-namespace.yaml", "10-secret.yaml", "20-inferenceservice.yaml"]
    isvc = manifests["20-inferenceservice.yaml"]
    assert isvc["apiVersion"] == "serving.kserve.io/v1beta1" and isvc["kind"] == "InferenceService"
    assert isvc["metadata"]["namespace"] == "ml"
    assert isvc["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"
    assert "serving.kserve.io/autoscalerClass" not in isvc["metadata"]["annotations"]
    predictor = isvc["spec"]["predictor"]
    assert (predictor["minReplicas"], predictor["maxReplicas"]) == (1, 1)
    assert "scaleMetric" not in predictor and "scaleTarget" not in predictor
    [spec] = predictor["containers"]
    assert spec["name"] == "kserve-container" and spec["image"] == "modeldeck/sklearn-mnist:1"
    assert spec["ports"] == [{"name": "http1", "containerPort": 8000, "protocol": "TCP"}]
    env = env_of(spec)
    assert env["PROTOCOL"] == "v2" and env["MODELDECK_DEPLOYMENT"] == "mnist-demo"
    assert env["MODELDECK_KEYS_FILE"] == "/etc/modeldeck/keys/keys.json"
    assert spec["readinessProbe"]["httpGet"] == {"path": "/ready", "port": 8000, "scheme": "HTTP"}
    assert spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert predictor["securityContext"]["fsGroup"] == 10001 and predictor["automountServiceAccountToken"] is False
    assert {v["name"] for v in predictor["volumes"]} == {"tmp", "keys"}


def test_kserve_autoscale_sets_min_and_max_replicas_and_the_hpa_class():
    isvc = kserve.kserve_manifests(MODEL, options(autoscale=(2, 5)))["20-inferenceservice.yaml"]
    assert (isvc["spec"]["predictor"]["minReplicas"], isvc["spec"]["predictor"]["maxReplicas"]) == (2, 5)
    assert isvc["metadata"]["annotations"]["serving.kserve.io/autoscalerClass"] == "hpa"
    assert "namespace" not in isvc["metadata"]


def test_kserve_refuses_a_name_too_long_for_its_predictor_objects():
    with pytest.raises(ExportError, match=r"too long for KServe: it makes 'a{54}-predictor', and names stop at 63 "
                                          r"characters \(use at most 53\)"):
        kserve.kserve_manifests(MODEL, options(name="a" * 54))
    assert kserve.kserve_manifests(MODEL, options(name="a" * 53))


# --- files: folder rules, zip, image check ---------------------------------------------------------------


def test_a_folder_of_an_earlier_export_is_reused_without_stale_files_and_a_foreign_one_refused(tmp_path):
    out = tmp_path / "out"
    write_export(build_export("kubernetes", MODEL, options(autoscale=(1, 3))), out)
    assert (out / "40-hpa.yaml").exists()
    written = write_export(build_export("kubernetes", MODEL, options()), out)
    assert not (out / "40-hpa.yaml").exists() and sorted(p.name for p in out.iterdir()) == sorted(
        p.name for p in written)
    (out / "notes.md").write_text("mine")
    with pytest.raises(ExportError, match=r"holds other files \(notes.md\): `kubectl apply -f` would apply them too"):
        write_export(build_export("kubernetes", MODEL, options()), out)
    assert (out / "notes.md").read_text() == "mine"


def test_the_zip_holds_one_folder_whose_manifests_validate():
    bundle = build_export("kubernetes", MODEL, options(namespace="ml", config=DeployConfig(auth_enabled=True)))
    with zipfile.ZipFile(BytesIO(zip_export(bundle))) as archive:
        names = archive.namelist()
        assert all(name.startswith("mnist-demo-kubernetes/") for name in names)
        assert "mnist-demo-kubernetes/README.txt" in names
        readme = archive.read("mnist-demo-kubernetes/README.txt").decode()
        assert "kubectl apply -f mnist-demo-kubernetes" in readme
        for name in names:
            if name.endswith(".yaml"):
                validate(yaml.safe_load(archive.read(name)))


class FakeImages:
    def __init__(self, labels):
        self._labels = labels

    def get(self, name):
        if self._labels is None:
            raise LookupError(f"no such image: {name}")
        return type("Image", (), {"labels": self._labels})()


class FakeClient:
    def __init__(self, labels):
        self.images = FakeImages(labels)


def test_a_local_image_built_for_another_model_or_auth_is_warned_about_and_a_missing_one_is_not():
    assert image_warnings("m:1", MODEL, False, FakeClient({"modeldeck.model": "sklearn_mnist:1",
                                                          "modeldeck.auth": "none"})) == []
    # no auth in the image but a keyed export: fine, the export's MODELDECK_KEYS_FILE turns key auth on
    assert image_warnings("m:1", MODEL, True, FakeClient({"modeldeck.model": "sklearn_mnist:1",
                                                         "modeldeck.auth": "none"})) == []
    warned = image_warnings("m:1", MODEL, False, FakeClient({"modeldeck.model": "sklearn_mnist:2",
                                                             "modeldeck.auth": "key"}))
    assert warned == ["the local image m:1 serves sklearn_mnist:2, not sklearn_mnist:1: rebuild it with "
                      "`modeldeck build sklearn_mnist:1 --tag m:1`",
                      "the local image m:1 was built with key auth and refuses to start without a keys file, and "
                      "this export writes none: export with --auth key, or rebuild without it"]
    assert image_warnings("m:1", MODEL, False, FakeClient(None)) == []
    assert image_warnings("m:1", MODEL, False, None) == []  # no engine


@pytest.fixture()
def labelled_image(engine, tmp_path):
    """A tiny image on the real engine labelled as `modeldeck build sklearn_mnist:2 --auth key` labels its
    images; removed afterwards. Fails (never skips) when no Docker engine answers."""
    (tmp_path / "Dockerfile").write_text("FROM scratch\nLABEL modeldeck.model=sklearn_mnist:2 modeldeck.auth=key\n")
    tag = f"modeldeck-k8s-test/labelled:{os.getpid()}"
    engine.images.build(path=str(tmp_path), tag=tag, rm=True)
    yield tag
    engine.images.remove(tag, force=True)


@pytest.mark.docker
def test_the_cli_warns_when_the_local_image_was_built_for_another_model_and_still_writes(
        labelled_image, export_env, tmp_path):
    env = {k: v for k, v in export_env.items() if k != "DOCKER_HOST"}  # this test wants the engine
    out = tmp_path / "warned"
    result = run_cli(env, "export", "kubernetes", "sklearn_mnist:1", "--name", "mnist-demo", "--image",
                     labelled_image, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert f"warning: the local image {labelled_image} serves sklearn_mnist:2, not sklearn_mnist:1" in result.stderr
    assert f"warning: the local image {labelled_image} was built with key auth and refuses to start without a " \
           "keys file" in result.stderr
    assert (out / "20-deployment.yaml").exists()
