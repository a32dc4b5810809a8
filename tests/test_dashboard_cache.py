"""The dashboard's caches (dashboard/cache.py) under AppTest, against the real backend on the local runtime:
what they keep is keyed by a deployment's uid and its result's revision, so a replaced deployment or a new
scoring never shows what was cached before."""

import json

import numpy as np

from backend.inspection.evaluation import evaluate
from dashboard.cache import vega_spec

from .test_dashboard import app, backend_deck, button, deploy, home  # noqa: F401 (home is a fixture)

WHOLE_SET = "Score the whole test set (10,000 images)"


def rows_of(spec) -> list[dict]:
    """Every data row inlined anywhere in a Vega-Lite spec."""
    if isinstance(spec, dict):
        return [*(r for r in spec.get("values", []) if isinstance(r, dict)),
                *(r for v in spec.values() if isinstance(v, (dict, list)) for r in rows_of(v))]
    if isinstance(spec, list):
        return [r for v in spec if isinstance(v, (dict, list)) for r in rows_of(v)]
    return []


def accuracy_shown(at) -> str | None:
    return next((m.value for m in at.metric if m.label == "Accuracy"), None)


def test_a_deployment_replaced_under_the_same_name_never_shows_the_old_ones_cached_evaluation(home):  # noqa: F811
    at = app()
    name = deploy(at)
    at.switch_page("views/test.py").run()
    button(at, WHOLE_SET).click().run()
    old_accuracy = accuracy_shown(at)
    assert old_accuracy is not None and len(at.get("vega_lite_chart")) == 2  # cached: evaluation, matrix (+ reliability)
    deck = backend_deck(home)
    old_uid = deck.deployments.get(name).record.uid
    deck.deployments.delete(name)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), name, timeout=180)
    assert deck.deployments.get(name).record.uid != old_uid

    at = app(deployment=name)
    at.switch_page("views/test.py").run()
    assert not at.exception
    assert accuracy_shown(at) is None and not at.get("vega_lite_chart")  # nothing of the old one's
    button(at, WHOLE_SET).click().run()
    assert accuracy_shown(at) == old_accuracy  # its own scoring (same model, same set)


def test_a_new_scoring_of_the_same_deployment_shows_at_once_not_the_cached_one(home):  # noqa: F811
    at = app()
    name = deploy(at)
    at.switch_page("views/test.py").run()
    button(at, WHOLE_SET).click().run()
    assert accuracy_shown(at) != "10.00%"
    deck = backend_deck(home)
    deployment = deck.deployments.get(name)
    kept = deck.results.load_evaluation(deployment, "mnist")
    assert kept is not None
    # Another scoring kept meanwhile (as the CLI's `score` keeps one): every answer a "1"
    ones = np.ones_like(kept.y_true)
    deck.results.save_evaluation(deployment, "mnist", kept.y_true, evaluate(kept.y_true, ones, kept.labels))
    at.run()
    assert not at.exception
    assert accuracy_shown(at) == f"{np.mean(kept.y_true == 1):.2%}"
    cells = {(c["true"], c["predicted"]): c["count"] for c in rows_of(json.loads(at.get("vega_lite_chart")[0].proto.spec))
             if "predicted" in c and "true" in c and "count" in c}
    assert cells[(2, 1)] == int(np.sum(kept.y_true == 2)) and cells[(2, 2)] == 0  # the new matrix, not the cached


def test_a_chart_spec_is_made_once_per_key_and_anew_for_another_key():
    made = []

    def chart(title: str):
        import altair as alt

        made.append(title)
        return alt.Chart(alt.Data(values=[{"x": 1}])).mark_point().encode(x="x:Q").properties(title=title)

    key = ("test-chart", "uid-1", "mnist", 1)
    first = vega_spec(key, lambda: chart("one"))
    again = vega_spec(key, lambda: chart("not made: cached"))
    other = vega_spec(("test-chart", "uid-2", "mnist", 1), lambda: chart("two"))
    assert made == ["one", "two"]
    assert first == again and first["title"] == "one" and other["title"] == "two"
    assert "config" not in first or "view" not in first.get("config", {})  # no default theme (as st.altair_chart)
