"""A model whose pipeline encodes some columns from text (a ColumnTransformer with a OneHotEncoder): the built-in
scoring script finds the categories its encoders learnt, says them in /info, and scores rows as objects, lists or a
split table with those columns' category names, answering as scikit-learn does; an unknown category, text in a
number's column and a number in a category's column are 400s that name the column."""

import io
import pickle

import numpy as np
import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sklearn.compose import ColumnTransformer, make_column_transformer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import OneHotEncoder, OrdinalEncoder, StandardScaler

from backend.deployments import DEFAULT_SCRIPT
from backend.serving import score_sklearn
from backend.serving.routes import create_app
from backend.serving.script import ScoringScript, load_script

COLUMNS = ["size", "weight", "colour", "shape"]


def table(rows: int = 60) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"size": rng.normal(size=rows), "weight": rng.normal(size=rows),
                          "colour": rng.choice(["red", "green", "blue"], size=rows),
                          "shape": rng.choice(["round", "square"], size=rows)})
    labels = np.where((frame["size"] > 0) ^ (frame["colour"] == "red"), "yes", "no")
    return frame, labels


def fitted() -> object:
    frame, labels = table()
    encode = ColumnTransformer([("numbers", StandardScaler(), ["size", "weight"]),
                                ("names", OneHotEncoder(), ["colour", "shape"])])
    return make_pipeline(encode, LogisticRegression()).fit(frame, labels)


def test_the_categories_are_read_from_the_encoders_whatever_picks_their_columns():
    frame, labels = table()
    assert score_sklearn._text_categories(fitted(), COLUMNS) == {"colour": ["blue", "green", "red"],
                                                                 "shape": ["round", "square"]}
    by_index = make_pipeline(make_column_transformer((OrdinalEncoder(), [2]), (StandardScaler(), slice(0, 2))),
                             LogisticRegression()).fit(frame, labels)
    assert score_sklearn._text_categories(by_index, COLUMNS) == {"colour": ["blue", "green", "red"]}
    nested = make_pipeline(ColumnTransformer([("names", make_pipeline(OneHotEncoder()), ["shape"])],
                                             remainder=StandardScaler()), LogisticRegression()).fit(
        frame.drop(columns=["colour"]), labels)
    assert score_sklearn._text_categories(nested, ["size", "weight", "shape"]) == {"shape": ["round", "square"]}
    numbers = make_pipeline(OneHotEncoder(), LogisticRegression()).fit(np.array([[1], [2], [1]]), [0, 1, 0])
    assert score_sklearn._text_categories(numbers, ["code"]) == {}  # numbers stay numbers
    assert score_sklearn._text_categories(LogisticRegression().fit([[0.0], [1.0]], [0, 1]), None) == {}


@pytest.fixture()
def client(tmp_path, monkeypatch):
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(fitted()))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    script = load_script(DEFAULT_SCRIPT)
    script.init()
    return TestClient(create_app(ScoringScript.of(script), {"model": "shapes:1", "feature_names": COLUMNS,
                                                            "categories": ScoringScript.of(script).categories}))


def test_rows_with_category_names_are_scored_as_scikit_learn_scores_them(client):
    model = fitted()
    frame, _ = table(8)
    expected = list(model.predict(frame))
    records = frame.to_dict(orient="records")
    assert client.post("/score", json={"data": records}).json() == expected
    assert client.post("/score", json={"data": frame.values.tolist()}).json() == expected  # lists, in column order
    split = frame[["shape", "colour", "weight", "size"]].to_dict(orient="split")
    answered = client.post("/score", json={"data": split, "proba": True}).json()
    assert answered["predictions"] == expected and answered["classes"] == ["no", "yes"]
    assert np.allclose(answered["probabilities"], model.predict_proba(frame))
    info = client.get("/info").json()
    assert info["categories"] == {"colour": ["blue", "green", "red"], "shape": ["round", "square"]}
    assert info["content_types"] == ["application/json"] and "npy_dtypes" not in info  # rows of numbers cannot say it


@pytest.mark.parametrize(("change", "message"), [
    ({"colour": "purple"}, 'column "colour", row 1: "purple" is not one of the model\'s categories ("blue", "green", '
                           '"red")'),
    ({"colour": 2}, 'column "colour", row 1: 2 is not one of the model\'s categories'),
    ({"size": "big"}, 'column "size" takes numbers; row 1 has "big"'),
    ({"size": None}, 'column "size" takes numbers; row 1 has null'),
])
def test_a_row_that_does_not_fit_the_categories_is_a_400_naming_its_column(client, change, message):
    frame, _ = table(3)
    records = frame.to_dict(orient="records")
    records[1].update(change)
    refused = client.post("/score", json={"data": records})
    assert refused.status_code == 400 and refused.json()["error"].startswith(message)
    short = client.post("/score", json={"data": [frame.values.tolist()[0][:3]]})
    assert short.status_code == 400 and "has 3 values; the model takes 4" in short.json()["error"]
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 4), dtype=np.float32))
    npy = client.post("/score", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    assert npy.status_code in (400, 415) and "colour" in npy.text
    assert client.post("/score", json={"data": frame.to_dict(orient="records")}).status_code == 200  # still up


def test_a_deployment_records_the_categories_and_the_console_starts_from_a_row_that_fits(client, tmp_path):
    from backend.inspection.snippets import payload
    from backend.registry import ModelRegistry, Signature
    from dashboard.request_view import example_row

    registry = ModelRegistry(tmp_path / "registry.sqlite3", tmp_path / "blobs")
    (tmp_path / "shapes.pkl").write_bytes(pickle.dumps(fitted()))
    model = registry.register("shapes", [tmp_path / "shapes.pkl"])
    info = client.get("/info").json()
    confirmed = registry.confirm_signature(model, 4, ["no", "yes"], "deployment shapes",
                                           feature_names=info["feature_names"], categories=info["categories"])
    signature = registry.get("shapes", 1).signature
    assert signature == confirmed.signature and Signature.from_dict(signature.to_dict()) == signature
    assert signature.categories_of() == {"colour": ("blue", "green", "red"), "shape": ("round", "square")}
    row = example_row(signature)
    assert row == {"size": 0.0, "weight": 0.0, "colour": "blue", "shape": "round"}
    answer = client.post("/score", content=payload(row), headers={"Content-Type": "application/json"})
    assert answer.status_code == 200 and answer.json()[0] in ("yes", "no")
    assert example_row(Signature(n_features=3)).tolist() == [0.0, 0.0, 0.0]  # numbers only: a list, as before
    assert signature.describe().startswith("4 named features (size, weight, colour, ...); colour, shape as text")


def test_too_many_values_with_text_in_one_request_are_a_413(tmp_path, monkeypatch):
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(fitted()))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    script = load_script(DEFAULT_SCRIPT)
    script.init()
    monkeypatch.setattr(script, "MAX_FRAME_VALUES", 20)  # the bound, small
    client = TestClient(create_app(ScoringScript.of(script), {"feature_names": COLUMNS}))
    frame, _ = table(6)  # 24 values
    refused = client.post("/score", json={"data": frame.to_dict(orient="records")})
    assert refused.status_code == 413 and "send at most 5 rows a request" in refused.json()["error"]
    assert client.post("/score", json={"data": frame.iloc[:5].to_dict(orient="records")}).status_code == 200
