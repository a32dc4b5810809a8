"""The Deploy page under AppTest on the local runtime: the version follows the model, an uploaded entry
script deploys through the one deploy path, one deploy per click, and a deleted deployment's name stays."""

from pathlib import Path

import pytest
from streamlit.testing.v1.errors import AppTestError

from backend.errors import DeploymentExistsError
from backend.runtimes import DeployConfig
from backend.runtimes.base import DeploymentState
from backend.services.deploying import start_deploy
from dashboard.common import deployment_gone, verbatim

from .conftest import FIXTURES
from .test_dashboard import app, backend_deck, button, dashboard_home, deploy, finish_deploy, on_page, select, url_param

TUTORIAL_SCORE = FIXTURES / "tutorial_score.py"


@pytest.fixture()
def home(trained_home, tmp_path, monkeypatch):
    """A home with sklearn_mnist:1, new deployments on the local runtime, cleaned up after."""
    yield from dashboard_home(trained_home, tmp_path, monkeypatch)


def register_one_version_model(home: Path) -> None:
    """sklearn_mnist:2 (the pickle with a score.py beside it) and `digits_once`:1, a model with one version."""
    deck = backend_deck(home)
    pickle = home / "blobs" / deck.registry.get("sklearn_mnist", 1).files[0].sha256
    named = home / "sklearn_mnist_model.pkl"
    named.write_bytes(pickle.read_bytes())
    deck.registry.register("sklearn_mnist", [named, TUTORIAL_SCORE])
    deck.registry.register("digits_once", [named])


def test_choosing_a_model_with_one_version_starts_at_its_latest_version(home):
    register_one_version_model(home)
    at = app()
    assert select(at, "Version").value == 2  # sklearn_mnist's latest
    select(at, "Model").set_value("digits_once").run()
    assert not at.exception and not at.warning
    assert select(at, "Version").value == 1 and url_param(at, "version") == "1"
    assert any(b.label == "Deploy" for b in at.button)  # the form is there
    select(at, "Model").set_value("sklearn_mnist").run()
    assert select(at, "Version").value == 2  # back to its latest, not the one chosen before

    linked = on_page("views/deploy.py", model="sklearn_mnist", version="1")  # a link naming both keeps both
    assert select(linked, "Model").value == "sklearn_mnist" and select(linked, "Version").value == 1


def test_the_tutorial_score_py_uploaded_on_the_form_is_deployed_and_serves(home):
    at = app()
    at.file_uploader[0].set_value(("score.py", TUTORIAL_SCORE.read_bytes(), "text/x-python"))
    name = deploy(at, "uploaded-script")
    deck = backend_deck(home)
    deployment = deck.deployments.get(name)
    assert deployment.entry_script == "score.py" and deployment.state is DeploymentState.HEALTHY
    assert "scoring script: score.py" in at.code[1].value  # "How it went", the first step's words
    predictions = deck.client.run(deployment.scoring_uri or "", [[0.0] * 784])
    assert isinstance(predictions, list) and len(predictions) == 1  # the tutorial's run(): labels only


def test_an_uploaded_script_whose_init_fails_is_a_readable_failed_state(home):
    at = app()
    at.file_uploader[0].set_value(("score.py", (FIXTURES / "failing_init_score.py").read_bytes(), "text/x-python"))
    [box for box in at.text_input if box.label == "Deployment name"][0].set_value("bad-init")
    button(at, "Deploy").click().run()
    finish_deploy(at)
    assert not at.exception
    assert at.error[0].value.startswith("Deployment bad-init failed: " + verbatim("init() failed: RuntimeError"))
    assert list(at.dataframe[0].value["state"]) == ["Failed"]
    detail = backend_deck(home).deployments.get("bad-init").detail
    assert "detail" in at.dataframe[0].proto.columns and "Traffic section gives it whole" in at.dataframe[0].proto.columns
    assert any(verbatim(detail) in i.value for i in at.info)  # whole, where the table's narrow column cuts it


def test_deploy_is_disabled_while_a_deploy_runs_and_a_second_submit_deploys_nothing(home):
    at = app()
    [box for box in at.text_input if box.label == "Deployment name"][0].set_value("once")
    button(at, "Deploy").click().run()
    assert not at.exception and "_deploy_job" in at.session_state  # running in the background
    assert button(at, "Deploy").disabled
    assert not at.success  # its progress shows, the outcome once it ended
    with pytest.raises(AppTestError, match="disabled"):  # a browser user cannot click it either
        button(at, "Deploy").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    finish_deploy(at)
    assert not at.error and "is Healthy" in at.success[0].value  # the first deploy's outcome, no "exists already"
    assert [d.name for d in backend_deck(home).deployments.list()] == ["once"]
    assert not button(at, "Deploy").disabled


def test_a_reload_mid_deploy_finds_the_running_deploy_shows_its_progress_and_then_its_outcome(home):
    first = app()
    slow = FIXTURES / "slow_init_score.py"  # 20 s: still running when the second session opens
    first.file_uploader[0].set_value((slow.name, slow.read_bytes(), "text/x-python"))
    [box for box in first.text_input if box.label == "Deployment name"][0].set_value("reloaded")
    button(first, "Deploy").click().run()
    assert not first.exception and "_deploy_job" in first.session_state
    reloaded = app()  # a reload: a new session, whose session state knows nothing of the deploy
    assert "_deploy_job" in reloaded.session_state, "the new session did not find the running deploy"
    assert button(reloaded, "Deploy").disabled and not reloaded.success
    assert [(s.label, s.state) for s in reloaded.get("status")] == [
        ("Deploying sklearn_mnist:1 as reloaded…", "running")]  # its progress, never a check mark while it runs
    deck = backend_deck(home)
    with pytest.raises(DeploymentExistsError, match="reloaded is being deployed already"):  # from any session
        start_deploy(deck, deck.registry.get("sklearn_mnist", 1), "reloaded", DeployConfig())
    finish_deploy(reloaded)
    assert not reloaded.error and "**reloaded** is Healthy" in reloaded.success[0].value
    assert any(link.label == "Test it" for link in reloaded.get("page_link"))
    assert not button(reloaded, "Deploy").disabled
    finish_deploy(first)  # the session that started it still shows its outcome too
    assert "**reloaded** is Healthy" in first.success[0].value
    later = app()  # shown: a later session does not show it again
    assert "_deploy_job" not in later.session_state and not later.success
    assert [d.name for d in deck.deployments.list()] == ["reloaded"]


def test_a_deleted_deployment_stays_in_the_address_and_a_reload_says_it_is_gone(home):
    at = app()
    kept = deploy(at, "kept")
    doomed = deploy(at, "doomed")
    button(at, "Delete…").click().run()
    button(at, f"Yes, delete {doomed}").click().run()
    assert not at.exception
    assert url_param(at, "deployment") == doomed
    assert not at.warning and [s.value for s in at.success] == [verbatim(f"Deleted {doomed}.")]  # this session's own
    assert select(at, "Deployment").value is None  # never another one silently

    reloaded = on_page("views/deploy.py", deployment=doomed)
    assert [w.value for w in reloaded.warning] == [deployment_gone(doomed)]
    assert select(reloaded, "Deployment").value is None and url_param(reloaded, "deployment") == doomed
    select(reloaded, "Deployment").set_value(kept).run()
    assert not reloaded.warning and url_param(reloaded, "deployment") == kept

    backend_deck(home).deployments.delete(kept)
    empty = on_page("views/deploy.py", deployment=kept)  # the last one gone: still said, not dropped
    assert [w.value for w in empty.warning] == [deployment_gone(kept)]
    assert any("No deployment yet" in i.value for i in empty.info)
