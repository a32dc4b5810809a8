"""The Test page against a deployment whose server died or crash-loops, on the local runtime: only
deployments that can answer are offered; one that cannot is named with its state and why (as the
Deploy page's list says it), with its logs a click away and nothing left to send to it."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from backend.runtimes.base import DeploymentState
from backend.serving.crashloop import CRASH_LOOP_DEATHS

from .test_dashboard import backend_deck, button, dashboard_home, on_page, select

EXITING_SCRIPT = "import os\n\n\ndef init():\n    pass\n\n\ndef run(raw_data):\n    os._exit(3)\n"
SEND = "Send 30 random test images"


@pytest.fixture()
def home(trained_home, tmp_path, monkeypatch):
    """A home with sklearn_mnist:1, new deployments on the local runtime, cleaned up after."""
    yield from dashboard_home(trained_home, tmp_path, monkeypatch)


def open_test_page(name: str):
    """A new session on the Test page whose address names deployment `name` (a reload, a shared link)."""
    return on_page("views/test.py", deployment=name)


def errors(at) -> list[str]:
    return [e.value.replace("\\", "") for e in at.error]


def without_until(text: str) -> str:
    """A crash loop's reason as its server gives it, with or without what a worker adds to it (read at two
    moments, one may come from a worker and the other from the supervisor)."""
    return text.replace(" (it reads as failed until a request is answered)", "")


def test_a_killed_server_is_named_with_its_state_and_exit_and_nothing_is_left_to_send(home):
    deck = backend_deck(home)
    model = deck.registry.get("sklearn_mnist", 1)
    deck.deployments.deploy_and_wait(model, "tp-other", timeout=180)
    doomed = deck.deployments.deploy_and_wait(model, "tp-doomed", timeout=180)
    at = open_test_page("tp-doomed")
    assert select(at, "Deployment").value == "tp-doomed"
    group = json.loads((home / "deployments" / doomed.name / "process.json").read_text())["pid"]
    os.killpg(group, signal.SIGKILL)  # the server's whole process group, as an OOM kill or a crash would end it
    time.sleep(0.5)
    now = deck.deployments.get("tp-doomed")
    assert now.state is DeploymentState.FAILED
    button(at, SEND).click().run()
    assert not at.exception, at.exception
    shown = errors(at)  # the click's rerun lists the deployments anew: it is named, not sent to
    assert shown == [f"tp-doomed is Failed: {now.detail}. It cannot answer requests now: choose another "
                     "deployment, or read its logs."]
    assert now.detail == "the server process is gone (killed, or the machine restarted)"
    assert select(at, "Deployment").value is None and [o.split(" — ")[0] for o in select(at, "Deployment").options] == ["tp-other"]
    assert not [b for b in at.button if b.label == SEND]  # no send button that can only fail
    assert any(link.label == "Logs of tp-doomed" for link in at.get("page_link"))
    # A reload of the address: the deployment's state and why, from the list
    again = open_test_page("tp-doomed")
    assert errors(again) == [f"tp-doomed is Failed: {now.detail}. It cannot answer requests now: choose another "
                             "deployment, or read its logs."]
    assert not [b for b in again.button if b.label == SEND]


def test_a_crash_looping_deployment_says_its_servers_reason_and_a_lone_one_is_not_offered(home, tmp_path):
    script = tmp_path / "score.py"
    script.write_text(EXITING_SCRIPT)
    deck = backend_deck(home)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "tp-looping", entry_script=script,
                                     timeout=180)
    at = open_test_page("tp-looping")
    said: list[list[str]] = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and not any("is Failed" in e for e in errors(at)):
        sends = [b for b in at.button if b.label == SEND]
        if sends:  # each request ends a worker; the server restarts it, slower each time
            sends[0].click().run()  # (its rerun may find it restarting: then nothing is sent, and no error)
            if errors(at):
                said.append(errors(at))
        else:  # restarting: not offered meanwhile, and said so (not as an error)
            assert [i.value.replace("\\", "") for i in at.info][0].startswith("tp-looping is Transitioning. It answers "
                                                                              "once it is Healthy"), at.info
            time.sleep(0.5)
            at.run()
        assert not at.exception, at.exception
    now = deck.deployments.get("tp-looping")
    assert now.state is DeploymentState.FAILED and f"ended {CRASH_LOOP_DEATHS} times in a row" in now.detail, now
    # one request per death at least (one sent while the server waits to restart gets its 503, not a death);
    # before the loop the server restarts the worker: the page reads it restarting, or answering again
    assert len(said) >= CRASH_LOOP_DEATHS, said
    restarting = {"No answer: deployment 'tp-looping' is Transitioning: its server gave no answer to this request and "
                  "is starting again (its worker ended, say); its logs say why.",
                  "No answer: deployment 'tp-looping' is Healthy: its server restarted after a fault while it had this "
                  "request, and answers again now; its logs say why."}
    assert all(len(shown) == 1 and shown[0] in restarting for shown in said[:-1]), said
    assert [without_until(e) for e in said[-1]] == [
        f"No answer: deployment 'tp-looping' is Failed: {without_until(now.detail)}. Nothing can be sent to it until "
        "it is Healthy again: choose another deployment, or read its logs."]
    assert not [b for b in at.button if b.label == SEND]
    again = open_test_page("tp-looping")
    shown = [without_until(e) for e in errors(again)]
    assert shown == [f"tp-looping is Failed: {without_until(now.detail)}. It cannot answer requests now: choose "
                     "another deployment, or read its logs."]
    assert "No deployment is Healthy" in again.info[0].value
    assert not [b for b in again.button if b.label == SEND]
    assert any(link.label == "Logs of tp-looping" for link in again.get("page_link"))


def test_compare_names_a_chosen_deployment_that_died_with_its_state_and_reason(home):
    deck = backend_deck(home)
    model = deck.registry.get("sklearn_mnist", 1)
    deck.deployments.deploy_and_wait(model, "tp-alive", timeout=180)
    dead = deck.deployments.deploy_and_wait(model, "tp-dead", timeout=180)
    os.killpg(json.loads((home / "deployments" / dead.name / "process.json").read_text())["pid"], signal.SIGKILL)
    time.sleep(0.5)
    now = deck.deployments.get("tp-dead")
    at = on_page("views/compare.py", a="tp-dead", b="tp-alive")
    assert errors(at) == [f"tp-dead is Failed: {now.detail}. It cannot answer requests now: choose another "
                          "deployment, or read its logs."]
    assert "Two things to compare are needed" in at.info[0].value  # tp-alive alone is left to compare
    assert not [b for b in at.button if b.label.startswith("Compare on")]
