"""Tables as test sets: CSV and Parquet read with their checks, stored and loaded back, fitted to a model's
named columns, perturbed per column; and the breast-cancer sample's built-in set."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from backend.data import limits
from backend.data.builtin import BREAST_CANCER_FEATURES, load_breast_cancer_test, load_breast_cancer_train
from backend.data.catalogue import in_model_order, load_dataset
from backend.data.fit import mismatch
from backend.data.store import import_dataset, load_user_dataset, user_catalogue
from backend.errors import DatasetImportError, DatasetMismatchError, InvalidPerturbationError
from backend.inspection.perturb import Perturbation, kinds_of, perturb_rows
from backend.inspection.rows import row_table, rows_html
from backend.registry import Signature


def add(tmp_path, name: str, text: str | bytes, label: str | None = "kind", suffix: str = ".csv", **kwargs):
    path = tmp_path / f"{name}{suffix}"
    path.write_bytes(text.encode() if isinstance(text, str) else text)
    return import_dataset(tmp_path / "sets", name, [path], label=label, **kwargs)


def test_a_csv_with_a_bom_semicolons_decimal_commas_and_quoted_names_is_read_exactly(tmp_path):
    text = '\ufeff"size, cm";weight;kind\n1,5;2;cat\n"3,25";4;dog\n0;-1e3;cat\n'
    info = add(tmp_path, "pets", text)
    assert (info.feature_names, info.class_names, info.image_shape) == (("size, cm", "weight"), ("cat", "dog"), None)
    loaded = load_user_dataset(tmp_path / "sets", "pets")
    assert loaded.X.tolist() == [[1.5, 2.0], [3.25, 4.0], [0.0, -1000.0]] and loaded.y.tolist() == [0, 1, 0]
    assert loaded.feature_names == ("size, cm", "weight") and "semicolons, decimal commas" in loaded.source
    assert [i.name for i in user_catalogue(tmp_path / "sets")] == ["pets"]


def test_whole_number_labels_are_class_names_as_a_model_fitted_on_them_answers(tmp_path):
    info = add(tmp_path, "wine", "a,b,quality\n1,2,3\n3,4,5.0\n5,6,3\n", label="quality")
    assert info.class_names == ("3", "5")


@pytest.mark.parametrize(("text", "label", "says"), [
    ("a,b,kind\n1,2,x\n", None, r"is a table: say which column holds the true labels \(--label COLUMN\); its columns"),
    ("a,b,target\n1,2,x\n", None, r"--label COLUMN, e.g. --label 'target'"),
    ("a,b,c\n1,2,x\n", "kind", r"has no column 'kind' for the labels; its columns are 'a', 'b', 'c'"),
    (",a,kind\n0,1,x\n", "kind", r"column 1 has no name \(a pandas index\? save with to_csv\(..., index=False\)\)"),
    ("a,a,kind\n1,2,x\n", "kind", r"two columns are named 'a'"),
    ("a,b,kind\n1,two,x\n2,3,y\n", "kind", r"column 'b' mixes numbers and text \('3' in row 2, 'two' in row 1\)"),
    ("a,b,kind\n1,2,x\n3,,y\n", "kind", r"column 'b' has 1 missing value \(the first in row 2\)"),
    ("a,b,kind\n1,2,x\n3,4,\n", "kind", r"row 2 has no label"),
    ("a,b,kind\n", "kind", r"has a header but no rows"),
    ("", "kind", r"is empty"),
    ("a,b,kind\n1,1e39,x\n", "kind", r"column 'b' holds 1e\+39 in row 1: values are float32"),
    ("kind\nx\n", "kind", r"holds only the label column 'kind'"),
    ("a,b,kind\n1,2,3,x\n", "kind", r"cannot read tab.csv as CSV"),
])
def test_a_bad_csv_is_refused_with_its_column_and_row_and_nothing_is_kept(tmp_path, text, label, says):
    with pytest.raises(DatasetImportError, match=says):
        add(tmp_path, "tab", text, label=label)
    assert user_catalogue(tmp_path / "sets") == []


def test_binary_data_named_csv_and_text_named_parquet_are_refused(tmp_path):
    with pytest.raises(DatasetImportError, match=r"tab.csv is not a CSV file \(it holds binary data\)"):
        add(tmp_path, "tab", b"PAR1\x00\x01")
    with pytest.raises(DatasetImportError, match=r"tab.parquet is not a Parquet file \(it starts with b'a,b,'"):
        add(tmp_path, "tab", "a,b,kind\n1,2,x\n", suffix=".parquet")


def test_too_many_rows_or_columns_are_refused_before_they_are_read_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(limits, "MAX_ROWS", 3)
    with pytest.raises(DatasetImportError, match=r"holds more than 3 rows: the limit is 3; give a sample of it"):
        add(tmp_path, "tab", "a,kind\n" + "1,x\n" * 10)
    monkeypatch.setattr(limits, "MAX_ROW_VALUES", 4)
    with pytest.raises(DatasetImportError, match=r"has 6 columns: the limit is 4 feature columns and the label"):
        add(tmp_path, "tab", "a,b,c,d,e,kind\n1,2,3,4,5,x\n")


def test_a_table_takes_no_image_options_and_an_image_format_no_label(tmp_path):
    with pytest.raises(DatasetImportError, match=r"is a table: .* an image shape cannot apply"):
        add(tmp_path, "tab", "a,b,kind\n1,2,x\n", image_shape=(1, 2))
    np.savez(tmp_path / "i.npz", X=np.zeros((2, 4)), y=np.array([0, 1]))
    with pytest.raises(DatasetImportError, match=r"a label column \('kind'\) is for a CSV or Parquet table"):
        import_dataset(tmp_path / "sets", "img", [tmp_path / "i.npz"], label="kind")


def test_parquet_with_nullable_integers_is_read_and_a_missing_value_named(tmp_path):
    frame = pd.DataFrame({"a": pd.array([1, 2, 3], dtype="Int64"), "b": [0.5, 1.5, 2.5], "kind": ["x", "y", "x"]})
    frame.to_parquet(tmp_path / "ok.parquet")
    info = import_dataset(tmp_path / "sets", "fine", [tmp_path / "ok.parquet"], label="kind")
    assert info.feature_names == ("a", "b")
    assert load_user_dataset(tmp_path / "sets", "fine").X.tolist() == [[1, 0.5], [2, 1.5], [3, 2.5]]
    frame.loc[1, "a"] = pd.NA
    frame.to_parquet(tmp_path / "gap.parquet")
    with pytest.raises(DatasetImportError, match=r"column 'a' has 1 missing value \(the first in row 2\)"):
        import_dataset(tmp_path / "sets", "gap", [tmp_path / "gap.parquet"], label="kind")


def test_a_table_fits_a_model_with_the_same_columns_in_any_order_and_is_put_in_its_order(tmp_path):
    add(tmp_path, "tab", "b,a,kind\n2,1,x\n4,3,y\n")
    info = user_catalogue(tmp_path / "sets")[0]
    model = Signature(n_features=2, feature_names=("a", "b"), class_labels=("y", "x"))
    assert mismatch(info, model) is None
    loaded = load_dataset("tab", model, tmp_path / "sets")
    assert loaded.feature_names == ("a", "b") and loaded.X.tolist() == [[1, 2], [3, 4]]
    assert in_model_order(loaded, Signature()) is loaded
    assert mismatch(info, Signature(feature_names=("a", "c"))) == (
        "it lacks the model's column c; it has column the model does not take: b")
    assert mismatch(info, Signature(image_shape=(28, 28))) == "it is a table of 2 columns; the model takes 28x28 images"
    with pytest.raises(DatasetMismatchError, match="its rows are 28x28 images; the model takes 2 named features"):
        load_dataset("mnist", model, tmp_path / "sets")


def test_rows_are_perturbed_per_column_by_their_spread_and_medians():
    reference = np.array([[0.0, 100.0], [2.0, 300.0], [4.0, 500.0]], dtype=np.float32)
    noisy = perturb_rows(reference, "spread-noise", 1.0, reference=reference, seed=3)
    moved = np.abs(noisy - reference).mean(axis=0)
    assert moved[1] > 50 * moved[0] / 2  # each column moves on its own scale (spread 1.6 against 163)
    assert np.array_equal(perturb_rows(reference, "spread-noise", 1.0, reference=reference, seed=3), noisy)
    medians = perturb_rows(reference, "to-median", 2, reference=reference, seed=0)
    assert medians.tolist() == [[2.0, 300.0]] * 3
    one = perturb_rows(reference, "to-median", 1, reference=reference, seed=0)
    assert ((one == reference).sum(axis=1) >= 1).all() and ((one == [2.0, 300.0]).sum(axis=1) >= 1).all()
    with pytest.raises(InvalidPerturbationError, match="takes whole numbers from 0 to 2"):
        perturb_rows(reference, "to-median", 3, reference=reference)


def test_a_table_set_offers_the_row_kinds_and_refuses_the_image_ones():
    table = load_breast_cancer_test()
    assert list(kinds_of(table)) == ["spread-noise", "to-median"] and kinds_of(table)["to-median"].maximum == 30
    assert Perturbation("to-median", 30).apply(table).X.shape == table.X.shape
    with pytest.raises(InvalidPerturbationError, match="perturbs images; test set 'breast-cancer' holds rows"):
        Perturbation("rotate", 15).apply(table)


def test_the_breast_cancer_set_is_scikit_learns_columns_held_out_from_the_samples_training():
    from sklearn.datasets import load_breast_cancer

    assert BREAST_CANCER_FEATURES == tuple(load_breast_cancer().feature_names)
    test, train = load_breast_cancer_test(), load_breast_cancer_train()
    assert (len(test), len(train)) == (143, 426) and test.feature_names == BREAST_CANCER_FEATURES
    seen = {row.tobytes() for row in train.X}
    assert not any(row.tobytes() in seen for row in test.X)


def test_a_row_table_marks_the_wrong_rows_and_escapes_its_html():
    X = np.array([[1.0, 2.5], [3.0, 4.0]], dtype=np.float32)
    table = row_table(X, ("a", "<b>"), np.array([7, 9]), np.array([0, 1]), np.array([0, 0]), ("x", "y"),
                      np.array([0.9, 0.6]))
    assert table.columns == ("row", "prediction", "true label", "confidence", "a", "<b>")
    assert table.cells[1][:4] == (9, "x", "y", 0.6) and table.wrong == (False, True) and table.right == 1
    page = rows_html(table)
    assert "&lt;b&gt;" in page and page.count("background:#fde0dc") == 1
    # two answers compared (Compare's disagreements): each answer's cell green or red, no row red
    compared = row_table(X, ("a", "b"), np.array([7, 9]), np.array([0, 1]), np.array([0, 0]), ("x", "y"),
                         answers=(("B said", np.array([1, 1])),), heading="A said")
    assert compared.columns[:4] == ("row", "A said", "B said", "true label") and compared.wrong == (False, False)
    assert compared.verdicts == (("A said", (True, False)), ("B said", (False, True)))
    page = rows_html(compared)
    assert page.count("background-color: #dcf1e0") == 2 and page.count("background-color: #fde0dc") == 2


def test_a_models_columns_are_declared_from_json_or_read_from_its_tables_header(tmp_path, cli_env):
    import json
    import pickle
    import subprocess
    import sys

    from sklearn.linear_model import LogisticRegression

    from backend.registry import parse_signature
    from backend.services.models import declared_features

    (tmp_path / "columns.json").write_text('["a", "b"]')
    (tmp_path / "fitted-on.csv").write_text("\ufeffb;kind;a\n1;x;2\n")  # a spreadsheet's export
    frame = pd.DataFrame({"a": [1.0], "kind": ["x"], "b": [2.0]})
    frame.to_parquet(tmp_path / "fitted-on.parquet", index=False)
    assert declared_features(tmp_path / "columns.json") == ("a", "b")
    assert declared_features(tmp_path / "fitted-on.csv", "kind") == ("b", "a")
    assert declared_features(tmp_path / "fitted-on.parquet", "kind") == ("a", "b")
    (tmp_path / "twice.json").write_text('{"features": ["a", "a"]}')
    with pytest.raises(Exception, match="names the column 'a' twice"):
        declared_features(tmp_path / "twice.json")
    with pytest.raises(Exception, match="has no column 'label' for the labels"):
        declared_features(tmp_path / "fitted-on.csv", "label")
    assert parse_signature("", feature_names=("a", "b")) == Signature(n_features=2, feature_names=("a", "b"),
                                                                      source="declared at registration")
    with pytest.raises(Exception, match="the input shape says 3 values, and 2 columns are named"):
        parse_signature("3", feature_names=("a", "b"))

    # a model fitted on an array knows no names: declared, a table with its columns in any order fits it
    model = LogisticRegression().fit(np.array([[0.0, 0.0], [1.0, 1.0]]), ["x", "y"])
    (tmp_path / "model.pkl").write_bytes(pickle.dumps(model))

    def modeldeck(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "backend", *args], env=cli_env, capture_output=True, text=True,
                              timeout=120)

    done = modeldeck("models", "register", "named", str(tmp_path / "model.pkl"), "--from-csv",
                     str(tmp_path / "fitted-on.csv"), "--label", "kind", "--json")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["signature"]["feature_names"] == ["b", "a"]
    both = modeldeck("models", "register", "named", str(tmp_path / "model.pkl"), "--features",
                     str(tmp_path / "columns.json"), "--from-csv", str(tmp_path / "fitted-on.csv"))
    assert both.returncode == 1 and "give the columns once" in both.stderr
    image = modeldeck("models", "register", "named", str(tmp_path / "model.pkl"), "--features",
                      str(tmp_path / "columns.json"), "--input-shape", "28x28")
    assert image.returncode == 1 and "named columns are a table's input, not a 28x28 image's" in image.stderr


def test_a_table_of_some_of_the_models_classes_fits_and_is_scored_against_all_of_them(tmp_path):
    add(tmp_path, "benign-only", "a,b,kind\n1,2,benign\n3,4,benign\n")
    info = user_catalogue(tmp_path / "sets")[0]
    model = Signature(n_features=2, feature_names=("a", "b"), class_labels=("benign", "malignant"))
    assert info.class_names == ("benign",) and mismatch(info, model) is None
    loaded = load_dataset("benign-only", model, tmp_path / "sets")
    assert loaded.class_names == ("benign", "malignant") and loaded.y.tolist() == [0, 0]
    reversed_classes = load_dataset("benign-only", Signature(class_labels=("malignant", "benign")), tmp_path / "sets")
    assert reversed_classes.class_names == ("malignant", "benign") and reversed_classes.y.tolist() == [1, 1]
    assert mismatch(info, Signature(class_labels=("cat", "dog"))) == "its classes are benign; the model's are cat, dog"
    add(tmp_path, "mixed", "a,b,kind\n1,2,benign\n3,4,unknown\n")
    mixed = next(i for i in user_catalogue(tmp_path / "sets") if i.name == "mixed")
    assert mismatch(mixed, model) == ("its classes are benign, unknown; the model's are benign, malignant (unknown not "
                                      "among them)")
