"""The test sets ModelDeck knows by name, as one table: adding one is a loader and its row in `BUILT_IN`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import lru_cache
from pathlib import Path

import numpy as np

from ..config import ASSETS_DIR
from ..errors import DatasetError
from .idx import load_idx_pair
from .testset import DatasetInfo, TestSet

MNIST_DIR = ASSETS_DIR / "data" / "mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_INSTALL = "apt-get install dataset-fashion-mnist"
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")
DIGITS = tuple(str(i) for i in range(10))
BREAST_CANCER_CLASSES = ("malignant", "benign")  # scikit-learn's target 0 and 1
# scikit-learn's names of the 30 columns of load_breast_cancer(), so the catalogue lists the set without
# importing scikit-learn (a test checks them against it)
_MEASURES = ("radius", "texture", "perimeter", "area", "smoothness", "compactness", "concavity", "concave points",
             "symmetry", "fractal dimension")
BREAST_CANCER_FEATURES = (*(f"mean {m}" for m in _MEASURES), *(f"{m} error" for m in _MEASURES),
                          *(f"worst {m}" for m in _MEASURES))
BREAST_CANCER_HELD_OUT = 0.25  # the share of the 569 rows held out as the test set (143 rows)


@lru_cache(maxsize=4)
def load_mnist_test() -> TestSet:
    """The real MNIST 10k test set shipped in assets/data/mnist."""
    return load_idx_pair(MNIST_DIR / "t10k-images-idx3-ubyte.gz", MNIST_DIR / "t10k-labels-idx1-ubyte.gz",
                         name="mnist")


@lru_cache(maxsize=2)
def load_digits_set() -> TestSet:
    """scikit-learn's bundled 8x8 digits (1,797 images), pixels 0..16 scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    return TestSet("digits", X, digits.target.astype(np.int64), (8, 8), DIGITS, "sklearn.datasets.load_digits")


@lru_cache(maxsize=1)
def _breast_cancer_split() -> tuple[TestSet, TestSet]:
    """(training rows, held-out test rows) of scikit-learn's bundled breast-cancer data: 569 rows of 30
    named measurements, split once, stratified, with a fixed seed (the sample model never sees the test rows)."""
    from sklearn.datasets import load_breast_cancer
    from sklearn.model_selection import train_test_split

    data = load_breast_cancer()
    names = tuple(str(name) for name in data.feature_names)
    X, y = data.data.astype(np.float32), data.target.astype(np.int64)
    train, test = train_test_split(np.arange(len(y)), test_size=BREAST_CANCER_HELD_OUT, random_state=0, stratify=y)
    source = "sklearn.datasets.load_breast_cancer"

    def part(name: str, rows: np.ndarray, words: str) -> TestSet:
        return TestSet(name, X[np.sort(rows)], y[np.sort(rows)], None, BREAST_CANCER_CLASSES,
                       f"{source}, {words}", (float(X.min()), float(X.max())), feature_names=names)

    return (part("breast-cancer-train", train, f"the {len(train)} training rows"),
            part("breast-cancer", test, f"the {len(test)} rows held out ({BREAST_CANCER_HELD_OUT:.0%}, stratified, "
                                        "seed 0)"))


def load_breast_cancer_test() -> TestSet:
    """The 143 rows of scikit-learn's breast-cancer data held out from the sample model's training."""
    return _breast_cancer_split()[1]


def load_breast_cancer_train() -> TestSet:
    """The other 426 rows: what the breast-cancer sample model is trained on."""
    return _breast_cancer_split()[0]


def _fashion_files(part: str = "t10k") -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of Fashion-MNIST's `part` ("t10k" or "train"), gzip or not."""
    base = FASHION_MNIST_DIR
    if not base.is_dir():
        return None
    images = next(iter(sorted(base.glob(f"{part}-images-idx3-ubyte*"))), None)
    labels = next(iter(sorted(base.glob(f"{part}-labels-idx1-ubyte*"))), None)
    return (images, labels) if images and labels else None


def _fashion_pair(part: str) -> tuple[Path, Path]:
    files = _fashion_files(part)
    if files is None:
        raise DatasetError(f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR}: {FASHION_INSTALL}")
    return files


def load_fashion_mnist_test() -> TestSet:
    """Fashion-MNIST's 10k test set, from Debian's dataset-fashion-mnist package.

    Raises:
        DatasetError: the package is not installed (the message says how to install it).
    """
    return load_idx_pair(*_fashion_pair("t10k"), name="fashion-mnist", class_names=FASHION_CLASSES)


def load_fashion_mnist_train(limit: int | None = None) -> TestSet:
    """The first `limit` (default: all 60,000) of Fashion-MNIST's training images, for training.

    Raises:
        DatasetError: the package is not installed (the message says how to install it).
    """
    full = load_idx_pair(*_fashion_pair("train"), name="fashion-mnist-train", class_names=FASHION_CLASSES)
    if limit is None or limit >= len(full):
        return full
    return replace(full, X=full.X[:limit], y=full.y[:limit], source=f"the first {limit:,} of {full.source}")


def _always() -> bool:
    return True


@dataclass(frozen=True)
class BuiltIn:
    """A test set known by name: what the catalogue says of it without loading it, and how to load it.

    Attributes:
        name: what `load_dataset` and `--dataset` take.
        title: for people.
        image_shape: (height, width) of its images; None for a table.
        class_names: its labels.
        load: loads it (raises DatasetError when it is not installed).
        installed: whether its files are on this machine.
        install_hint: how to install it when they are not.
        feature_names: a table's columns.
    """

    name: str
    title: str
    image_shape: tuple[int, int] | None
    class_names: tuple[str, ...]
    load: Callable[[], TestSet]
    installed: Callable[[], bool] = _always
    install_hint: str = ""
    feature_names: tuple[str, ...] | None = None

    def info(self) -> DatasetInfo:
        """The set as the catalogue lists it (images' values in [0, 1], as each loader makes them)."""
        return DatasetInfo(self.name, self.title, self.image_shape, self.class_names, self.installed(),
                           install_hint=self.install_hint, feature_names=self.feature_names)


BUILT_IN = (
    BuiltIn("mnist", "MNIST 10k (bundled)", (28, 28), DIGITS, load_mnist_test),
    BuiltIn("digits", "scikit-learn digits 8x8 (1,797)", (8, 8), DIGITS, load_digits_set),
    BuiltIn("fashion-mnist", "Fashion-MNIST 10k", (28, 28), FASHION_CLASSES, load_fashion_mnist_test,
            installed=lambda: _fashion_files() is not None, install_hint=FASHION_INSTALL),
    BuiltIn("breast-cancer", "scikit-learn breast cancer, 143 held-out rows", None, BREAST_CANCER_CLASSES,
            load_breast_cancer_test, feature_names=BREAST_CANCER_FEATURES),
)
BUILT_IN_BY_NAME = {built_in.name: built_in for built_in in BUILT_IN}
DATASET_NAMES = tuple(BUILT_IN_BY_NAME)
