"""The Deploy page's "Export for Kubernetes" section under AppTest, for a real local deployment: the zip
it offers is captured where Streamlit stores a download's bytes, and every manifest in it is validated
strictly against the Kubernetes API schemas (the KServe InferenceService through its pod spec)."""

import io
import zipfile

import kubernetes_validate
import pytest
import yaml
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage

from backend.packaging.writer import KUBERNETES_VERSION
from backend.runtimes import DeployConfig
from dashboard.common import verbatim

from .test_dashboard import app, backend_deck, dashboard_home


@pytest.fixture()
def home(trained_home, tmp_path, monkeypatch):
    """A home with sklearn_mnist:1, new deployments on the local runtime, deleted after."""
    yield from dashboard_home(trained_home, tmp_path, monkeypatch)


@pytest.fixture()
def downloads(monkeypatch) -> dict[str, bytes]:
    """{file name: bytes} of every download button the page rendered (the last run's win)."""
    captured: dict[str, bytes] = {}
    original = MemoryMediaFileStorage.load_and_get_id

    def keep(self, path_or_data, mimetype, kind, filename=None):
        if filename and isinstance(path_or_data, bytes):
            captured[filename] = path_or_data
        return original(self, path_or_data, mimetype, kind, filename)

    monkeypatch.setattr(MemoryMediaFileStorage, "load_and_get_id", keep)
    return captured


def unzip(data: bytes) -> dict[str, str]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name).decode() for name in archive.namelist()}


def manifests(files: dict[str, str]) -> dict[str, dict]:
    return {name.rsplit("/", 1)[1]: yaml.safe_load(text) for name, text in files.items() if name.endswith(".yaml")}


def validate(manifest: dict) -> None:
    assert kubernetes_validate.validate(manifest, KUBERNETES_VERSION, strict=True) == KUBERNETES_VERSION


def widget(widgets, label: str):
    matches = [w for w in widgets if w.label == label]
    assert matches, f"no {label!r} in {[w.label for w in widgets]}"
    return matches[0]


def test_the_export_section_offers_a_zip_of_valid_manifests_for_the_chosen_deployment(home, downloads):
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "k8s-keyed",
                                     DeployConfig(cpu_cores=0.5, memory_gb=0.75, auth_enabled=True), timeout=180)
    at = app(deployment="k8s-keyed")
    assert any(e.label == "Export for Kubernetes" for e in at.expander)
    assert widget(at.text_input, "Image").value == "modeldeck/sklearn_mnist:1"
    [download] = at.get("download_button")
    assert download.label == "Download k8s-keyed-kubernetes.zip"
    [commands] = [c.value for c in at.code if c.value.startswith("modeldeck build")]
    assert commands.splitlines() == ["modeldeck build sklearn_mnist:1 --tag modeldeck/sklearn_mnist:1 --auth key",
                                     "unzip k8s-keyed-kubernetes.zip", "kubectl apply -f k8s-keyed-kubernetes"]
    files = unzip(downloads["k8s-keyed-kubernetes.zip"])
    found = manifests(files)
    assert list(found) == ["10-secret.yaml", "20-deployment.yaml", "30-service.yaml", "50-pdb.yaml",
                           "60-networkpolicy.yaml"]
    for manifest in found.values():
        validate(manifest)
    pod = found["20-deployment.yaml"]["spec"]["template"]["spec"]
    assert pod["containers"][0]["resources"]["limits"] == {"cpu": "500m", "memory": "768Mi"}  # as deployed
    assert found["20-deployment.yaml"]["metadata"]["name"] == "k8s-keyed"
    keys = found["10-secret.yaml"]["stringData"]["keys.json"]
    assert keys not in str(deck.deployments.keys("k8s-keyed"))  # fresh keys for the cluster, not the local ones
    assert "kubectl port-forward svc/k8s-keyed 8000:8000" in files["k8s-keyed-kubernetes/README.txt"]

    widget(at.text_input, "Namespace").set_value("ml")
    widget(at.toggle, "Autoscale on CPU").set_value(True)
    at.run()
    widget(at.number_input, "Min").set_value(2)
    widget(at.number_input, "Max").set_value(4)
    at.run()
    assert not at.exception and not at.error
    found = manifests(unzip(downloads["k8s-keyed-kubernetes.zip"]))
    assert list(found)[0] == "00-namespace.yaml" and "40-hpa.yaml" in found
    for manifest in found.values():
        validate(manifest)
    hpa = found["40-hpa.yaml"]["spec"]
    assert (hpa["minReplicas"], hpa["maxReplicas"]) == (2, 4) and "replicas" not in found["20-deployment.yaml"]["spec"]
    assert found["10-secret.yaml"]["stringData"]["keys.json"] == keys  # the same keys across reruns

    at.radio(key="export_target").set_value("KServe").run()
    assert widget(at.number_input, "Replicas").disabled
    [download] = at.get("download_button")
    assert download.label == "Download k8s-keyed-kserve.zip"
    found = manifests(unzip(downloads["k8s-keyed-kserve.zip"]))
    assert list(found) == ["00-namespace.yaml", "10-secret.yaml", "20-inferenceservice.yaml"]
    predictor = dict(found["20-inferenceservice.yaml"]["spec"]["predictor"])
    assert (predictor.pop("minReplicas"), predictor.pop("maxReplicas")) == (2, 4)
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "k8s-keyed-predictor"}, "spec": predictor})


def test_export_options_out_of_their_rules_show_the_backends_message_and_no_download(home, downloads):
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "k8s-open", timeout=180)
    at = app(deployment="k8s-open")
    widget(at.toggle, "Autoscale on CPU").set_value(True)
    at.run()
    widget(at.number_input, "Min").set_value(5)
    at.run()
    assert [e.value for e in at.error] == [
        "Check the export options: " + verbatim("autoscale 5:3 is not a range: MIN must be at least 1 and at most MAX")]
    assert not at.get("download_button")
    widget(at.number_input, "Min").set_value(1)
    widget(at.text_input, "Image").set_value("Not An Image")
    at.run()
    assert at.error and "image tag 'Not An Image' is not a valid Docker image name" in at.error[0].value.replace("\\", "")
    widget(at.text_input, "Image").set_value("modeldeck/sklearn-mnist:1")
    at.run()
    assert not at.error
    [download] = at.get("download_button")
    assert download.label == "Download k8s-open-kubernetes.zip"
    found = manifests(unzip(downloads["k8s-open-kubernetes.zip"]))
    assert "10-secret.yaml" not in found and "40-hpa.yaml" in found  # deployed without auth: no Secret
