"""The Deploy page and the local runtime's sandbox (AppTest): the "Trust the model's code" checkbox says what it
means, a model the runtime cannot sandbox is refused without it and deployed with it, and the chosen
deployment's caption says which it got."""

import pytest

from dashboard.common import verbatim

from .test_dashboard import app, backend_deck, button, dashboard_home, deploy, finish_deploy


@pytest.fixture()
def home(trained_home, tmp_path, monkeypatch):
    yield from dashboard_home(trained_home, tmp_path, monkeypatch)


def trust_box(at):
    [box] = [c for c in at.checkbox if c.label == "Trust the model's code"]
    return box


def model_code_caption(at) -> str:
    """The chosen deployment's caption that says what its model's code may do."""
    [caption] = [c.value for c in at.caption if verbatim("Model code: ") in c.value]
    return caption


def test_the_trust_checkbox_is_off_and_its_help_says_in_words_what_trusting_means(home):
    at = app()
    box = trust_box(at)
    assert box.value is False
    for words in ("no bubblewrap", "runs with your user's full rights", "other deployments' keys",
                  "reach the network", "Where the sandbox works, this changes nothing"):
        assert words in box.help, words
    [runtime] = [r for r in at.radio if r.label == "Runtime"]
    assert "sandboxed" in str(runtime.proto) and "bubblewrap" in str(runtime.proto)  # the local runtime's caption


def test_a_sandboxed_deployment_says_so_under_the_list(home):
    at = app()
    name = deploy(at, "boxed")
    assert model_code_caption(at) == verbatim(
        "Model code: sandboxed (bubblewrap): no network, read-only files but its run/ folder, user nobody without "
        "capabilities, 1 GiB of memory a process.")
    assert name in [c.value.replace("\\", "").split(":")[0] for c in at.caption]  # of the deployment chosen


def test_without_a_sandbox_the_page_refuses_until_the_model_is_trusted_and_then_says_it_is_not_sandboxed(
        home, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")  # no bwrap to be found, as where bubblewrap is not installed
    at = app()
    [box for box in at.text_input if box.label == "Deployment name"][0].set_value("untrusted")
    button(at, "Deploy").click().run()
    finish_deploy(at)
    refused = " ".join(e.value for e in at.error)
    for words in ("untrusted could not be deployed", "cannot sandbox", "Trust the model", "full rights"):
        assert verbatim(words) in refused, words
    assert backend_deck(home).deployments.list() == []
    trust_box(at).check()  # submitted with the form
    name = deploy(at, "trusted")
    assert backend_deck(home).deployments.get(name).config.trust_model
    assert model_code_caption(at).startswith(":material/warning: " + verbatim(
        "Model code: not sandboxed (--trust-model): the model's code runs with your user's rights"))
