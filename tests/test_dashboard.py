"""Every dashboard page under Streamlit's AppTest, against the real backend on the local runtime."""

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.config import Settings
from backend.context import open_modeldeck
from backend.data.builtin import FASHION_CLASSES, load_mnist_test
from backend.errors import InvalidDeployConfigError, InvalidDeploymentNameError
from backend.runtimes import DeployConfig, validate_name
from backend.services import endpoints
from backend.services.scoring import robustness_curve
from dashboard import common
from dashboard.common import verbatim
from dashboard.traffic import compact_count

from .conftest import copy_home

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture()
def home(trained_home, tmp_path, monkeypatch):
    """A home with sklearn_mnist:1, new deployments on the local runtime, cleaned up after."""
    yield from dashboard_home(trained_home, tmp_path, monkeypatch)


@pytest.fixture()
def fashion_dashboard_home(fashion_home, tmp_path, monkeypatch):
    """A home with sklearn_fashion:1, new deployments on the local runtime, cleaned up after."""
    yield from dashboard_home(fashion_home[0], tmp_path, monkeypatch)


def dashboard_home(source, tmp_path, monkeypatch):
    yield from dashboard_on(copy_home(source, tmp_path / "home"), monkeypatch)


def dashboard_on(home: Path, monkeypatch):
    """The pages open `home` on the local runtime; every deployment left there is deleted after."""
    monkeypatch.setenv("MODELDECK_HOME", str(home))
    monkeypatch.setenv("MODELDECK_RUNTIME", "local")
    common._open.clear()
    yield home
    deck = open_modeldeck(Settings(home=home, runtime="local"))
    for view in endpoints.list_endpoints(deck):  # the proxy stops with the last
        endpoints.delete_endpoint(deck, view.record.name)
    for deployment in deck.deployments.list():
        deck.deployments.delete(deployment.name)
    common._open.clear()


def app(**query) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def on_page(page: str, **query) -> AppTest:
    """A new browser session opened on `page` with the address's `query` (a reload or a shared link)."""
    at = app()
    at.switch_page(page)
    for key, value in query.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} in {[b.label for b in at.button]}"
    return matches[0]


def select(at: AppTest, label: str):
    matches = [s for s in at.selectbox if s.label == label]
    assert matches, f"no select {label!r} in {[s.label for s in at.selectbox]}"
    return matches[0]


def finish_deploy(at: AppTest, timeout: float = 120) -> AppTest:
    """Reruns the page until the deploy the last click started has ended (in a browser its progress polls)."""
    deadline = time.monotonic() + timeout
    while "_deploy_job" in at.session_state and time.monotonic() < deadline:
        time.sleep(0.25)
        at.run()
        assert not at.exception, at.exception
    assert "_deploy_job" not in at.session_state, "the deploy did not end in time"
    return at


def deploy(at: AppTest, name: str | None = None) -> str:
    if name is not None:
        [box for box in at.text_input if box.label == "Deployment name"][0].set_value(name)
    button(at, "Deploy").click().run()
    assert not at.exception
    finish_deploy(at)
    assert not at.error, [e.value for e in at.error]
    success = at.success[0].value
    assert "is Healthy" in success
    return success.split("**")[1].replace("\\", "")  # the name, Markdown escapes removed


def url_param(at: AppTest, key: str) -> str:
    value = at.query_params[key]
    return value[0] if isinstance(value, list) else value


def backend_deck(home):
    return open_modeldeck(Settings(home=home, runtime="local"))


def test_first_run_trains_both_sample_versions_inside_the_page_and_opens_on_deploy_with_the_latest(
        tmp_path, monkeypatch):
    monkeypatch.setenv("MODELDECK_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("MODELDECK_RUNTIME", "local")
    common._open.clear()
    at = app()
    assert at.title[0].value == "Deploy"  # "/" opens the Deploy page
    assert select(at, "Model").value == "sklearn_mnist" and select(at, "Version").value == 2
    trained = open_modeldeck(Settings(home=tmp_path / "empty-home")).registry.list()
    assert [m.id for m in trained] == ["sklearn_mnist:1", "sklearn_mnist:2"]
    assert trained[0].metrics["accuracy"] == 0.8953 and trained[1].metrics["accuracy"] >= 0.94
    shown = f"accuracy {trained[1].metrics['accuracy']:.2%}"  # the preselected version's facts
    assert any(shown in c.value.replace("\\", "") for c in at.caption)
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "**local** — local processes" in sidebar and "**Home**" in sidebar
    common._open.clear()


def test_models_page_lists_the_registry_and_says_when_training_gives_the_same_model(home):
    at = app().switch_page("views/models.py").run()
    table = at.dataframe[0].value
    accuracy = backend_deck(home).registry.get("sklearn_mnist", 1).metrics["accuracy"]
    assert list(table["model"]) == ["sklearn_mnist:1"] and table["accuracy"][0] == f"{accuracy:.2%}"
    assert table["registered"][0] and not re.match(r"\d{4}-\d\d-\d\d", table["registered"][0])  # friendly, not ISO
    assert table["input"][0] == "28x28 → 10 classes"
    older = "This home was made before ModelDeck registered two sample versions: train \"MNIST — SVC with " \
            "calibrated probabilities\" below to add it to sklearn_mnist."
    assert [i.value.replace("\\", "") for i in at.info] == [older]  # this home holds version 1 only
    assert select(at, "Sample").value.startswith("MNIST — logistic regression")
    button(at, "Train sample model").click().run()
    assert not at.exception and not at.error
    assert "Training gave exactly the file of sklearn_mnist:1 again" in at.info[-1].value.replace("\\", "")
    assert list(at.dataframe[0].value["model"]) == ["sklearn_mnist:1"]


def test_a_version_registered_elsewhere_shows_in_the_models_table_on_the_next_rerun(home, tmp_path):
    at = app().switch_page("views/models.py").run()
    other = tmp_path / "other.pkl"
    other.write_bytes(b"some other model bytes")
    backend_deck(home).registry.register("sklearn_mnist", [other])
    at.run()
    assert list(at.dataframe[0].value["model"]) == ["sklearn_mnist:2", "sklearn_mnist:1"]
    assert list(at.dataframe[0].value["accuracy"]) == ["not scored yet", "89.53%"]  # never "None"
    assert list(at.dataframe[0].value["scored on"]) == ["", "at registration"]


def test_the_models_table_shows_the_latest_whole_set_evaluation_over_the_registration_accuracy(home):
    from backend.inspection.evaluation_log import EvaluationRecord

    def kept(dataset: str, accuracy: float, perturbation: str = "") -> None:
        backend_deck(home).evaluations.add(EvaluationRecord(
            deployment="polish-lr", deployment_uid="u", model_name="sklearn_mnist", model_version=1,
            model_sha256="s", dataset=dataset, dataset_sha256="d", perturbation=perturbation, accuracy=accuracy,
            n=10, labels=("0", "1"), confusion=((5, 0), (1, 4)), precision=(0.8, 1.0), recall=(1.0, 0.8),
            created_at="2026-12-03T05:00:00+00:00", duration_s=0.1, source="test"))

    kept("mnist", 0.8953)
    kept("digits", 0.9611)
    kept("mnist", 0.41, perturbation="rotate=15")  # newest, but not the whole set as it is
    table = app().switch_page("views/models.py").run().dataframe[0].value
    assert list(table["accuracy"]) == ["96.11%"]
    assert list(table["scored on"]) == ["scikit-learn digits 8x8 (1,797)"]


def test_deploy_page_deploys_lists_shows_logs_and_deletes_with_fresh_counts(home):
    at = app()
    assert at.sidebar.metric[0].value == "0"
    name = deploy(at)
    assert name == "sklearn-mnist-v1"
    assert at.code[0].value.startswith("http://127.0.0.1:")
    assert at.sidebar.metric[0].value == "1"  # fresh right after the action
    listed = at.dataframe[0].value
    assert list(listed["name"]) == [name] and list(listed["state"]) == ["Healthy"]
    assert list(listed["runtime"]) == ["local"] and "detail" not in listed.columns  # empty: its room goes to the rest
    assert f"{name}: 1 CPU, 1 GB memory, request bodies up to 128 MB, 60 s per request" in [c.value.replace("\\", "") for c in at.caption]
    assert url_param(at, "deployment") == name
    button(at, "Logs").click().run()
    assert any("modeldeck serving: listening on" in c.value for c in at.code)
    button(at, "Delete…").click().run()
    assert f"Delete **{verbatim(name)}**?" in at.warning[0].value
    button(at, f"Yes, delete {name}").click().run()
    assert not at.exception and not at.warning and [s.value for s in at.success] == [verbatim(f"Deleted {name}.")]
    assert url_param(at, "deployment") == name  # kept in the address: a reload says it is gone
    assert any("No deployment yet" in i.value for i in at.info)
    assert at.sidebar.metric[0].value == "0"


def test_the_form_and_the_cli_refuse_the_same_values_with_the_same_verbatim_messages(home):
    at = app()
    [box for box in at.text_input if box.label == "Deployment name"][0].set_value("Bad_Name!")
    button(at, "Deploy").click().run()
    with pytest.raises(InvalidDeploymentNameError) as name_error:
        validate_name("Bad_Name!")
    assert at.error[0].value == "Check the form: " + verbatim(str(name_error.value))
    assert "Bad\\_Name\\!" in at.error[0].value  # underscores escaped: shown as typed, not italic

    at = app()
    [box for box in at.number_input if box.label == "Memory (GB)"][0].set_value(0.01)
    button(at, "Deploy").click().run()
    with pytest.raises(InvalidDeployConfigError) as memory_error:
        DeployConfig(memory_gb=0.01)
    assert at.error[0].value == "Check the form: " + verbatim(str(memory_error.value))
    cli = subprocess.run([sys.executable, "-m", "backend", "deploy", "sklearn_mnist", "--name", "tiny",
                          "--memory-gb", "0.01"], capture_output=True, text=True, timeout=120)
    assert cli.returncode == 1 and f"error: {memory_error.value}" in cli.stderr

    memory = [box for box in at.number_input if box.label == "Memory (GB)"][0]
    assert memory.proto.format == "%g"  # so 0.125 is shown as 0.125, not 0.13


def test_a_broken_model_is_a_readable_failure_with_its_log(home):
    broken = home / "broken.pkl"
    broken.write_bytes(b"this is not a pickle")
    backend_deck(home).registry.register("broken", [broken])
    at = app()
    select(at, "Model").set_value("broken").run()
    button(at, "Deploy").click().run()
    finish_deploy(at)
    shown = at.error[0].value
    assert shown.startswith("Deployment broken-v1 failed: " + verbatim("init() failed: "))
    assert shown.endswith(verbatim("(the traceback is in the logs)"))
    assert any("init() failed" in c.value and "Traceback" in c.value for c in at.code)
    assert list(at.dataframe[0].value["state"]) == ["Failed"]  # kept, listed, deletable


def test_test_page_scores_keeps_results_in_the_url_and_brings_them_back_after_a_reload(home):
    at = app()
    name = deploy(at)
    at = app(deployment=name)
    at.switch_page("views/test.py").run()
    assert select(at, "Deployment").value == name
    # only the sets that fit 28x28 digits: not Fashion-MNIST (installed by scripts/setup.sh), whose classes
    # are not the model's, and each hidden one says why
    assert select(at, "Test set").options == ["MNIST 10k (bundled)"]
    assert select(at, "Test set").value == "mnist"
    hidden = next(c.value for c in at.caption if c.value.startswith("Not offered")).replace("\\", "")
    assert "digits 8x8" in hidden and "its images are 8x8; the model takes 28x28" in hidden
    assert "Fashion-MNIST 10k: its classes are T-shirt/top, Trouser, Pullover, ...; the model's are 0, 1, 2" in hidden
    button(at, "Send 30 random test images").click().run()
    summary = next(m.value for m in at.markdown if "correct" in m.value)
    assert "of 30 correct" in summary and "prediction (true label)" in summary
    button(at, "Score the whole test set (10,000 images)").click().run()
    assert not at.exception and not at.error
    accuracy = at.metric[0].value
    assert accuracy == f"{backend_deck(home).registry.get('sklearn_mnist', 1).metrics['accuracy']:.2%}"
    assert len(at.get("image")) == 2  # the strip and the open tab's gallery (the other draws when opened)
    assert len(at.get("vega_lite_chart")) == 2  # the clickable confusion matrix, the reliability diagram
    assert any("Click a cell" in i.value for i in at.info)
    kept = backend_deck(home).evaluations.list(deployment=name)[0]
    ece = f"{kept.calibration.ece:.1%}"
    assert metric(at, "Calibration error") == ece
    words = [c.value.replace("\\", "") for c in at.caption]  # Markdown escapes removed
    assert any(f"Expected calibration error {ece} (15 equal-width bins" in c for c in words), words
    assert any(c.endswith("scored just now") and "MNIST 10k (bundled)" in c for c in words)
    # the page opened on its defaults (the newest deployment, the first fitting set): none is written, so
    # none is a history entry of its own; a choice or a link ("Test it") is
    assert "deployment" not in at.query_params and "dataset" not in at.query_params

    reloaded = AppTest.from_file(APP, default_timeout=120)  # a new browser session on a link to it
    reloaded.query_params["deployment"] = name
    reloaded.run()
    reloaded.switch_page("views/test.py").run()
    assert not reloaded.exception
    assert select(reloaded, "Deployment").value == name
    assert reloaded.metric[0].value == accuracy
    assert any("of 30 correct" in m.value for m in reloaded.markdown)
    assert metric(reloaded, "Calibration error") == ece  # from the kept scoring
    models = app(id="sklearn_mnist:1")
    models.switch_page("views/models.py").run()
    [history] = [d.value for d in models.dataframe if "perturbation" in d.value.columns]
    assert list(history["test set"]) == ["MNIST 10k (bundled)"] and list(history["when"]) == ["just now"]
    assert list(history["calibration error (ECE)"]) == [ece]

    curl = next(c.value for c in at.code if c.value.startswith("curl "))
    result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout == "[7]"  # the first MNIST test image is a 7
    python = next(c.value for c in at.code if c.value.startswith("import requests"))
    out = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True, timeout=30)
    assert out.stdout.strip() == "[7]", out.stderr


def test_the_chosen_deployment_stays_chosen_when_others_appear_and_is_never_swapped_silently(home):
    at = app()
    first = deploy(at)
    at.switch_page("views/test.py").run()
    assert select(at, "Deployment").value == first
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "from-the-cli", timeout=180)
    at.run()  # a newer deployment appeared (made from the CLI): the choice stays
    assert select(at, "Deployment").value == first
    deck.runtimes.open("local").stop(first)
    at.run()
    assert not at.exception
    assert select(at, "Deployment").value is None  # not swapped for "from-the-cli"
    assert at.error[0].value.replace("\\", "").startswith(f"{first} is Failed: ")  # its state and why
    assert not [b for b in at.button if b.label.startswith("Send")]


def test_results_of_a_deleted_deployment_never_show_under_a_new_one_of_the_same_name(home):
    at = app()
    name = deploy(at)
    at.switch_page("views/test.py").run()
    button(at, "Send 30 random test images").click().run()
    deck = backend_deck(home)
    deck.deployments.delete(name)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), name, timeout=180)
    at = app(deployment=name)
    at.switch_page("views/test.py").run()
    assert select(at, "Deployment").value == name
    assert not any("correct" in m.value for m in at.markdown)


def test_the_test_page_shows_a_fashion_models_class_names_in_its_tables_and_matrix(
        fashion_dashboard_home, fashion_home):
    deck = backend_deck(fashion_dashboard_home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_fashion", 1), "fashion", timeout=180)
    at = app(deployment="fashion")
    at.switch_page("views/test.py").run()
    assert select(at, "Test set").options == ["Fashion-MNIST 10k"]  # chosen by the class names
    hidden = next(c.value for c in at.caption if c.value.startswith("Not offered")).replace("\\", "")
    assert "MNIST 10k (bundled)" in hidden and "its classes are 0, 1, 2" in hidden
    button(at, "Send 30 random test images").click().run()
    assert any("of 30 correct" in m.value for m in at.markdown)
    button(at, "Score the whole test set (10,000 images)").click().run()
    assert not at.exception and not at.error
    assert at.metric[0].value == f"{fashion_home[1]['metrics']['accuracy']:.2%}"
    tables = [d.value for d in at.dataframe]
    per_class = next(t for t in tables if "precision" in t.columns)
    assert list(per_class["class"]) == list(FASHION_CLASSES)
    shown = json.loads(next(d.proto.columns for d in at.dataframe if "precision" in d.value.columns))
    assert all(shown[rate]["type_config"]["format"] == "%.1f%%" for rate in ("precision", "recall"))  # "88.8%"
    assert 1 < per_class["recall"].max() <= 100  # percentages, as the report gives them
    counts = next(t for t in tables if "true \\ predicted" in t.columns)
    assert list(counts["true \\ predicted"]) == list(FASHION_CLASSES)
    assert list(counts.columns[1:]) == list(FASHION_CLASSES)
    assert any("- Shirt taken for " in m.value.replace("\\", "") for m in at.markdown)  # the most confused
    matrix = json.dumps(at.get("vega_lite_chart")[0].proto.spec)
    assert all(name in matrix for name in FASHION_CLASSES)


def test_test_page_without_a_healthy_deployment_says_what_to_do(home):
    at = app().switch_page("views/test.py").run()
    assert "No deployment is Healthy" in at.info[0].value


def test_no_docker_engine_leaves_the_registry_and_local_deployments_usable(tmp_path, monkeypatch, home):
    monkeypatch.setenv("MODELDECK_RUNTIME", "docker")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    common._open.clear()
    at = app()
    assert at.title[0].value == "Deploy" and not at.error
    sidebar = " ".join(c.value for c in at.sidebar.caption)
    assert "**docker** unavailable — no Docker engine answers" in sidebar
    radio = at.radio[0]
    assert radio.options == ["docker", "local"]
    radio.set_value("local")
    name = deploy(at)
    assert list(at.dataframe[0].value["runtime"]) == ["local"] and name
    models = at.switch_page("views/models.py").run()
    assert list(models.dataframe[0].value["model"]) == ["sklearn_mnist:1"]


def test_a_scoring_script_that_fails_points_at_its_logs_on_the_test_page(home, tmp_path):
    script = tmp_path / "score.py"
    script.write_text("def init():\n    pass\n\n\ndef run(raw_data):\n"
                      "    raise RuntimeError('weights_v2 missing *now*')\n")
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "faulty", entry_script=script, timeout=180)
    at = app(deployment="faulty")
    at.switch_page("views/test.py").run()
    button(at, "Send 30 random test images").click().run()
    assert not at.exception
    shown = at.error[0].value
    request_id = shown.split("request id ")[1].split(")")[0].replace("\\", "")
    assert shown == verbatim(f"The scoring script raised RuntimeError — see Logs on the Deploy page "
                             f"(request id {request_id}).")
    assert "weights_v2" not in shown  # the message stays in the logs, under the request id
    logs = deck.deployments.get_logs("faulty")
    assert f"request {request_id}: the scoring script raised RuntimeError" in logs and "weights_v2 missing" in logs
    assert not any("correct" in m.value for m in at.markdown)  # nothing kept from a failed request


def test_a_new_deployment_is_the_one_managed_even_when_the_address_named_another(home):
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "older", timeout=180)
    at = app(deployment="older")
    assert select(at, "Deployment").value == "older"
    made = deploy(at, "newer")
    assert made == "newer"
    assert select(at, "Deployment").value == "newer" and url_param(at, "deployment") == "newer"


def test_key_auth_from_the_form_then_keys_shown_rotated_and_hidden_on_the_deploy_page(home):
    at = app()
    [toggle for toggle in at.toggle if toggle.label == "Key auth"][0].set_value(True)
    name = deploy(at, "keyed")
    deck = backend_deck(home)
    assert deck.deployments.get(name).config.auth_enabled
    assert list(at.dataframe[0].value["auth"]) == ["key"]
    button(at, "Keys").click().run()
    keys = deck.deployments.keys(name)
    shown = [c.value for c in at.code]
    assert keys.primary in shown and keys.secondary in shown
    button(at, "Regenerate secondary").click().run()
    rotated = deck.deployments.keys(name)
    assert rotated.primary == keys.primary and rotated.secondary != keys.secondary
    assert rotated.secondary in [c.value for c in at.code] and keys.secondary not in [c.value for c in at.code]
    button(at, "Hide keys").click().run()
    assert rotated.primary not in [c.value for c in at.code]
    test_page = at.switch_page("views/test.py").run()
    button(test_page, "Send 30 random test images").click().run()  # the page sends the key
    assert not test_page.error and any("correct" in m.value for m in test_page.markdown)
    snippets = "\n".join(c.value for c in test_page.code)
    assert f"modeldeck deployments keys {name} --key primary" in snippets and rotated.primary not in snippets


def test_the_keys_button_is_disabled_for_a_deployment_without_key_auth(home):
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "open", timeout=180)
    at = app(deployment="open")
    assert button(at, "Keys").disabled


def test_the_request_console_shows_the_answer_as_it_comes_refusals_included(home):
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "console", timeout=180)
    at = app(deployment="console")
    at.switch_page("views/test.py").run()
    body = [t for t in at.text_area if t.label == "Request body"][0]
    assert json.loads(body.value)["data"][0][:3] == [0.0, 0.0, 0.0]  # a real test row, prefilled
    button(at, "Send").click().run()
    assert any("HTTP 200" in m.value for m in at.markdown)
    assert any(c.value.strip().startswith("[") and "7" in c.value for c in at.code)
    [t for t in at.text_area if t.label == "Request body"][0].set_value('{"data": [[true]]}')
    button(at, "Send").click().run()
    assert not at.exception and any("HTTP 400" in m.value for m in at.markdown)
    assert any("must be a JSON number, got true" in c.value for c in at.code)
    # Another deployment, with key auth: its console sends its key (the toggle is its own, on)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "console-keyed",
                                     DeployConfig(auth_enabled=True), timeout=180)
    at.run()
    select(at, "Deployment").set_value("console-keyed").run()
    assert [t for t in at.toggle if t.label == "Send the key"][0].value is True
    button(at, "Send").click().run()
    assert not at.exception and any("HTTP 200" in m.value for m in at.markdown)


def test_a_labels_only_script_says_so_instead_of_showing_confidence(home):
    from .conftest import FIXTURES

    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "labels-only", timeout=180,
                                     entry_script=FIXTURES / "tutorial_score.py")
    at = app(deployment="labels-only")
    at.switch_page("views/test.py").run()
    button(at, "Score the whole test set (10,000 images)").click().run()
    assert not at.exception and not at.error
    assert any("returns labels only" in c.value for c in at.caption)
    assert not any(m.label == "Calibration error" for m in at.metric)  # no probabilities, no calibration


def test_perturbations_show_beside_the_originals_and_a_robustness_curve_is_drawn(home):
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "robust", timeout=180)
    at = app(deployment="robust")
    at.switch_page("views/test.py").run()
    select(at, "Perturbation").set_value("rotate").run()
    assert [s for s in at.slider if s.label.startswith("Strength")][0].value == 15.0
    button(at, "Send 30 random test images").click().run()
    assert not at.exception and not at.error
    assert any("The same images with rotation 15" in m.value for m in at.markdown)
    assert len(at.get("image")) == 2  # the originals and the rotated ones
    button(at, "Score the whole test set (10,000 images, rotation 15)").click().run()
    rotated = float(at.metric[0].value.rstrip("%")) / 100
    assert rotated < deck.registry.get("sklearn_mnist", 1).metrics["accuracy"] - 0.05
    assert any(verbatim("on MNIST 10k (bundled), rotation 15, scored") in c.value for c in at.caption)
    assert url_param(at, "perturb") == "rotate=15"
    reloaded = on_page("views/test.py", deployment="robust", perturb="rotate=15")  # a reload or a shared link
    assert select(reloaded, "Perturbation").value == "rotate"
    assert [s for s in reloaded.slider if s.label.startswith("Strength")][0].value == 15.0
    assert any(verbatim("on MNIST 10k (bundled), rotation 15, scored") in c.value for c in reloaded.caption)
    refused = on_page("views/test.py", deployment="robust", perturb="rotate=500")
    assert any("cannot be applied" in w.value and verbatim("from -90 to 90") in w.value for w in refused.warning), \
        [w.value for w in refused.warning]
    assert select(refused, "Perturbation").value == "none" and "perturb" not in refused.query_params
    snapped = on_page("views/test.py", deployment="robust", perturb="rotate=7.3")  # onto the slider's 1° steps
    assert [s for s in snapped.slider if s.label.startswith("Strength")][0].value == 7.0
    assert url_param(snapped, "perturb") == "rotate=7"
    select(at, "Perturbation").set_value("none").run()
    assert "perturb" not in at.query_params
    assert not any("rotation 15" in c.value for c in at.caption)  # the clean results, not the rotated ones
    charts = len(at.get("vega_lite_chart"))
    button(at, "Robustness curve: gaussian noise at 8 strengths").click().run()
    assert not at.exception and not at.error
    assert len(at.get("vega_lite_chart")) == charts + 1
    kept = deck.evaluations.list(deployment="robust")
    assert [r.source for r in kept] == ["dashboard robustness"] * 8 + ["dashboard"]
    assert not any("Cut short" in w.value for w in at.warning)
    # A curve cut short (a rerun stops the page's script mid-run, by an exception) keeps what ran, marked partial
    def rerun_after_two(done: int, total: int) -> None:
        if done == 2:
            raise RuntimeError("a rerun")

    with pytest.raises(RuntimeError, match="a rerun"):
        robustness_curve(deck, deck.deployments.get("robust"), load_mnist_test(), "rotate", (0.0, 15.0, 30.0, 45.0),
                         source="test", progress=rerun_after_two)
    at.selectbox(key="curve_kind").set_value("rotate").run()
    assert any("Cut short: 2 of 4 strengths scored" in w.value for w in at.warning), [w.value for w in at.warning]
    kept = deck.evaluations.list(deployment="robust")
    assert kept[-1].perturbation == "rotate=15" and kept[-1].accuracy == pytest.approx(rotated, abs=1e-4)
    models = app(id="sklearn_mnist:1")
    models.switch_page("views/models.py").run()
    history = [d.value for d in models.dataframe if "perturbation" in d.value.columns]
    assert len(history) == 1 and list(history[0]["perturbation"])[-1] == "rotate=15"


def metric(at: AppTest, label: str) -> str:
    matches = [m for m in at.metric if m.label == label]
    assert matches, f"no metric {label!r} in {[m.label for m in at.metric]}"
    return matches[0].value


def test_the_traffic_section_and_a_load_test_show_the_servers_numbers_and_the_result_comes_back(home):
    at = app()
    name = deploy(at, "tr-traffic")
    at = app(deployment=name)
    assert [s.value for s in at.subheader if s.value == "Traffic"] and metric(at, "Requests") == "0"
    seconds = [n for n in at.number_input if n.label == "Seconds"][0]
    clients = [n for n in at.number_input if n.label == "Concurrent clients"][0]
    seconds.set_value(2)
    clients.set_value(2)
    button(at, "Run load test").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [table] = [d.value for d in at.dataframe if "requests/s" in d.value.columns]
    assert table["requests"][0] > 0 and table["errors"][0] == 0 and table["clients"][0] == 2
    assert metric(at, "Requests") != "0"  # redrawn during the test (it read 0 before)
    at.run()  # the fragment's next reading: every answer of the test counted by the server
    assert metric(at, "Requests") == compact_count(table["requests"][0])
    again = app(deployment=name)  # a reload: the kept result, and the chart so far at once
    [kept] = [d.value for d in again.dataframe if "requests/s" in d.value.columns]
    assert kept["requests"][0] == table["requests"][0]
    assert any("/score, read from the server's /metrics" in c.value for c in again.caption)


def test_a_redeploy_under_the_same_name_starts_with_empty_traffic_and_no_load_test(home):
    at = app()
    name = deploy(at, "tr-again")
    backend_deck(home).deployments.healthy(name)
    from backend.services.traffic import load_test

    load_test(backend_deck(home), name, seconds=1, concurrency=1)
    at = app(deployment=name)
    assert metric(at, "Requests") != "0"
    backend_deck(home).deployments.delete(name)
    at = app()
    deploy(at, name)
    at = app(deployment=name)
    assert metric(at, "Requests") == "0" and any("No load test of this deployment yet" in c.value for c in at.caption)


def test_a_stopped_deployment_says_why_instead_of_traffic(home):
    at = app()
    name = deploy(at, "tr-stopped")
    deck = backend_deck(home)
    deck.runtimes.open("local").stop(name)
    at = app(deployment=name)
    assert any("Traffic and load tests need a Healthy deployment" in i.value for i in at.info)
    assert not [m for m in at.metric if m.label == "Requests"]
