"""Test sets with text columns, for models whose pipeline encodes them (a ColumnTransformer with a OneHotEncoder):
read as categories, kept, checked against the categories the model knows, and sent as a split table with the
category names on every scoring path (whole set, random rows, what-if, explanations, importance, perturbations,
load test), answered as scikit-learn answers the same rows."""

import json
import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from backend.client import json_body
from backend.config import Settings
from backend.context import open_modeldeck
from backend.data.catalogue import in_model_order
from backend.data.fit import mismatch
from backend.data.formats import table as table_format
from backend.data.named_rows import NamedRows
from backend.data.store import import_dataset, load_user_dataset, user_catalogue
from backend.data.testset import TestSet
from backend.errors import DatasetImportError, InvalidWhatIfError
from backend.inspection.evaluation import evaluate_endpoint
from backend.inspection.interactive_charts import dependence_chart
from backend.inspection.perturb import perturb_rows
from backend.inspection.rows import row_table
from backend.inspection.whatif import controls, grid_of, median_row, nearest_other
from backend.registry import Signature
from backend.runtimes.base import DeployConfig
from backend.services.explaining import explain_row, permutation_importance
from backend.services.scoring import robustness_curve, send_random
from backend.services.testsets import add_testset, scoring_target
from backend.services.whatif import controls_of, dependence, edited, predict_row, start_row
from backend.traffic.loadtest import request_bodies

from .test_cli import cli

COLOURS = ("blue", "green", "red")


def frame_of(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"size": rng.normal(size=rows).round(3), "colour": rng.choice(COLOURS, size=rows),
                          "weight": rng.normal(size=rows).round(3)})
    labels = np.where(frame["size"] + (frame["colour"] == "red") * 1.5 - (frame["colour"] == "blue") > 0.2, "yes", "no")
    return frame, labels


def write_csv(path: Path, rows: int = 200, seed: int = 1) -> pd.DataFrame:
    frame, labels = frame_of(rows, seed)
    frame[["weight", "colour", "size"]].assign(outcome=labels).to_csv(path, index=False)  # not the model's order
    return frame


# --- reading, keeping, fitting (no deployment) -------------------------------------------------------------------

def test_a_text_column_is_read_as_categories_and_kept(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("colour,size,label\nred,1.5,a\nblue,2,b\n red ,3,a\ngreen,4,b\n", encoding="utf-8")
    info = import_dataset(tmp_path / "sets", "tab", [path], label="label")
    assert info.categories == (("colour", ("blue", "green", "red")),)
    testset = load_user_dataset(tmp_path / "sets", "tab")
    assert testset.X[:, 0].tolist() == [2, 0, 2, 1] and testset.X[:, 1].tolist() == [1.5, 2, 3, 4]
    assert testset.categories == info.categories == user_catalogue(tmp_path / "sets")[0].categories
    assert testset.value_range == (1.5, 4.0)  # the numbers' range: indices are not values
    assert [testset.value_text(0, v) for v in testset.X[:, 0]] == ["red", "blue", "red", "green"]
    assert "1 of them text" in testset.source


def test_parquet_text_columns_are_read_as_csv_ones(tmp_path):
    frame, labels = frame_of(30, 0)
    frame.assign(outcome=labels).to_parquet(tmp_path / "t.parquet")
    read = table_format.read_parquet_table(tmp_path / "t.parquet", "outcome")
    assert read.categories == (("colour", COLOURS),)
    assert [COLOURS[int(c)] for c in read.X[:, 1]] == frame["colour"].tolist()


@pytest.mark.parametrize(("text", "says"), [
    ("c,n,label\nred,1,a\n3,2,b\n", r"column 'c' mixes numbers and text \('3' in row 2, 'red' in row 1\)"),
    ("c,n,label\nred,1,a\n,2,b\n", r"column 'c' has 1 missing value \(the first in row 2\)"),
    ("c,n,label\na,1,a\nb,2,b\nc,3,a\n", r"column 'c' holds 3 different texts: the limit is 2 categories"),
])
def test_a_bad_text_column_is_refused_with_its_column_and_row(tmp_path, monkeypatch, text, says):
    monkeypatch.setattr(table_format, "MAX_CATEGORIES", 2)
    (tmp_path / "t.csv").write_text(text, encoding="utf-8")
    with pytest.raises(DatasetImportError, match=says):
        import_dataset(tmp_path / "sets", "tab", [tmp_path / "t.csv"], label="label")
    assert user_catalogue(tmp_path / "sets") == []


def model_signature(**changes: object) -> Signature:
    facts: dict[str, object] = {"n_features": 3, "feature_names": ("size", "colour", "weight"),
                                "class_labels": ("no", "yes"), "categories": (("colour", COLOURS),)}
    return Signature(**{**facts, **changes})  # type: ignore[arg-type]


def test_text_columns_must_be_the_models_and_hold_categories_it_knows(tmp_path):
    path = tmp_path / "t.csv"
    path.write_text("size,colour,weight,label\n1,red,2,yes\n2,teal,3,no\n", encoding="utf-8")
    info = import_dataset(tmp_path / "sets", "tab", [path], label="label")
    assert mismatch(info, model_signature()) == ("its column 'colour' holds teal, not among the model's categories "
                                                 "(blue, green, red)")
    assert mismatch(info, model_signature(categories=(("weight", ("a",)),))) == (
        "its column 'colour' holds text (red, teal); the model takes numbers there")
    assert mismatch(info, model_signature(categories=(("colour", ("red", "teal")), ("size", ("s",))))) == (
        "its column 'size' holds numbers; the model takes it as text (s)")
    assert mismatch(info, model_signature(categories=None)) is None  # not known yet: the endpoint decides


def test_a_set_lacking_some_categories_is_indexed_into_the_models():
    testset = TestSet("t", np.array([[0.5, 1, 2], [1.5, 0, 3]], dtype=np.float32), np.array([0, 1]), None,
                      ("no", "yes"), "t", feature_names=("size", "colour", "weight"),
                      categories=(("colour", ("blue", "red")),))
    fitted = in_model_order(testset, model_signature())
    assert fitted.categories == (("colour", COLOURS),)
    assert [fitted.value_text(1, v) for v in fitted.X[:, 1]] == ["red", "blue"]


def test_named_rows_go_as_a_split_table_with_the_category_names():
    rows = NamedRows(("size", "colour"), np.array([[0.5, 2], [1.25, 0], [2, 7]], dtype=np.float32),
                     (("colour", COLOURS),))
    assert rows.split() == {"columns": ["size", "colour"], "data": [[0.5, "red"], [1.25, "blue"], [2.0, "?"]]}
    assert len(rows[1:]) == 2 and rows[1:].split()["data"] == [[1.25, "blue"], [2.0, "?"]]
    assert json.loads(json_body(rows[:1], proba=True)) == {"data": {"columns": ["size", "colour"],
                                                                    "data": [[0.5, "red"]]}, "proba": True}


def test_text_columns_are_perturbed_edited_and_shown_as_categories():
    X = np.array([[0.0, 2], [1.0, 2], [2.0, 0], [3.0, 1]], dtype=np.float32)
    noisy = perturb_rows(X, "spread-noise", 1.0, reference=X, texts=[1])
    assert np.array_equal(noisy[:, 1], X[:, 1]) and not np.array_equal(noisy[:, 0], X[:, 0])
    assert perturb_rows(X, "to-median", 2.0, reference=X, texts=[1])[:, 1].tolist() == [2, 2, 2, 2]  # the mode
    the_controls = controls(X, ("size", "colour"), {"colour": COLOURS})
    colour = the_controls[1]
    assert (colour.kind, colour.categories, colour.median, colour.low, colour.high) == ("category", COLOURS, 2, 0, 2)
    assert grid_of(colour).tolist() == [0, 1, 2] and median_row(X, the_controls).tolist() == [1.5, 2]
    # another category is one standard deviation away, whatever the indices' distance
    nearest = nearest_other(X, np.array([0, 0, 1, 1]), np.zeros(4, dtype=np.int64), np.array([2.0, 2]), 0,
                            the_controls)
    assert nearest is not None and nearest.index == 2 and nearest.distance == pytest.approx(np.sqrt(0.5))  # not 2
    table = row_table(X[:2], ("size", "colour"), np.array([0, 1]), np.array([0, 1]), np.array([0, 0]), ("n", "y"),
                      categories=(("colour", COLOURS),))
    assert table.cells[0][-2:] == (0.0, "red")


# --- through a real deployment -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def shapes_deployment(tmp_path_factory):
    """(deck, deployment, the set fitted to it, the fitted pipeline, the set's rows as a DataFrame): a pipeline
    encoding 'colour' from text, registered, deployed on the local runtime, and a CSV test set of it added."""
    home = tmp_path_factory.mktemp("shapes-home")
    frame, labels = frame_of(300, 0)
    model = make_pipeline(ColumnTransformer([("numbers", StandardScaler(), ["size", "weight"]),
                                             ("names", OneHotEncoder(), ["colour"])]),
                          LogisticRegression()).fit(frame, labels)
    (home / "model.pkl").write_bytes(pickle.dumps(model))
    deck = open_modeldeck(Settings(home=home / "deck", runtime="local"))
    registered = deck.registry.register("shapes", [home / "model.pkl"])
    deployment = deck.deployments.deploy_and_wait(registered, "shapes", DeployConfig(), runtime="local", timeout=180)
    rows = write_csv(home / "shapes.csv")
    add_testset(deck, "shapes-test", [home / "shapes.csv"], label="outcome")
    _, testset = scoring_target(deck, "shapes", "shapes-test")
    yield deck, deployment, testset, model, rows
    for left in deck.deployments.list():
        deck.deployments.delete(left.name)


def test_the_set_is_put_in_the_models_order_and_scored_as_scikit_learn_scores_it(shapes_deployment):
    deck, deployment, testset, model, rows = shapes_deployment
    assert deck.registry.get("shapes").signature.categories == (("colour", COLOURS),)  # confirmed by the server
    assert testset.feature_names == ("size", "colour", "weight") and testset.categories == (("colour", COLOURS),)
    evaluation = evaluate_endpoint(deck.client, deployment.scoring_uri or "", testset, use_binary=True)
    expected = model.predict(rows[["size", "colour", "weight"]])
    assert [testset.class_names[k] for k in evaluation.predictions] == expected.tolist()
    assert np.allclose(evaluation.probabilities, model.predict_proba(rows))
    sample = send_random(deck, deployment, testset, 12, seed=3).samples
    assert sample.categories == testset.categories
    assert [testset.class_names[k] for k in sample.predictions] == model.predict(rows.iloc[sample.indices]).tolist()
    for body in request_bodies(testset, n=5, seed=0):  # the load test's bodies are taken too
        assert deck.client.send_raw(deployment.scoring_uri or "", body).status == 200


def test_a_what_if_edits_a_category_by_name_and_follows_it(shapes_deployment):
    deck, deployment, testset, model, rows = shapes_deployment
    assert [c.kind for c in controls_of(testset)] == ["number", "category", "number"]
    row = edited(testset, start_row(testset, 0), {"colour": "red", "size": "0.25"})
    asked = pd.DataFrame([{"size": 0.25, "colour": "red", "weight": float(testset.X[0, 2])}])
    prediction = predict_row(deck, deployment, testset, row)
    assert np.allclose(prediction.probabilities, model.predict_proba(asked)[0], atol=1e-6)
    with pytest.raises(InvalidWhatIfError, match=r"'colour' takes one of its categories \('blue', 'green', 'red'\), "
                                                 r"not 'teal'"):
        edited(testset, row, {"colour": "teal"})
    with pytest.raises(InvalidWhatIfError, match=r"'size' takes numbers, not 'big'"):
        edited(testset, row, {"size": "big"})
    curve = dependence(deck, deployment, testset, row, "colour")
    assert curve.categories == COLOURS and curve.grid.tolist() == [0, 1, 2]
    each = pd.DataFrame([{**asked.iloc[0].to_dict(), "colour": colour} for colour in COLOURS])
    assert np.allclose(curve.row, model.predict_proba(each), atol=1e-6)
    spec = dependence_chart(curve, 1, (0, 2))
    assert spec["layer"][-1]["encoding"]["x"]["type"] == "nominal"


def test_explanations_importance_and_robustness_work_on_text_columns(shapes_deployment):
    deck, deployment, testset, _, _ = shapes_deployment
    row = start_row(testset, 4)
    explanation = explain_row(deck, deployment, testset, row, background=10, count=4)
    assert explanation.value_text(1) == testset.value_text(1, row[1])
    assert explanation.base + explanation.contributions.sum() == pytest.approx(explanation.output, abs=1e-9)
    importance = permutation_importance(deck, deployment, testset, repeats=2)
    assert importance.feature_names[int(np.argmax(importance.drops))] in ("size", "colour")
    points = robustness_curve(deck, deployment, testset, "to-median", (0.0, 1.0), source="test")
    assert len(points) == 2 and points[0].accuracy > 0.8


def test_the_cli_sets_a_category_and_prints_names(shapes_deployment):
    deck, _, _, _, rows = shapes_deployment
    other = next(colour for colour in COLOURS if colour != rows["colour"][0])
    env = {"MODELDECK_HOME": str(deck.settings.home), "MODELDECK_RUNTIME": "local", "PATH": "/usr/bin:/bin",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    ran = cli(env, "whatif", "shapes", "--dataset", "shapes-test", "--index", "0", "--set", f"colour={other}",
              "--curve", "colour", "--nearest", "--json")
    result = json.loads(ran.stdout)
    assert result["changed"]["colour"] == {"from": rows["colour"][0], "to": other}
    assert [point["value"] for point in result["curve"]["points"]] == list(COLOURS)
    scored = cli(env, "score", "shapes", "--dataset", "shapes-test", "--random", "3", "--json")
    assert all(row["features"]["colour"] in COLOURS for row in json.loads(scored.stdout))


def test_the_test_page_shows_rows_edits_and_requests_with_category_names(shapes_deployment, monkeypatch):
    from dashboard import common

    from .test_dashboard import button, on_page

    deck, deployment, testset, model, rows = shapes_deployment
    monkeypatch.setenv("MODELDECK_HOME", str(deck.settings.home))
    monkeypatch.setenv("MODELDECK_RUNTIME", "local")
    common._open.clear()
    try:
        at = on_page("views/test.py", deployment=deployment.name, dataset="shapes-test", whatif="0")
        assert not at.exception and not at.error, [e.value for e in at.error]
        # the request console starts from row 0 as an object, the category by its name: the endpoint takes it
        body = json.loads(at.text_area[0].value)["data"][0]
        assert body["colour"] == rows["colour"][0] and body["size"] == pytest.approx(rows["size"][0], abs=1e-4)
        button(at, "Send 30 random test rows").click().run()
        assert not at.exception
        shown = next(d.value for d in at.dataframe if "colour" in d.value.columns)
        assert set(shown["colour"]) <= set(COLOURS) and len(shown) == 30
        at.button(key="score_all").click().run()
        assert not at.exception and not at.error, [e.value for e in at.error]
        # the editor: a choice of the categories; the answer, the caption and the curve follow it
        colour = at.selectbox(key=next(k for k in (s.key for s in at.selectbox) if k and k.endswith("/1")))
        assert colour.options == list(COLOURS) and colour.value == COLOURS.index(rows["colour"][0])
        other = next(k for k, name in enumerate(COLOURS) if name != rows["colour"][0])
        colour.set_value(other).run()
        assert not at.exception
        assert any(f"colour {rows['colour'][0]} → {COLOURS[other]}" in c.value for c in at.caption)
        edited = rows.iloc[[0]].assign(colour=COLOURS[other])[["size", "colour", "weight"]]
        said = model.predict(edited)[0]
        assert next(m for m in at.metric if m.label == "Prediction").value == said
        assert at.selectbox(key="whatif_class").value == testset.class_names.index(said)  # follows the prediction
        at.toggle(key="whatif_counterfactual").set_value(True).run()
        assert not at.exception
    finally:
        common._open.clear()
