"""The Deploy page's run() time limit under AppTest on the local runtime: deployed as set, shown with the
deployment's limits, and refused out of its range with the rule."""

from __future__ import annotations

import pytest
import requests

from backend.runtimes.base import DeploymentState
from dashboard.common import verbatim

from .test_dashboard import app, backend_deck, button, dashboard_home, deploy


@pytest.fixture()
def home(trained_home, tmp_path, monkeypatch):
    """A home with sklearn_mnist:1, new deployments on the local runtime, cleaned up after."""
    yield from dashboard_home(trained_home, tmp_path, monkeypatch)


def time_limit(at):
    return next(box for box in at.number_input if box.label == "Time limit per request (s)")


def test_the_time_limit_set_on_the_form_is_deployed_and_shown_with_the_limits(home):
    at = app()
    assert time_limit(at).value == 60  # the default
    time_limit(at).set_value(5.0)
    name = deploy(at, "liveness-page")
    deployment = backend_deck(home).deployments.get(name)
    assert deployment.state is DeploymentState.HEALTHY and deployment.config.run_timeout_s == 5
    info = requests.get(deployment.scoring_uri.rsplit("/score", 1)[0] + "/info", timeout=5).json()
    assert info["run_timeout_seconds"] == 5
    assert any("5 s per request" in caption.value for caption in at.caption)


def test_a_time_limit_out_of_its_range_is_refused_with_the_rule(home):
    at = app()
    time_limit(at).set_value(0.5)
    button(at, "Deploy").click().run()
    assert not at.exception
    refusal = verbatim("the run() time limit must be between 1 and 3600 s, got 0.5")
    assert any(refusal in e.value for e in at.error), [e.value for e in at.error]
    assert backend_deck(home).deployments.list() == []
