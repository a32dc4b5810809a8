"""Which test sets fit a model (shape, value range, classes) and why not; class names given at registration
kept by the registry and answered by the built-in scoring script."""

import json
import pickle

import numpy as np
import pytest

from backend.data.builtin import FASHION_CLASSES
from backend.data.catalogue import load_dataset, sets_fitting
from backend.data.fit import mismatch, range_mismatch
from backend.data.testset import DatasetInfo
from backend.deployments import DEFAULT_SCRIPT
from backend.errors import DatasetMismatchError, UnexpectedAnswerError
from backend.inspection.evaluation import label_indices
from backend.inspection.perturb import perturb
from backend.registry import CLASS_NAMES_FILE, ModelRegistry, Signature, parse_signature, served_class_names
from backend.serving import score_sklearn
from backend.serving.script import load_script

DIGITS = tuple(str(i) for i in range(10))
EIGHT_BY_EIGHT_0_16 = parse_signature("8x8", "0-16", "0-9")


def own_set(shape=(8, 8), value_range=(0.0, 16.0), classes=DIGITS) -> DatasetInfo:
    return DatasetInfo("own", "My set", shape, classes, True, value_range)


def test_a_set_fits_when_its_shape_range_and_classes_are_the_models():
    assert mismatch(own_set(), EIGHT_BY_EIGHT_0_16) is None
    assert mismatch(own_set(value_range=(0.0, 1.0)), EIGHT_BY_EIGHT_0_16) == (
        "its values are in [0, 1]; the model takes [0, 16], on another scale (the set spans under half of the "
        "model's range)")
    assert mismatch(own_set(value_range=(0.0, 255.0)), EIGHT_BY_EIGHT_0_16) == (
        "its values are in [0, 255]; the model takes [0, 16]")
    assert mismatch(own_set(shape=(4, 16)), EIGHT_BY_EIGHT_0_16) == "its images are 4x16; the model takes 8x8"
    assert mismatch(own_set(classes=tuple("abcdefghij")), EIGHT_BY_EIGHT_0_16) == (
        "its classes are a, b, c, ...; the model's are 0, 1, 2, ...")
    assert mismatch(own_set(value_range=(0.0, 1.0)), parse_signature("8x8", "", "0-9")) is None  # no range declared


def test_a_set_fits_when_its_range_lies_within_the_models_on_the_same_scale():
    assert range_mismatch((0.0, 16.0), (0.0, 16.0)) is None  # equal
    assert range_mismatch((0.0, 2944.0), (0.0, 3000.0)) is None  # read from held-out rows: no 3000 among them
    assert range_mismatch((0.0, 15.0), (0.0, 16.0)) is None and range_mismatch((0.0, 8.0), (0.0, 16.0)) is None
    assert range_mismatch((-0.5, 0.9), (-1.0, 1.0)) is None  # the spans compared, wherever they start
    # [0, 1] inside [0, 16] is another scale: every prediction one class, 20 % shown for a 96 % model
    assert range_mismatch((0.0, 1.0), (0.0, 16.0)) == (
        "its values are in [0, 1]; the model takes [0, 16], on another scale (the set spans under half of the "
        "model's range)")
    assert range_mismatch((0.0, 7.9), (0.0, 16.0)) is not None
    assert range_mismatch((10.0, 16.0), (0.0, 16.0)) is not None  # within, but a small part of it
    assert range_mismatch((0.0, 255.0), (0.0, 1.0)) == "its values are in [0, 255]; the model takes [0, 1]"
    assert range_mismatch((-1.0, 1.0), (0.0, 1.0)) == "its values are in [-1, 1]; the model takes [0, 1]"
    # the CLI's refusal and the page's list both come from mismatch: the same words
    cancer = parse_signature("30", "0-3000", "malignant, benign")
    assert mismatch(DatasetInfo("bc", "Breast cancer", (1, 30), ("malignant", "benign"), True, (0.0, 2944.0)),
                    cancer) is None


def test_images_of_any_height_and_width_fit_a_model_that_declares_them():
    wide = parse_signature("4x16", "0-1")
    assert wide.image_shape == (4, 16) and wide.n_features == 64
    assert mismatch(own_set(shape=(4, 16), value_range=(0.0, 1.0)), wide) is None
    assert mismatch(own_set(shape=(16, 4), value_range=(0.0, 1.0)), wide) == "its images are 16x4; the model takes 4x16"
    assert mismatch(own_set(shape=(16, 4), value_range=(0.0, 1.0)), parse_signature("64", "0-1")) is None


def test_fashion_mnist_is_not_offered_for_the_digit_model_and_says_why(sample_model):
    fit = sets_fitting(sample_model.signature)
    fitting, hidden = fit.fitting, fit.hidden
    assert "fashion-mnist" not in [info.name for info in fitting] and "mnist" in [info.name for info in fitting]
    why = dict((info.name, reason) for info, reason in hidden)
    assert why["fashion-mnist"] == "its classes are T-shirt/top, Trouser, Pullover, ...; the model's are 0, 1, 2, ..."
    with pytest.raises(DatasetMismatchError, match="test set 'fashion-mnist' does not fit this model: its classes"):
        load_dataset("fashion-mnist", sample_model.signature)


def test_a_fashion_model_is_offered_fashion_mnist_only():
    fashion = Signature(n_features=784, image_shape=(28, 28), value_range=(0.0, 1.0),
                        class_labels=tuple(sorted(FASHION_CLASSES)))
    assert [info.name for info in sets_fitting(fashion).fitting] == ["fashion-mnist"]


def test_classes_named_by_numbers_other_than_their_positions_are_matched_by_name():
    one_to_ten = tuple(str(i) for i in range(1, 11))
    assert label_indices([1, 10, 5], one_to_ten, 3).tolist() == [0, 9, 4]
    assert label_indices([0, 9], DIGITS, 2).tolist() == [0, 9]  # 0..9: name and position agree
    with pytest.raises(UnexpectedAnswerError, match="label 0, which this test set does not have"):
        label_indices([0], one_to_ten, 1)


def test_perturbations_work_on_the_sets_own_range():
    images = np.full((1, 8, 8), 16.0, dtype=np.float32)
    images[0, :, :4] = 0.0
    blurred = perturb(images, "blur", 1.0, value_range=(0.0, 16.0))
    unit = perturb(images / 16, "blur", 1.0)
    assert float(blurred.max()) <= 16.0 and np.allclose(blurred / 16, unit, atol=1e-6)


# --- class names given at registration --------------------------------------------------------------------------

def test_names_given_for_classes_0_to_n_stand_when_the_server_reports_the_numbers(tmp_path):
    registry = ModelRegistry(tmp_path / "r.sqlite3", tmp_path / "blobs")
    (tmp_path / "m.pkl").write_bytes(b"weights")
    model = registry.register("cancer", [tmp_path / "m.pkl"], signature=parse_signature("30", "", "malignant, benign"))
    confirmed = registry.confirm_signature(model, 30, ["0", "1"], source="deployment cancer")
    assert confirmed.signature.class_labels == ("malignant", "benign")
    assert "confirmed by deployment cancer" in confirmed.signature.source
    renamed = registry.confirm_signature(confirmed, 30, ["cat", "dog"], source="deployment b")  # the model's own names
    assert renamed.signature.class_labels == ("cat", "dog")

    folder = registry.materialize(confirmed, tmp_path / "deployed")
    assert json.loads((folder / CLASS_NAMES_FILE).read_text()) == ["malignant", "benign"]
    assert served_class_names(parse_signature("8x8", "", "0-9")) is None  # the numbers themselves: no file
    assert score_sklearn.CLASS_NAMES_FILE == CLASS_NAMES_FILE


def fitted_script(tmp_path, monkeypatch, classes, names):
    from sklearn.linear_model import LogisticRegression

    X = np.random.default_rng(0).random((40, 4))
    y = np.array(classes * 20)
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(LogisticRegression().fit(X, y)))
    if names is not None:
        (tmp_path / CLASS_NAMES_FILE).write_text(json.dumps(names))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    script = load_script(DEFAULT_SCRIPT)
    script.init()
    return script, X


def test_the_scoring_script_answers_the_given_names_for_classes_0_to_n(tmp_path, monkeypatch):
    script, X = fitted_script(tmp_path, monkeypatch, [0, 1], ["malignant", "benign"])
    expected = [("malignant", "benign")[k] for k in script.model.predict(X[:6])]
    assert script.classes == ["malignant", "benign"]
    assert script.run(json.dumps({"data": X[:6].tolist()})) == expected
    answer = script.run_array(X[:6].astype(np.float32), proba=True)
    assert answer["predictions"] == expected and answer["classes"] == ["malignant", "benign"]


def test_names_that_do_not_fit_the_models_classes_are_ignored(tmp_path, monkeypatch, capsys):
    script, X = fitted_script(tmp_path, monkeypatch, ["cat", "dog"], ["a", "b"])
    assert script.classes == ["cat", "dog"] and set(script.run_array(X[:4])) <= {"cat", "dog"}
    assert "are not for classes 0..n-1" in capsys.readouterr().err
    quiet, _ = fitted_script(tmp_path, monkeypatch, ["cat", "dog"], ["dog", "cat"])  # its own names: nothing to say
    assert quiet.classes == ["cat", "dog"] and capsys.readouterr().err == ""


def test_the_feature_names_the_server_found_are_kept_only_when_they_name_every_value(tmp_path):
    registry = ModelRegistry(tmp_path / "r.sqlite3", tmp_path / "blobs")
    (tmp_path / "m.pkl").write_bytes(b"weights")
    model = registry.register("cancer", [tmp_path / "m.pkl"], signature=parse_signature("3", "", ""))
    named = registry.confirm_signature(model, 3, None, source="deployment a", feature_names=["age", "bmi", "bp"])
    assert named.signature.feature_names == ("age", "bmi", "bp")
    assert named.signature.describe() == "3 named features (age, bmi, bp)"
    assert registry.get("cancer", 1).signature == named.signature  # stored, and read back
    # a server that reports no names (say, another script) keeps them; names for another count are not taken
    assert registry.confirm_signature(named, 3, None, source="deployment b").signature.feature_names == named.signature.feature_names
    recounted = registry.confirm_signature(named, 4, None, source="deployment c", feature_names=["a", "b", "c"])
    assert recounted.signature.n_features == 4 and recounted.signature.feature_names is None
    assert recounted.signature.describe() == "4 values"


def test_a_model_fitted_on_named_columns_takes_rows_as_objects_of_them_and_says_what_a_row_lacks(tmp_path, monkeypatch):
    import pandas as pd
    from sklearn.linear_model import LogisticRegression

    X = pd.DataFrame(np.random.default_rng(0).random((40, 4)), columns=["age", "bmi", "bp", "s1"])
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(LogisticRegression().fit(X, [0, 1] * 20)))
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(tmp_path))
    script = load_script(DEFAULT_SCRIPT)
    script.init()
    assert script.feature_names == ["age", "bmi", "bp", "s1"]
    records = X[:5][["s1", "bp", "bmi", "age"]].to_dict(orient="records")  # any key order
    expected = script.model.predict(X[:5]).tolist()
    assert list(script.run(json.dumps({"data": records}))) == list(script.run(json.dumps({"data": X[:5].values.tolist()}))) \
        == expected
    with pytest.raises(ValueError, match='row 1 of "data" lacks "bp"$'):
        script.run(json.dumps({"data": [records[0], {"age": 1, "bmi": 2, "s1": 3}]}))
    with pytest.raises(ValueError, match='row 0 of "data" has "sex", not a column of the model'):
        script.run(json.dumps({"data": [{**records[0], "sex": 1}]}))
    with pytest.raises(ValueError, match='every value in "data" must be a JSON number, got "x"'):
        script.run(json.dumps({"data": [{**records[0], "age": "x"}]}))
    with pytest.raises(ValueError, match="a list of numbers or an object of the model's 4 columns"):
        script.run(json.dumps({"data": [records[0], [1, 2, 3, 4]]}))


def test_rows_as_objects_for_a_model_fitted_without_names_say_to_send_lists(tmp_path, monkeypatch):
    script, X = fitted_script(tmp_path, monkeypatch, [0, 1], None)
    assert script.feature_names is None
    with pytest.raises(ValueError, match="fitted without them: send each row as a list of numbers"):
        script.run(json.dumps({"data": [{"a": 1.0}]}))
