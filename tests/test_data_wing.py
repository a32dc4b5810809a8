"""The test-set wing (backend/data): its imports stay below inspection/, its tables (built-in sets, formats)
are the one place each fact is written, and one function says which sets fit some models."""

from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from backend.data import builtin, uploads
from backend.data.builtin import BUILT_IN, FASHION_CLASSES
from backend.data.catalogue import fitting_testset, sets_fitting
from backend.data.formats.base import RawSet
from backend.data.store import import_dataset, revision
from backend.errors import DatasetImportError, DatasetMismatchError
from backend.registry import Model, Signature

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "backend" / "data"
BELOW = {"backend.errors", "backend.config", "backend.files", "backend.registry", "backend.staging", "backend.words"}
"""What the wing may import from the rest of the backend."""
MNIST_LIKE = Signature(n_features=784, image_shape=(28, 28), value_range=(0.0, 1.0), class_labels=tuple("0123456789"))
FASHION = Signature(n_features=784, class_labels=tuple(sorted(FASHION_CLASSES)))


def backend_imports(path: Path) -> set[str]:
    """The backend modules a file imports, relative imports resolved."""
    package = ".".join(path.relative_to(ROOT).with_suffix("").parts[:-1])
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package.rsplit(".", node.level - 1)[0] if node.level else ""
            module = ".".join(part for part in (base, node.module or "") if part)
            found.add(module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {module for module in found if module.startswith("backend")}


def model(name: str, signature: Signature) -> Model:
    return Model(name=name, version=1, framework="sklearn", files=(), signature=signature)


def test_the_wing_imports_nothing_above_it():
    outside = {(str(path.relative_to(ROOT)), module)
               for path in DATA.rglob("*.py") for module in backend_imports(path)
               if not module.startswith("backend.data") and module not in BELOW}
    assert outside == set()


def test_no_module_of_the_old_layout_is_left():
    assert not (ROOT / "backend" / "datasets.py").exists() and not (ROOT / "backend" / "user_datasets.py").exists()
    assert not (ROOT / "backend" / "inspection" / "preprocess.py").exists()


def test_each_installed_built_in_set_loads_as_its_row_says():
    for row in BUILT_IN:
        if not row.installed():
            continue
        loaded = row.load()
        assert (loaded.name, loaded.image_shape, loaded.class_names) == (row.name, row.image_shape, row.class_names)
        info = row.info()
        assert info.installed and loaded.feature_names == info.feature_names
        assert row.feature_names is not None or info.value_range == loaded.value_range == (0.0, 1.0)


def test_a_built_in_set_missing_from_this_machine_says_how_to_install_it(monkeypatch, tmp_path):
    monkeypatch.setattr(builtin, "FASHION_MNIST_DIR", tmp_path / "none")
    fit = sets_fitting(FASHION)
    assert fit.fitting == ()
    assert dict((info.name, why) for info, why in fit.hidden)["fashion-mnist"] == (
        "not installed (apt-get install dataset-fashion-mnist)")


def test_sets_fitting_two_models_keeps_what_fits_both_and_says_why_not_for_the_rest():
    eight = Signature(n_features=64, image_shape=(8, 8), class_labels=tuple("0123456789"))
    assert [info.name for info in sets_fitting(MNIST_LIKE, None).fitting] == ["mnist"]
    fit = sets_fitting(MNIST_LIKE, eight)
    assert fit.fitting == ()
    why = dict((info.name, reason) for info, reason in fit.hidden)
    assert why["digits"] == "its images are 8x8; the model takes 28x28"  # the first model's reason
    assert why["mnist"] == "its images are 28x28; the model takes 8x8"  # the second's, where the first fits
    assert {"mnist", "digits"} <= {info.name for info in sets_fitting().fitting}  # no model known: every installed set


def test_fitting_testset_loads_the_first_that_fits_or_the_one_asked_and_says_when_none_fits():
    assert fitting_testset(model("a", MNIST_LIKE), None).name == "mnist"
    assert fitting_testset(None).name == "mnist"
    assert fitting_testset(model("a", MNIST_LIKE), requested="mnist").name == "mnist"
    eight = model("b", Signature(n_features=64, image_shape=(8, 8)))
    with pytest.raises(DatasetMismatchError, match="test set 'digits' does not fit this model: its images are 8x8"):
        fitting_testset(model("a", MNIST_LIKE), eight, requested="digits")
    with pytest.raises(DatasetMismatchError, match=r"^no test set fits a:1 and b:1: see `datasets list`$"):
        fitting_testset(model("a", MNIST_LIKE), eight)


def test_a_users_set_fits_by_its_own_range_and_is_chosen_when_the_built_in_ones_do_not(tmp_path):
    root = tmp_path / "sets"
    path = tmp_path / "sixteen.npz"
    rng = np.random.default_rng(0)
    np.savez(path, X=rng.integers(0, 17, (20, 8, 8)).astype(np.float32), y=np.arange(20) % 10)
    import_dataset(root, "sixteen", [path])
    zero_to_16 = model("d", Signature(n_features=64, value_range=(0.0, 16.0), class_labels=tuple("0123456789")))
    assert [info.name for info in sets_fitting(zero_to_16.signature, user_root=root).fitting] == ["sixteen"]
    assert fitting_testset(zero_to_16, user_root=root).name == "sixteen"


def test_revision_is_zero_for_a_built_in_set_and_changes_when_a_users_set_is_replaced(tmp_path):
    root = tmp_path / "sets"
    path = tmp_path / "a.npz"
    assert revision(root, "mnist") == 0 and revision(root, "never-stored") == 0
    np.savez(path, X=np.zeros((2, 4, 4)), y=np.array([0, 1]))
    import_dataset(root, "mine", [path])
    stored = root / "mine.npz"
    os.utime(stored, ns=(stored.stat().st_mtime_ns - 10**9,) * 2)  # as if stored a second earlier
    before = revision(root, "mine")
    assert before == stored.stat().st_mtime_ns != 0
    np.savez(path, X=np.ones((2, 4, 4)), y=np.array([0, 1]))
    import_dataset(root, "mine", [path], replace=True)
    assert revision(root, "mine") != before


def test_a_format_registered_in_the_table_is_read_offered_and_named_in_every_refusal(monkeypatch, tmp_path):
    def read_txt(paths, label):
        rows = np.loadtxt(paths[0], delimiter=",", ndmin=2)
        return RawSet(rows[:, 1:], rows[:, 0].astype(np.int64), None, paths[0].name)

    txt = uploads.Format(".txt", 1, frozenset({".txt"}), read_txt, "one .txt of rows: the label, then the values")
    monkeypatch.setattr(uploads, "FORMATS", (*uploads.FORMATS, txt))
    path = tmp_path / "rows.txt"
    path.write_text("0,0,0,0,1\n1,1,1,1,0\n")
    info = import_dataset(tmp_path / "sets", "rows", [path])
    assert (info.image_shape, info.class_names) == ((2, 2), ("0", "1"))
    assert uploads.formats_help().endswith("; or one .txt of rows: the label, then the values")
    assert uploads.formats_named() == "one .npz, two IDX files, one .zip, one .csv, one .parquet or one .txt"
    (tmp_path / "a.dat").write_text("x")
    with pytest.raises(DatasetImportError, match=r"cannot import a.dat: give .*; or one .txt of rows"):
        import_dataset(tmp_path / "sets", "text", [tmp_path / "a.dat"])
    with pytest.raises(DatasetImportError, match=r"^rows.txt is given with a.dat: give one .txt alone, or two IDX"):
        import_dataset(tmp_path / "sets", "pair", [path, tmp_path / "a.dat"])


def test_the_cli_help_lists_the_formats_from_the_table():
    shown = subprocess.run([sys.executable, "-m", "backend", "datasets", "--help"], capture_output=True, text=True,
                           check=True, cwd=ROOT, env={**os.environ, "COLUMNS": "1000"}).stdout
    assert f"add your own test set: {uploads.formats_help()}" in shown
