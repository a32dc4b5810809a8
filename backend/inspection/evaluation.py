"""Scoring a test set against an endpoint and measuring what the model gets right and wrong."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..client import ScoringClient
from ..datasets import TestSet
from ..errors import UnexpectedAnswerError


@dataclass(frozen=True)
class ConfusedPair:
    true_label: str
    predicted_label: str
    count: int

    def __str__(self) -> str:
        return f"{self.true_label} taken for {self.predicted_label}: {self.count} times"


@dataclass(frozen=True)
class Evaluation:
    """The outcome of scoring a labelled set.

    Attributes:
        accuracy: share of correct predictions.
        confusion: counts, rows = true label, columns = predicted label.
        normalized: `confusion` with rows normalised and the diagonal zeroed, so errors stand out.
        labels: display names of rows/columns.
        precision, recall: per class.
        most_confused: the largest off-diagonal counts, largest first.
        predictions: the predicted labels, in test-set order.
    """

    accuracy: float
    confusion: np.ndarray
    normalized: np.ndarray
    labels: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    most_confused: tuple[ConfusedPair, ...]
    predictions: np.ndarray

    @property
    def n(self) -> int:
        return int(self.confusion.sum())


@dataclass(frozen=True)
class Samples:
    """Random test images with their labels and predictions."""

    indices: np.ndarray
    images: np.ndarray
    labels: np.ndarray
    predictions: np.ndarray
    image_shape: tuple[int, int]
    class_names: tuple[str, ...]

    @property
    def correct(self) -> np.ndarray:
        return self.labels == self.predictions


def normalized_confusion(confusion: np.ndarray) -> np.ndarray:
    """Each row divided by its sum (empty rows stay 0), diagonal set to 0."""
    confusion = np.asarray(confusion, dtype=np.float64)
    sums = confusion.sum(axis=1, keepdims=True)
    normalized = np.divide(confusion, sums, out=np.zeros_like(confusion), where=sums > 0)
    np.fill_diagonal(normalized, 0.0)
    return normalized


def most_confused(confusion: np.ndarray, labels: tuple[str, ...], top: int = 5) -> tuple[ConfusedPair, ...]:
    """The `top` largest off-diagonal counts as (true, predicted, count), largest first."""
    off = np.asarray(confusion).copy()
    np.fill_diagonal(off, 0)
    order = np.argsort(off, axis=None, kind="stable")[::-1][:top]
    pairs = []
    for flat in order:
        i, j = np.unravel_index(flat, off.shape)
        if off[i, j] > 0:
            pairs.append(ConfusedPair(labels[i], labels[j], int(off[i, j])))
    return tuple(pairs)


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...]) -> Evaluation:
    """Accuracy, confusion matrix (scikit-learn), normalised matrix, precision/recall, confused pairs."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred).astype(y_true.dtype, copy=False)
    classes = np.arange(len(labels))
    confusion = confusion_matrix(y_true, y_pred, labels=classes)
    precision, recall, _, _ = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    return Evaluation(
        accuracy=float(np.mean(y_true == y_pred)) if len(y_true) else 0.0, confusion=confusion,
        normalized=normalized_confusion(confusion), labels=labels, precision=precision, recall=recall,
        most_confused=most_confused(confusion, labels), predictions=y_pred)


def label_indices(answer: object, class_names: tuple[str, ...], rows: int) -> np.ndarray:
    """The endpoint's answer as label indices of the test set: whole numbers in range, or the class
    names themselves (a model trained on named labels).

    Raises:
        UnexpectedAnswerError: not one known label per row, saying what arrived.
    """
    values = np.asarray(answer)
    if values.ndim != 1 or len(values) != rows:
        raise UnexpectedAnswerError(
            f"the endpoint answered {values.shape[0] if values.ndim else 'one value'} value(s) of shape "
            f"{list(values.shape)} for {rows} rows: expected one label per row")
    if values.dtype.kind in "iu" or (values.dtype.kind == "f" and np.all(np.mod(values, 1) == 0)):
        indices = values.astype(np.int64)
        outside = indices[(indices < 0) | (indices >= len(class_names))]
        if len(outside):
            raise UnexpectedAnswerError(f"the endpoint answered label {int(outside[0])}, which this test set does "
                                        f"not have (its labels: 0 to {len(class_names) - 1})")
        return indices
    position = {name: i for i, name in enumerate(class_names)}
    unknown = [str(v) for v in values if str(v) not in position]
    if unknown:
        raise UnexpectedAnswerError(f"the endpoint answered {unknown[0]!r}, which is not a class of this test set "
                                    f"({', '.join(class_names[:10])})")
    return np.array([position[str(v)] for v in values], dtype=np.int64)


def score_testset(client: ScoringClient, scoring_uri: str, testset: TestSet, *, batch_size: int = 10_000,
                  use_binary: bool = True, progress: Callable[[int, int], None] | None = None,
                  key: str | None = None) -> np.ndarray:
    """Predictions for the whole test set, in batches; progress(done, total) after each; `key` for an
    endpoint with key auth."""
    parts = []
    total = len(testset)
    for start in range(0, total, batch_size):
        batch = testset.X[start:start + batch_size]
        answer = client.predict(scoring_uri, batch, use_binary=use_binary, key=key)
        parts.append(label_indices(answer, testset.class_names, len(batch)))
        if progress:
            progress(min(start + batch_size, total), total)
    return np.concatenate(parts) if parts else np.empty(0, dtype=np.int64)


def supports_binary(client: ScoringClient, scoring_uri: str, key: str | None = None) -> bool:
    """Whether the endpoint takes the fast application/x-npy body (its /info says so)."""
    try:
        return "application/x-npy" in client.info(scoring_uri, key=key).get("content_types", [])
    except Exception:  # an endpoint without /info, or one that fails to answer it: use JSON
        return False


def class_name(class_names: tuple[str, ...], label: int) -> str:
    """The display name of label index `label` (the number itself when the set has no such class)."""
    return class_names[label] if 0 <= label < len(class_names) else str(label)


def predictions_csv(indices: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                    class_names: tuple[str, ...]) -> str:
    """index,label,prediction,correct rows for a download."""
    lines = ["index,label,prediction,correct"]
    for i, t, p in zip(indices, labels, predictions, strict=True):
        lines.append(f"{int(i)},{class_name(class_names, int(t))},{class_name(class_names, int(p))},{int(t) == int(p)}")
    return "\n".join(lines) + "\n"


def evaluate_endpoint(client: ScoringClient, scoring_uri: str, testset: TestSet, **kwargs: Any) -> Evaluation:
    """Scores the whole test set at the endpoint and evaluates the predictions."""
    predictions = score_testset(client, scoring_uri, testset, **kwargs)
    return evaluate(testset.y, predictions, testset.class_names)


def sample(client: ScoringClient, scoring_uri: str, testset: TestSet, n: int = 30, *, seed: int | None = None,
           use_binary: bool = True, key: str | None = None) -> Samples:
    """`n` random test images (without repeats) scored at the endpoint."""
    rng = np.random.default_rng(seed)
    n = max(1, min(n, len(testset)))
    indices = np.sort(rng.choice(len(testset), size=n, replace=False))
    answer = client.predict(scoring_uri, testset.X[indices], use_binary=use_binary, key=key)
    return Samples(indices=indices, images=testset.X[indices], labels=testset.y[indices],
                   predictions=label_indices(answer, testset.class_names, len(indices)),
                   image_shape=testset.image_shape,
                   class_names=testset.class_names)
