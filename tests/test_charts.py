"""The Vega-Lite specs written as plain dicts (not through Altair, which validates as it builds) stay
valid Vega-Lite: checked here against the schema of the Vega-Lite version Altair and Streamlit ship."""

import altair as alt
import numpy as np
import pytest
from altair.utils.schemapi import validate_jsonschema
from altair.vegalite.v6.schema.core import load_schema
from jsonschema import ValidationError

from backend.inspection.calibration import calibration_of
from backend.inspection.evaluation import evaluate
from backend.inspection.interactive_charts import CELL, PREDICTED_CLASS, TRUE_CLASS, confusion_chart, reliability_chart


def _evaluation(names: tuple[str, ...], with_probabilities: bool = True):
    rng = np.random.default_rng(0)
    n = len(names)
    y_true = rng.integers(0, n, 500)
    y_pred = np.where(rng.random(500) < 0.8, y_true, rng.integers(0, n, 500))
    probabilities = rng.dirichlet(np.ones(n), 500)
    probabilities[np.arange(500), y_pred] += 1.5
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    return evaluate(y_true, y_pred, names, probabilities if with_probabilities else None)


def _views(node) -> list[str]:
    """The names of the views in a spec."""
    if isinstance(node, dict):
        return ([node["name"]] if "name" in node and "mark" in node else []) + [
            name for key, value in node.items() if key != "params" for name in _views(value)]
    if isinstance(node, list):
        return [name for value in node for name in _views(value)]
    return []


@pytest.mark.parametrize("names", [tuple("0123456789"), ("T-shirt/top", "Trouser", "Ankle boot")],
                         ids=["digits", "long names"])
@pytest.mark.parametrize("counts", [False, True], ids=["shares", "counts"])
def test_the_confusion_matrix_spec_is_valid_vega_lite_with_its_three_clickable_views(names, counts):
    spec = confusion_chart(_evaluation(names), counts)
    validate_jsonschema(spec, load_schema())  # raises on the first schema violation
    assert spec["$schema"] == alt.SCHEMA_URL
    params = {param["name"]: param for param in spec["params"]}
    assert set(params) == {CELL, TRUE_CLASS, PREDICTED_CLASS}
    views = _views(spec)
    assert all(param["views"][0] in views for param in params.values()) and len(set(views)) == 3
    assert params[CELL]["select"]["fields"] == ["true", "predicted"]


def test_the_reliability_diagram_spec_is_valid_vega_lite():
    calibration = calibration_of(_evaluation(tuple("0123456789")))
    assert calibration is not None
    spec = reliability_chart(calibration)
    validate_jsonschema(spec, load_schema())
    shown = spec["vconcat"][0]["layer"][0]["data"]["values"]
    assert sum(row["answers"] for row in shown) == 500 and len(shown) == sum(1 for b in calibration.bins if b.count)


def test_an_invalid_spec_is_caught_by_the_schema_check():
    spec = confusion_chart(_evaluation(tuple("012")))
    spec["hconcat"][1]["mark"]["type"] = "bars"  # not a Vega-Lite mark
    with pytest.raises(ValidationError, match="bars"):
        validate_jsonschema(spec, load_schema())


def test_a_duels_bars_sit_side_by_side_per_class_one_colour_per_deployment():
    from backend.inspection.interactive_charts import duel_bars

    first, second = np.eye(3)[0] * 0.9 + 0.1 / 3, np.eye(3)[2]
    spec = duel_bars(first, second, ("cat", "dog", "owl"), ("v1", "v2"))
    validate_jsonschema(spec, load_schema())
    values = spec["data"]["values"]
    assert [(v["deployment"], v["class"]) for v in values[:4]] == [("v1", "cat"), ("v1", "dog"), ("v1", "owl"),
                                                                   ("v2", "cat")]
    assert [v["probability"] for v in values if v["deployment"] == "v2"] == [0.0, 0.0, 1.0]
    assert spec["encoding"]["xOffset"]["field"] == "deployment" and spec["encoding"]["color"]["sort"] == ["v1", "v2"]


def test_an_endpoints_split_is_one_bar_a_segment_per_deployment_carrying_traffic():
    from backend.inspection.interactive_charts import split_bar

    spec = split_bar((("v1", 90), ("v2", 10), ("old", 0)))
    validate_jsonschema(spec, load_schema())
    assert [(v["deployment"], v["share"], v["label"]) for v in spec["data"]["values"]] == [
        ("v1", 90, "v1 90%"), ("v2", 10, "v2 10%")]  # a 0 share draws nothing
