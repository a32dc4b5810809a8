"""Every dashboard page under Streamlit's AppTest, against the real backend on the local runtime."""

import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from backend.config import Settings
from backend.context import open_modeldeck
from dashboard import common

from .conftest import copy_home

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


@pytest.fixture()
def home(trained_home, tmp_path, monkeypatch):
    """A home with the trained sample model, the local runtime, and deployments cleaned up after."""
    home = copy_home(trained_home, tmp_path / "home")
    monkeypatch.setenv("MODELDECK_HOME", str(home))
    monkeypatch.setenv("MODELDECK_RUNTIME", "local")
    common._open.clear()
    yield home
    deck = open_modeldeck(Settings(home=home, runtime="local"))
    for deployment in deck.deployments.list():
        deck.deployments.delete(deployment.name)
    common._open.clear()


def app() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    assert not at.exception
    return at


def button(at: AppTest, label: str):
    matches = [b for b in at.button if b.label == label]
    assert matches, f"no button {label!r} in {[b.label for b in at.button]}"
    return matches[0]


def deploy(at: AppTest, name: str | None = None) -> str:
    if name is not None:
        at.text_input[0].set_value(name)
    button(at, "Deploy").click().run()
    assert not at.exception
    assert not at.error, [e.value for e in at.error]
    return at.session_state.test_deployment


def test_first_run_trains_the_sample_model_and_opens_on_deploy(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELDECK_HOME", str(tmp_path / "empty-home"))
    monkeypatch.setenv("MODELDECK_RUNTIME", "local")
    common._open.clear()
    at = app()
    assert at.title[0].value == "Deploy"
    assert at.selectbox[0].value == "sklearn_mnist"
    trained = open_modeldeck(Settings(home=tmp_path / "empty-home")).registry.list()
    assert [m.id for m in trained] == ["sklearn_mnist:1"] and trained[0].metrics["accuracy"] > 0.85
    assert "local processes" in at.sidebar.caption[0].value
    common._open.clear()


def test_models_page_lists_the_registry_and_trains_a_new_version(home):
    at = app()
    at.switch_page("views/models.py").run()
    table = at.dataframe[0].value
    assert list(table["model"]) == ["sklearn_mnist"] and table["accuracy"][0] > 0.85
    button(at, "Train sample model").click().run()
    assert not at.exception and not at.error
    assert list(app().switch_page("views/models.py").run().dataframe[0].value["version"]) == [2, 1]


def test_deploy_page_deploys_lists_shows_logs_and_deletes_with_confirmation(home):
    at = app()
    name = deploy(at)
    assert name == "sklearn-mnist-1"
    assert "is Healthy" in at.success[0].value and at.code[-1].value.startswith("http://127.0.0.1:")
    listed = at.dataframe[0].value
    assert list(listed["name"]) == [name] and "Healthy" in listed["state"][0]
    button(at, "Logs").click().run()
    assert any("modeldeck serving: listening on" in c.value for c in at.code)
    button(at, "Delete…").click().run()
    assert "Delete **sklearn-mnist-1**?" in at.warning[0].value
    button(at, "Yes, delete sklearn-mnist-1").click().run()
    assert not at.exception
    assert any("No deployment yet" in i.value for i in at.info)


def test_an_invalid_name_and_a_broken_model_are_readable_errors(home):
    at = app()
    at.text_input[0].set_value("Bad Name!")
    button(at, "Deploy").click().run()
    assert "deployment name 'Bad Name!' is not valid" in at.error[0].value
    deck = open_modeldeck(Settings(home=home, runtime="local"))
    broken = home / "broken.pkl"
    broken.write_bytes(b"this is not a pickle")
    deck.registry.register("broken", [broken])
    at = app()
    at.selectbox[0].set_value("broken").run()
    button(at, "Deploy").click().run()
    assert not at.exception
    assert at.error[0].value == "Deployment broken-1 failed: the server process exited with code 3"
    assert any("init() failed" in c.value and "Traceback" in c.value for c in at.code)


def test_test_page_sends_images_scores_the_test_set_and_shows_working_snippets(home):
    at = app()
    deploy(at)
    at.switch_page("views/test.py").run()
    assert not at.exception
    button(at, "Send 30 random test images").click().run()
    summary = next(m.value for m in at.markdown if "correct" in m.value)
    assert summary.startswith("**") and "of 30 correct" in summary
    assert len(at.get("image")) == 1
    button(at, "Score the whole test set (10,000 images)").click().run()
    assert not at.exception and not at.error
    accuracy = at.metric[0].value
    sample_accuracy = open_modeldeck(Settings(home=home)).registry.get("sklearn_mnist").metrics["accuracy"]
    assert accuracy == f"{sample_accuracy:.2%}"
    assert len(at.get("image")) == 2  # the strip and the heatmap
    assert any(" taken for " in m.value for m in at.markdown)
    curl = next(c.value for c in at.code if c.value.startswith("curl "))
    result = subprocess.run(["bash", "-c", curl], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0 and result.stdout == "[7]"  # the first MNIST test image is a 7
    python = next(c.value for c in at.code if c.value.startswith("import requests"))
    out = subprocess.run([sys.executable, "-c", python], capture_output=True, text=True,
                         timeout=30)
    assert out.stdout.strip() == "[7]", out.stderr


def test_test_page_without_a_healthy_deployment_says_what_to_do(home):
    at = app()
    at.switch_page("views/test.py").run()
    assert "No deployment is Healthy" in at.info[0].value


def test_an_endpoint_that_stops_answering_or_refuses_the_data_is_a_readable_error(home):
    at = app()
    name = deploy(at)
    at.switch_page("views/test.py").run()
    at.selectbox[1].set_value("digits").run()  # 8x8 images against a 28x28 model: the endpoint refuses them
    button(at, "Send 30 random test images").click().run()
    assert not at.exception
    assert at.error[0].value == ("Scoring failed: the endpoint refused the request (HTTP 400): "
                                 "each row must have 784 values, got 64")
    open_modeldeck(Settings(home=home, runtime="local")).targets.open("local").stop(name)
    at.run()
    assert not at.exception
    assert "No deployment is Healthy" in at.info[0].value


def test_no_docker_engine_is_a_readable_error(tmp_path, monkeypatch):
    monkeypatch.setenv("MODELDECK_HOME", str(tmp_path))
    monkeypatch.setenv("MODELDECK_RUNTIME", "docker")
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/none.sock")
    common._open.clear()
    at = AppTest.from_file(APP, default_timeout=60).run()
    assert not at.exception
    assert "ModelDeck cannot start: no Docker engine answers" in at.error[0].value
    common._open.clear()
