"""The what-if for a table's rows: the controls read from the set, the rows a dependence curve scores, the nearest
row of another class (pure logic); and against a real deployment of the breast-cancer sample, each answer checked
against scikit-learn's own for the same rows, in the service, the CLI and on the Test page."""

import json
import os
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from altair.utils.schemapi import validate_jsonschema
from altair.vegalite.v6.schema.core import load_schema

from backend.data.builtin import BREAST_CANCER_FEATURES, load_breast_cancer_test
from backend.data.testset import TestSet
from backend.errors import InvalidWhatIfError
from backend.inspection.interactive_charts import dependence_chart, probability_bars
from backend.inspection.whatif import (
    controls,
    dependence_of,
    dependence_rows,
    grid_of,
    median_row,
    nearest_other,
    one_hot,
)
from backend.services import whatif
from backend.services.testsets import add_testset
from dashboard import common

from .test_dashboard import on_page

COLUMNS = ("flag", "count", "size", "fixed")


def table() -> TestSet:
    X = np.array([[0, 3, 1.5, 7], [1, 5, 2.5, 7], [1, 4, 4.0, 7], [0, 9, 0.25, 7]], dtype=np.float32)
    return TestSet("t", X, np.array([0, 1, 1, 0]), None, ("no", "yes"), "test", (0.0, 9.0), COLUMNS)


def test_each_column_gets_a_control_of_its_kind_around_the_sets_range():
    flag, count, size, fixed = controls(table().X, COLUMNS)
    assert (flag.kind, flag.low, flag.high, flag.step) == ("binary", 0.0, 1.0, 1.0)
    # whole numbers 3-9 widened by a quarter of the span (1.5) each side, to whole numbers; not below zero
    assert (count.kind, count.low, count.high, count.step, count.median) == ("whole", 1.0, 11.0, 1.0, 4.5)
    assert (count.seen_low, count.seen_high) == (3.0, 9.0)
    # 0.25-4.0: step 0.02 (a hundredth of the span 3.75 is 0.0375: 2 x 10^-2 is the nice step below it)
    assert (size.kind, size.step, size.low, size.high, size.decimals) == ("number", 0.02, 0.0, 4.94, 2)
    assert size.spread == pytest.approx(np.std([1.5, 2.5, 4.0, 0.25]))
    # a constant column still edits (room around its value) and its spread is 1, so distances stay finite
    assert (fixed.kind, fixed.low, fixed.high, fixed.spread) == ("whole", 5.0, 9.0, 1.0)  # 7 +- a quarter of 7
    assert median_row(table().X).tolist() == [0.5, 4.5, 2.0, 7.0]
    negative = controls(np.array([[-2.0], [2.0]], dtype=np.float32), ("x",))[0]
    assert (negative.low, negative.high) == (-3.0, 3.0)  # a column with negative values widens below zero
    with pytest.raises(InvalidWhatIfError, match="one value per named column"):
        controls(table().X, COLUMNS[:3])


def test_a_dependence_curve_scores_the_row_then_the_averaged_rows_along_the_grid():
    flag, count, size, _ = controls(table().X, COLUMNS)
    assert grid_of(flag).tolist() == [0.0, 1.0]
    assert grid_of(count).tolist() == list(range(1, 12))  # 11 whole numbers: every one
    assert len(grid_of(size, 5)) == 5 and grid_of(size, 5)[[0, -1]].tolist() == [0.0, 4.94]
    row = np.array([1, 2, 3, 4], dtype=np.float32)
    averaged = table().X[:2]
    rows = dependence_rows(row, averaged, 2, np.array([10.0, 20.0]))
    assert rows.dtype == np.float32 and rows.tolist() == [
        [1, 2, 10, 4], [1, 2, 20, 4], [0, 3, 10, 7], [0, 3, 20, 7], [1, 5, 10, 7], [1, 5, 20, 7]]
    answers = np.array([[0.9, 0.1], [0.8, 0.2], [0.6, 0.4], [0.4, 0.6], [0.2, 0.8], [0.0, 1.0]])
    curve = dependence_of("size", 3.0, np.array([10.0, 20.0]), answers, ("no", "yes"))
    assert curve.row.tolist() == [[0.9, 0.1], [0.8, 0.2]] and curve.averaged == 2
    assert curve.average == pytest.approx(np.array([[0.4, 0.6], [0.2, 0.8]]))
    assert one_hot(np.array([1, 0]), 3).tolist() == [[0, 1, 0], [1, 0, 0]]
    chart = dependence_chart(curve, 1, (12.0, 18.0))
    validate_jsonschema(chart, load_schema())  # valid Vega-Lite
    bands, lines, now = chart["layer"]
    assert bands["data"]["values"] == [{"from": 10.0, "to": 12.0}, {"from": 18.0, "to": 20.0}]  # beyond the set's
    assert [(p["curve"], p["value"], p["probability"]) for p in lines["data"]["values"]] == [
        ("this row", 10.0, 0.1), ("this row", 20.0, 0.2), ("average of 2 test rows", 10.0, pytest.approx(0.6)),
        ("average of 2 test rows", 20.0, pytest.approx(0.8))]
    assert now["data"]["values"] == [{"value": 3.0}] and lines["encoding"]["y"]["title"] == "P(yes)"
    validate_jsonschema(probability_bars(np.array([0.25, 0.75]), ("no", "yes")), load_schema())


def test_the_nearest_row_of_another_class_is_measured_in_each_columns_spread():
    data = table()
    the_controls = controls(data.X, COLUMNS)
    predictions = np.array([0, 1, 1, 0])
    row = data.X[0]  # predicted 0: the candidates are rows 1 and 2
    nearest = nearest_other(data.X, predictions, data.y, row, 0, the_controls)
    spreads = np.array([c.spread for c in the_controls])
    distances = [np.sqrt(np.mean(((data.X[i] - row) / spreads) ** 2)) for i in (1, 2)]
    assert nearest is not None and nearest.index == 1 + int(np.argmin(distances))
    assert nearest.distance == pytest.approx(min(distances))
    assert nearest.differing == 3 and [c.name for c in nearest.changes][0] == max(
        COLUMNS[:3], key=lambda name: abs((data.X[nearest.index] - row)[COLUMNS.index(name)]) / spreads[COLUMNS.index(name)])
    assert "fixed" not in [c.name for c in nearest.changes]  # a column that does not differ is not listed
    assert nearest.describe(data.class_names).startswith(f"row {nearest.index}, predicted yes (true label yes), ")
    assert nearest_other(data.X, np.zeros(4, dtype=int), data.y, row, 0, the_controls) is None


def test_a_start_and_edits_are_checked_against_the_set():
    data = table()
    assert whatif.start_row(data, None).tolist() == [0.5, 4.5, 2.0, 7.0]
    start = whatif.start_row(data, 2)
    assert whatif.edited(data, start, {"size": 100.0}).tolist() == [1, 4, 100, 7]  # past the editor's range: allowed
    assert start.tolist() == [1, 4, 4, 7]  # the start is a copy: the set is untouched
    with pytest.raises(InvalidWhatIfError, match="rows 0 to 3, not 4"):
        whatif.start_row(data, 4)
    with pytest.raises(InvalidWhatIfError, match="'colour' is not a column of test set 't'; its columns are flag"):
        whatif.edited(data, start, {"colour": 1.0})
    with pytest.raises(InvalidWhatIfError, match="'size' must be a finite number"):
        whatif.edited(data, start, {"size": float("inf")})
    images = TestSet("i", np.zeros((1, 4), dtype=np.float32), np.zeros(1, dtype=int), (2, 2), ("a",), "test")
    with pytest.raises(InvalidWhatIfError, match="is images: a what-if edits a table's rows"):
        whatif.start_row(images, 0)


def frame(rows: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(BREAST_CANCER_FEATURES))  # the model was fitted on a DataFrame


def scikit_learn(model, rows: np.ndarray) -> np.ndarray:
    """scikit-learn's probabilities for rows of the set's columns, in the set's class order (the model's own is
    its sorted class names)."""
    order = [list(model.classes_).index(name) for name in load_breast_cancer_test().class_names]
    return model.predict_proba(frame(rows))[:, order]


def predicted(model, rows: np.ndarray) -> list[int]:
    """scikit-learn's predictions as indices into the set's classes."""
    return [load_breast_cancer_test().class_names.index(name) for name in model.predict(frame(rows))]


def test_the_service_answers_as_scikit_learn_does_for_the_edited_rows(cancer_deployment):
    deck, deployment, data, model = cancer_deployment
    start = whatif.start_row(data, 3)
    row = whatif.edited(data, start, {"mean radius": 20.0, "worst texture": 15.0})
    said = whatif.predict_row(deck, deployment, data, row)
    expected = scikit_learn(model, row[None, :])[0]
    assert said.probabilities == pytest.approx(expected, abs=1e-6) and said.predicted == int(np.argmax(expected))
    assert data.class_names == ("malignant", "benign")  # the probabilities' columns: the set's class order

    curve = whatif.dependence(deck, deployment, data, row, "worst radius", points=9, averaged=20, seed=4)
    column = BREAST_CANCER_FEATURES.index("worst radius")
    assert len(curve.grid) == 9 and curve.value == pytest.approx(float(row[column])) and curve.averaged == 20
    chosen = np.sort(np.random.default_rng(4).choice(len(data), size=20, replace=False))
    mine = np.repeat(row[None, :], 9, axis=0)
    mine[:, column] = curve.grid
    assert curve.row == pytest.approx(scikit_learn(model, mine), abs=1e-6)
    theirs = np.repeat(data.X[chosen], 9, axis=0)
    theirs[:, column] = np.tile(curve.grid, 20)
    assert curve.average == pytest.approx(scikit_learn(model, theirs).reshape(20, 9, 2).mean(axis=0), abs=1e-6)
    assert not curve.from_labels

    predictions = whatif.set_predictions(deck, deployment, data)
    assert predictions.tolist() == predicted(model, data.X)
    nearest = whatif.counterfactual(data, predictions, row, said.predicted)
    spreads = data.X.std(axis=0, dtype=np.float64)
    others = np.flatnonzero(predictions != said.predicted)
    distances = np.sqrt(np.mean(((data.X[others] - row) / spreads) ** 2, axis=1))
    assert nearest is not None and nearest.index == int(others[np.argmin(distances)])
    assert nearest.predicted != said.predicted and nearest.label == int(data.y[nearest.index])
    with pytest.raises(InvalidWhatIfError, match="is not a column"):
        whatif.dependence(deck, deployment, data, row, "mean colour")
    with pytest.raises(InvalidWhatIfError, match="142 predictions for the 143 rows"):
        whatif.counterfactual(data, predictions[:-1], row, said.predicted)


def test_the_cli_edits_a_row_draws_its_curve_and_finds_the_nearest_row_of_another_class(cancer_deployment):
    deck, deployment, data, model = cancer_deployment
    env = {**os.environ, "MODELDECK_HOME": str(deck.settings.home), "MODELDECK_RUNTIME": "local"}

    def modeldeck(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "backend", "whatif", deployment.name, *args], env=env,
                              capture_output=True, text=True, timeout=120)

    done = modeldeck("--index", "3", "--set", "mean radius=20", "--curve", "mean area", "--nearest", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    row = whatif.edited(data, data.X[3], {"mean radius": 20.0})
    expected = scikit_learn(model, row[None, :])[0]
    assert answer["start"] == "row 3" and answer["changed"] == {"mean radius": {"from": 15.3, "to": 20.0}}
    assert answer["prediction"] == data.class_names[int(np.argmax(expected))]
    assert [answer["probabilities"][name] for name in data.class_names] == pytest.approx(expected, abs=1e-5)
    assert answer["curve"]["column"] == "mean area" and len(answer["curve"]["points"]) == 25
    assert answer["curve"]["averaged_rows"] == 50 and answer["nearest"]["row"] in range(len(data))
    text = modeldeck("--set", "worst area=2000", "--curve", "worst area")
    median = float(np.median(data.X[:, BREAST_CANCER_FEATURES.index("worst area")]))
    assert text.returncode == 0 and text.stdout.startswith(f"median row, worst area {median:.6g} -> 2000\nprediction: ")
    refused = modeldeck("--set", "mean radius")
    assert refused.returncode == 1 and "--set wants COLUMN=VALUE, not 'mean radius'" in refused.stderr
    refused = modeldeck("--row", "143")
    assert refused.returncode == 1 and "has rows 0 to 142, not 143" in refused.stderr


@pytest.fixture()
def pages_on(cancer_deployment, monkeypatch):
    """The pages open the module's home (its deployment stays for the other tests)."""
    monkeypatch.setenv("MODELDECK_HOME", str(cancer_deployment[0].settings.home))
    monkeypatch.setenv("MODELDECK_RUNTIME", "local")
    common._open.clear()
    yield cancer_deployment
    common._open.clear()


def test_the_test_page_edits_a_row_and_the_prediction_curve_and_nearest_row_follow(pages_on, tmp_path):
    deck, deployment, data, model = pages_on
    at = on_page("views/test.py", deployment=deployment.name, dataset="breast-cancer", whatif="7")
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert at.segmented_control(key="whatif_from").value == "a test row" and at.number_input(key="whatif_row").value == 7

    def prediction() -> str:
        return next(m for m in at.metric if m.label == "Prediction").value

    expected = scikit_learn(model, data.X[7][None, :])[0]
    assert prediction() == data.class_names[int(np.argmax(expected))]
    # an edit: the prediction is the deployment's for the edited row, and the curve follows the edited column
    column = BREAST_CANCER_FEATURES.index("worst concave points")
    slider = next(s for s in at.slider if s.label == "worst concave points")
    slider.set_value(slider.max).run()
    assert not at.exception
    edited = data.X[7].copy()
    edited[column] = slider.max
    expected = scikit_learn(model, edited[None, :])[0]
    assert prediction() == data.class_names[int(np.argmax(expected))]
    assert any("1 of 30 columns changed from row 7" in c.value and "worst concave points" in c.value
               for c in at.caption)
    assert at.selectbox(key="whatif_feature").value == "worst concave points"
    # each column's contribution, for the class the curve shows; on the log-odds scale, exact for this linear model
    at.toggle(key="whatif_explain").set_value(True).run()
    assert not at.exception and any("the bars add up to the difference" in c.value for c in at.caption)
    at.segmented_control(key="whatif_scale").set_value("log-odds").run()
    assert not at.exception and any("these are its exact Shapley values" in c.value for c in at.caption)
    at.toggle(key="whatif_explain").set_value(False).run()
    # the nearest row of another class, and its button starts the editor from it
    at.toggle(key="whatif_counterfactual").set_value(True).run()
    assert not at.exception
    nearest = whatif.counterfactual(data, np.array(predicted(model, data.X)), edited, int(np.argmax(expected)))
    assert nearest is not None and at.button(key="whatif_edit_nearest").label == f"Edit row {nearest.index}"
    at.button(key="whatif_edit_nearest").click().run()
    assert at.number_input(key="whatif_row").value == nearest.index and at.query_params["whatif"] == str(nearest.index)
    assert not any("columns changed" in c.value for c in at.caption)  # a new start: no edits
    # which columns matter on the whole set
    at.button(key="importance_go").click().run()
    assert not at.exception and any(c.value.startswith("Accuracy 95\\.80% on the 143 rows as they are")
                                    for c in at.caption)  # (as Markdown escapes it)
    assert len(at.get("vega_lite_chart")) == 3  # the probabilities, the curve, the importance
    # another table set, shorter: the row chosen in the first is not carried over
    at.number_input(key="whatif_row").set_value(140).run()
    few = pd.DataFrame(data.X[:10], columns=list(BREAST_CANCER_FEATURES)).assign(
        diagnosis=np.array(data.class_names)[data.y[:10]])
    few.to_csv(tmp_path / "few.csv", index=False)
    add_testset(deck, "few", [tmp_path / "few.csv"], label="diagnosis")
    at.query_params["dataset"] = "few"
    at.run()
    assert not at.exception and at.number_input(key="whatif_row").value == 0
    assert at.number_input(key="whatif_row").max == 9
    # a set of one class of the model's two: scored against both; the absent class has no recall, not 0 %
    benign = data.y == data.class_names.index("benign")
    few[benign[:10]].to_csv(tmp_path / "benign.csv", index=False)
    add_testset(deck, "benign-only", [tmp_path / "benign.csv"], label="diagnosis")
    at.query_params["dataset"] = "benign-only"
    at.run()
    at.button(key="score_all").click().run()
    per_class = next(frame for frame in (d.value for d in at.dataframe) if "recall" in frame.columns)
    assert sorted(per_class["class"]) == ["benign", "malignant"]  # the model's classes, in its order
    malignant = per_class[per_class["class"] == "malignant"].iloc[0]
    assert pd.isna(malignant["recall"]) and not pd.isna(per_class[per_class["class"] == "benign"].iloc[0]["recall"])
    at.query_params["dataset"] = "breast-cancer"
    at.run()
    # the median row, and a link to a row the set does not have
    at.segmented_control(key="whatif_from").set_value("the median row").run()
    assert "whatif" not in at.query_params
    fresh = on_page("views/test.py", deployment=deployment.name, dataset="breast-cancer", whatif="1000")
    assert not fresh.exception and any("asks for row '1000'; this test set has rows 0 to 142" in w.value
                                       for w in fresh.warning)
    assert fresh.segmented_control(key="whatif_from").value == "the median row"


def test_a_deployment_deleted_while_its_what_if_is_open_is_said_gone_without_a_logs_link(pages_on):
    """(AppTest reruns the whole page on an edit, which then finds the deployment gone; in a browser the what-if's
    fragment alone reruns and its request gets no answer: scoring_failed says it gone, with no logs to read.)"""
    deck = pages_on[0]
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_breast_cancer", 1), "cancer-gone", runtime="local",
                                     timeout=180)
    at = on_page("views/test.py", deployment="cancer-gone", dataset="breast-cancer")
    assert not at.exception and next(m for m in at.metric if m.label == "Prediction")
    deck.deployments.delete("cancer-gone")
    slider = next(s for s in at.slider if s.label == "worst area")
    slider.set_value(slider.max).run()
    said = [e.value for e in at.error] + [w.value for w in at.warning]
    assert not at.exception and any("cancer\\-gone' is not a deployment of this home" in text for text in said), said
    assert not [link for link in at.get("page_link") if link.label == "Logs of cancer-gone"]
    assert not at.slider  # nothing left to edit against it


def test_no_answer_from_a_deleted_deployment_offers_no_logs():
    from streamlit.testing.v1 import AppTest

    from dashboard.common import verbatim

    def page() -> None:
        import streamlit as st

        from backend.errors import DeploymentDownError
        from dashboard.common import no_answer_said, scoring_failed

        no_answer_said()  # what a page says first, after scoring_failed's rerun
        if st.button("send"):
            scoring_failed(DeploymentDownError("gone-one", DeploymentDownError.GONE, "it was deleted meanwhile"))

    at = AppTest.from_function(page, default_timeout=60)
    at.run()
    at.button[0].click().run()
    said = [e.value for e in at.error]
    assert said == [verbatim("No answer: deployment 'gone-one' is gone: it was deleted meanwhile. Choose another "
                             "deployment.")], said
    assert not at.get("page_link")
