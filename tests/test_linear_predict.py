"""The built-in script's direct predict for scikit-learn's linear classifiers gives predict's labels."""

from __future__ import annotations

import joblib
import numpy as np
import pytest
from sklearn.calibration import CalibratedClassifierCV
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression, LogisticRegressionCV, Perceptron, RidgeClassifier, SGDClassifier
from sklearn.pipeline import make_pipeline
from sklearn.svm import SVC, LinearSVC
from sklearn.tree import DecisionTreeClassifier

from backend.data.builtin import load_mnist_test
from backend.deployments import DEFAULT_SCRIPT
from backend.serving.script import load_script

MNIST = load_mnist_test()
TRAIN_X, TRAIN_Y = MNIST.X[:600], MNIST.y[:600]
HELD_OUT = MNIST.X[600:2600]


def served(model, tmp_path, monkeypatch):
    """The built-in script, init()-ed on `model` saved as the only file of a model folder."""
    joblib.dump(model, tmp_path / "model.pkl")
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    script = load_script(DEFAULT_SCRIPT)
    script.init()
    return script


def layouts(X: np.ndarray) -> list[np.ndarray]:
    """The arrays run_array may be handed: float32 (JSON, .npy), float64 (.npy), Fortran order (.npy)."""
    return [X.astype(np.float32), X.astype(np.float64), np.asfortranarray(X.astype(np.float32))]


@pytest.mark.parametrize("model, X, y", [
    (LogisticRegression(max_iter=200), TRAIN_X, TRAIN_Y),
    (LinearSVC(), TRAIN_X, TRAIN_Y),
    (LinearSVC(fit_intercept=False), TRAIN_X, TRAIN_Y),  # intercept_ is the scalar 0.0
    (SGDClassifier(random_state=0), TRAIN_X, TRAIN_Y),
    (Perceptron(random_state=0), TRAIN_X, TRAIN_Y),
    (LogisticRegressionCV(Cs=2, cv=2, max_iter=100), TRAIN_X, TRAIN_Y),
    (LogisticRegression(max_iter=200), TRAIN_X.astype(np.float32), TRAIN_Y),  # float32 coefficients
    (LogisticRegression(max_iter=200), TRAIN_X[np.isin(TRAIN_Y, (3, 8))], TRAIN_Y[np.isin(TRAIN_Y, (3, 8))]),
], ids=["LogisticRegression", "LinearSVC", "LinearSVC-no-intercept", "SGDClassifier", "Perceptron",
        "LogisticRegressionCV", "float32-coef", "two-numeric-classes"])
def test_linear_classifiers_are_predicted_directly_with_predicts_labels(model, X, y, tmp_path, monkeypatch):
    script = served(model.fit(X, y), tmp_path, monkeypatch)
    assert script.fast_predict is not None
    for X in layouts(HELD_OUT):
        expected = model.predict(X)
        assert np.array_equal(script.fast_predict(X), expected)
        assert script.run_array(X).tolist() == expected.tolist()


def test_two_classes_and_named_classes_too(tmp_path, monkeypatch):
    names = np.array(["even", "odd"])[TRAIN_Y % 2]
    model = LogisticRegression(max_iter=200).fit(TRAIN_X, names)
    script = served(model, tmp_path, monkeypatch)
    assert script.fast_predict is not None
    for X in layouts(HELD_OUT):
        assert script.run_array(X) == model.predict(X).tolist()
    assert {"even", "odd"} == set(script.run_array(HELD_OUT))


def test_the_registered_sample_model_gives_predicts_labels_on_the_whole_test_set(model_env):
    script = load_script(DEFAULT_SCRIPT)
    script.init()
    assert script.fast_predict is not None  # the tutorial's LogisticRegression
    assert np.array_equal(script.fast_predict(MNIST.X), script.model.predict(MNIST.X))


@pytest.mark.parametrize("model", [
    DecisionTreeClassifier(random_state=0),
    make_pipeline(PCA(20), SVC()),
    RidgeClassifier(),  # its own predict
], ids=lambda m: type(m).__name__)
def test_other_models_keep_their_own_predict(model, tmp_path, monkeypatch):
    script = served(model.fit(TRAIN_X, TRAIN_Y), tmp_path, monkeypatch)
    assert script.fast_predict is None
    assert script.run_array(HELD_OUT[:200]).tolist() == model.predict(HELD_OUT[:200]).tolist()


def test_sparse_coefficients_keep_predict(tmp_path, monkeypatch):
    model = LogisticRegression(max_iter=200).fit(TRAIN_X, TRAIN_Y).sparsify()
    script = served(model, tmp_path, monkeypatch)
    assert script.fast_predict is None
    assert script.run_array(HELD_OUT[:200]).tolist() == model.predict(HELD_OUT[:200]).tolist()


def test_a_model_whose_predict_disagrees_on_the_probe_rows_keeps_its_own(tmp_path, monkeypatch):
    model = LogisticRegression(max_iter=200).fit(TRAIN_X, TRAIN_Y)
    script = served(model, tmp_path, monkeypatch)
    assert script._linear_predict(model) is not None
    model.predict = lambda X: np.full(len(X), 7)  # what a changed predict would look like to the probe
    assert script._linear_predict(model) is None


def test_integer_rows_keep_predict(tmp_path, monkeypatch):
    model = LogisticRegression(max_iter=200).fit(TRAIN_X, TRAIN_Y)
    script = served(model, tmp_path, monkeypatch)
    calls = []
    monkeypatch.setattr(script, "fast_predict", lambda X: calls.append(X) or model.predict(X))
    ints = (HELD_OUT[:50] > 0.5).astype(np.int64)
    assert script.run_array(ints).tolist() == model.predict(ints).tolist()
    assert not calls
    script.run_array(HELD_OUT[:5])
    assert len(calls) == 1


@pytest.mark.parametrize("model", [
    SGDClassifier(loss="modified_huber", random_state=0),  # its most probable class is not always predict's
    LogisticRegression(max_iter=200),
    make_pipeline(PCA(20), CalibratedClassifierCV(SVC(), ensemble=False)),  # sklearn_mnist:2's kind
], ids=["modified-huber", "LogisticRegression", "calibrated-pipeline"])
def test_asked_for_probabilities_the_labels_are_still_predicts(model, tmp_path, monkeypatch):
    script = served(model.fit(TRAIN_X, TRAIN_Y), tmp_path, monkeypatch)
    answer = script.run_array(HELD_OUT, proba=True)
    assert answer["predictions"].tolist() == model.predict(HELD_OUT).tolist()
    # the same numbers up to float32 rounding: the served copy reads the rows in another dtype, and OpenBLAS's threads
    # sum in an order of their own (two runs of this test differed by 3e-8 and 5e-8)
    assert np.allclose(answer["probabilities"], model.predict_proba(HELD_OUT), rtol=1e-5, atol=1e-6)
