"""Scoring a test set against an endpoint and measuring what the model gets right and wrong."""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..client import Scores, ScoringClient
from ..data.testset import Categories, TestSet
from ..errors import InvalidPerturbationError, UnexpectedAnswerError
from ..shown import shown
from .perturb import Perturbation, kinds_of


@dataclass(frozen=True)
class ConfusedPair:
    true_label: str
    predicted_label: str
    count: int

    def __str__(self) -> str:
        return f"{self.true_label} taken for {self.predicted_label}: {self.count} time{'s' if self.count != 1 else ''}"


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
        probabilities: rows x labels (test-set class order), None when the endpoint gave labels only.
    """

    accuracy: float
    confusion: np.ndarray
    normalized: np.ndarray
    labels: tuple[str, ...]
    precision: np.ndarray
    recall: np.ndarray
    most_confused: tuple[ConfusedPair, ...]
    predictions: np.ndarray
    y_true: np.ndarray
    probabilities: np.ndarray | None = None

    @property
    def n(self) -> int:
        return int(self.confusion.sum())

    @property
    def confidence(self) -> np.ndarray | None:
        """The probability each prediction was given (None without probabilities)."""
        return None if self.probabilities is None else confidence_of(self.probabilities, self.predictions)

    def cell(self, true: int | None, predicted: int | None, errors_only: bool = False) -> np.ndarray:
        """Indices of the test items with that true and predicted label (None: any; with `errors_only`,
        wrong predictions only), most confident first (in test-set order without probabilities)."""
        keep = self.predictions != self.y_true if errors_only else np.ones(len(self.predictions), dtype=bool)
        if true is not None:
            keep &= self.y_true == true
        if predicted is not None:
            keep &= self.predictions == predicted
        found = np.flatnonzero(keep)
        confidence = self.confidence
        return found if confidence is None else found[np.argsort(-confidence[found], kind="stable")]

    def confidently_wrong(self, top: int = 24) -> np.ndarray:
        """Indices of wrong predictions, highest probability on the wrong label first."""
        return self._ranked(self.predictions != self.y_true, descending=True)[:top]

    def least_confident_right(self, top: int = 24) -> np.ndarray:
        """Indices of right predictions, lowest probability first."""
        return self._ranked(self.predictions == self.y_true, descending=False)[:top]

    def _ranked(self, mask: np.ndarray, descending: bool) -> np.ndarray:
        found = np.flatnonzero(mask)
        confidence = self.confidence
        if confidence is None:
            return found
        order = np.argsort(-confidence[found] if descending else confidence[found], kind="stable")
        return found[order]


def confidence_of(probabilities: np.ndarray, predictions: np.ndarray) -> np.ndarray:
    """Per row, the probability given to the predicted label."""
    rows = np.arange(len(predictions))
    columns = np.clip(predictions, 0, probabilities.shape[1] - 1)
    return np.where(predictions < probabilities.shape[1], probabilities[rows, columns], 0.0)


@dataclass(frozen=True)
class Samples:
    """Random test images (or a table's rows) with their labels and predictions."""

    indices: np.ndarray
    images: np.ndarray  # the rows as sent: an image's pixels, or a table row's values
    labels: np.ndarray
    predictions: np.ndarray
    image_shape: tuple[int, int] | None  # None for a table's rows
    class_names: tuple[str, ...]
    probabilities: np.ndarray | None = None  # rows x class_names, None when the endpoint gave labels only
    value_range: tuple[float, float] = (0.0, 1.0)  # the test set's: what the images are drawn on
    feature_names: tuple[str, ...] | None = None  # a table's columns
    categories: Categories = ()  # a table's text columns (their values are indices into these)

    @property
    def correct(self) -> np.ndarray:
        return self.labels == self.predictions

    @property
    def confidence(self) -> np.ndarray | None:
        return None if self.probabilities is None else confidence_of(self.probabilities, self.predictions)


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


def evaluate(y_true: np.ndarray, y_pred: np.ndarray, labels: tuple[str, ...],
             probabilities: np.ndarray | None = None) -> Evaluation:
    """Accuracy, confusion matrix (scikit-learn), normalised matrix, precision/recall, confused pairs
    (and the class probabilities, test-set class order, when the endpoint gave them)."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y_true, y_pred = np.asarray(y_true), np.asarray(y_pred).astype(y_true.dtype, copy=False)
    classes = np.arange(len(labels))
    confusion = confusion_matrix(y_true, y_pred, labels=classes)
    precision, recall, _, _ = precision_recall_fscore_support(y_true, y_pred, labels=classes, zero_division=0)
    return Evaluation(
        accuracy=float(np.mean(y_true == y_pred)) if len(y_true) else 0.0, confusion=confusion,
        normalized=normalized_confusion(confusion), labels=labels, precision=precision, recall=recall,
        most_confused=most_confused(confusion, labels), predictions=y_pred, y_true=y_true,
        probabilities=probabilities)


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
        numbered = _numbered(class_names)
        if numbered is not None:  # classes named by numbers ("1" to "10"): by name, not position
            indices = np.searchsorted(numbered, indices)
            known = indices < len(numbered)
            known[known] = numbered[indices[known]] == values.astype(np.int64)[known]
            indices[~known] = -1
        outside = (indices < 0) | (indices >= len(class_names))
        if outside.any():
            first = int(values.astype(np.int64)[outside][0])
            raise UnexpectedAnswerError(f"the endpoint answered label {first}, which this test set does "
                                        f"not have (its labels: {', '.join(class_names[:10])}"
                                        f"{', ...' if len(class_names) > 10 else ''})")
        return indices
    position = {name: i for i, name in enumerate(class_names)}
    # each distinct answer looked up once (a whole set's 100,000 names took 0.8 s one by one)
    answered, inverse = np.unique(values.astype(str), return_inverse=True)
    unknown = [str(name) for name in answered if str(name) not in position]
    if unknown:
        raise UnexpectedAnswerError(f"the endpoint answered {unknown[0]!r}, which is not a class of this test set "
                                    f"({', '.join(class_names[:10])})")
    return np.array([position[str(name)] for name in answered], dtype=np.int64)[inverse.reshape(-1)]


def _numbered(class_names: tuple[str, ...]) -> np.ndarray | None:
    """The class names as their numbers when every one is a whole number in ascending order and they are
    not just 0..k-1 (where name and position agree); None otherwise."""
    if not all(name.lstrip("-").isdigit() for name in class_names):
        return None
    numbers = np.array([int(name) for name in class_names], dtype=np.int64)
    if np.array_equal(numbers, np.arange(len(numbers))) or np.any(np.diff(numbers) <= 0):
        return None
    return numbers


def probabilities_by_class(scores: Scores, class_names: tuple[str, ...]) -> np.ndarray | None:
    """The endpoint's probabilities with columns in the test set's class order (None without them).

    Raises:
        UnexpectedAnswerError: the probabilities do not fit the batch or the classes are not the set's.
    """
    if scores.probabilities is None:
        return None
    probabilities = np.asarray(scores.probabilities, dtype=np.float64)
    classes = [str(c) for c in (scores.classes or range(probabilities.shape[1] if probabilities.ndim == 2 else 0))]
    if probabilities.ndim != 2 or probabilities.shape != (len(scores.labels), len(classes)):
        raise UnexpectedAnswerError(f"the endpoint's probabilities have shape {list(probabilities.shape)}, not one "
                                    f"row per item and one column per class ({len(classes)})")
    position = {name: i for i, name in enumerate(class_names)}
    unknown = [c for c in classes if c not in position]
    if unknown:
        raise UnexpectedAnswerError(f"the endpoint's class {unknown[0]!r} is not a class of this test set")
    ordered = np.zeros((len(scores.labels), len(class_names)))
    ordered[:, [position[c] for c in classes]] = probabilities
    return ordered


REQUEST_VALUES = 2000 * 784  # values per request of a whole-set scoring: 2,000 MNIST images (6 MB of float32)
MAX_REQUEST_ROWS = 20_000  # rows per request at most (a table of 30 columns: 2.4 MB), so progress still moves


def rows_per_request(testset: TestSet) -> int:
    """Rows per request when a whole set is scored: 2,000 images of 28x28; more of a narrow table (a request of
    2,000 rows of 30 values is mostly overhead: 100,000 rows took 3.0 s in 50 requests)."""
    return max(1, min(MAX_REQUEST_ROWS, REQUEST_VALUES // max(1, testset.X.shape[1])))


def score_testset(client: ScoringClient, scoring_uri: str, testset: TestSet, *, batch_size: int = 10_000,
                  use_binary: bool = True, uint8: bool = False, progress: Callable[[int, int], object] | None = None,
                  key: str | None = None, proba: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
    """(label indices, probabilities in test-set class order or None) for the whole test set, in
    batches; progress(done, total) after each; `key` for an endpoint with key auth; with `proba`,
    probabilities where the scoring script gives them. With `uint8` (and `use_binary`), a set made of
    8-bit pixels goes as those (a quarter of the bytes; the endpoint scales them back to the same floats)."""
    pixels = testset.pixels if use_binary and uint8 else None
    return score_batches(client, scoring_uri, pixels if pixels is not None else testset.X, testset,
                         batch_size=batch_size, use_binary=use_binary, key=key, proba=proba, progress=progress)


def score_batches(client: ScoringClient, scoring_uri: str, rows: np.ndarray, testset: TestSet, *,
                  batch_size: int, use_binary: bool = True, key: str | None = None, proba: bool = False,
                  progress: Callable[[int, int], object] | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """(label indices into the set's class names, probabilities in that order or None) for `rows` (the set's
    rows, or edits of them), in requests of `batch_size` rows; progress(done, total) after each."""
    labels: list[np.ndarray] = []
    probabilities: list[np.ndarray | None] = []
    total, class_names = len(rows), testset.class_names
    for start in range(0, total, batch_size):
        batch = rows[start:start + batch_size]
        scores = client.scores(scoring_uri, testset.as_sent(batch), use_binary=use_binary, key=key, proba=proba)
        labels.append(label_indices(scores.labels, class_names, len(batch)))
        probabilities.append(probabilities_by_class(scores, class_names))
        if progress:
            progress(min(start + batch_size, total), total)
    if not labels:
        return np.empty(0, dtype=np.int64), None
    given = [p for p in probabilities if p is not None]
    return np.concatenate(labels), np.concatenate(given) if len(given) == len(probabilities) else None


def class_name(class_names: tuple[str, ...], label: int) -> str:
    """The display name of label index `label` (the number itself when the set has no such class), its
    bidirectional-control characters escaped (`shown`)."""
    return shown(class_names[label]) if 0 <= label < len(class_names) else str(label)


def predictions_csv(indices: np.ndarray, labels: np.ndarray, predictions: np.ndarray,
                    class_names: tuple[str, ...]) -> str:
    """index,label,prediction,correct rows for a download (RFC 4180: a name with a comma, quote or line
    break is quoted)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(("index", "label", "prediction", "correct"))
    writer.writerows((int(i), class_name(class_names, int(t)), class_name(class_names, int(p)), int(t) == int(p))
                     for i, t, p in zip(indices, labels, predictions, strict=True))
    return out.getvalue()


def evaluate_endpoint(client: ScoringClient, scoring_uri: str, testset: TestSet, **kwargs: Any) -> Evaluation:
    """Scores the whole test set at the endpoint (with probabilities where the script gives them) and
    evaluates the predictions. Keyword arguments: those of `score_testset`."""
    kwargs.setdefault("proba", True)
    predictions, probabilities = score_testset(client, scoring_uri, testset, **kwargs)
    return evaluate(testset.y, predictions, testset.class_names, probabilities)


def sample(client: ScoringClient, scoring_uri: str, testset: TestSet, n: int = 30, *, seed: int | None = None,
           use_binary: bool = True, key: str | None = None, proba: bool = True,
           perturbation: Perturbation | None = None) -> Samples:
    """`n` random test images (without repeats) scored at the endpoint (with probabilities where the
    scoring script gives them, unless `proba` is False); with `perturbation`, the same images (for the
    same seed) perturbed first."""
    rng = np.random.default_rng(seed)
    n = max(1, min(n, len(testset)))
    indices = np.sort(rng.choice(len(testset), size=n, replace=False))
    images = testset.X[indices]
    if perturbation is not None:
        images = perturbation.applied(images, testset)
    scores = client.scores(scoring_uri, testset.as_sent(images), use_binary=use_binary, key=key, proba=proba)
    return Samples(indices=indices, images=images, labels=testset.y[indices],
                   predictions=label_indices(scores.labels, testset.class_names, len(indices)),
                   image_shape=testset.image_shape, class_names=testset.class_names,
                   probabilities=probabilities_by_class(scores, testset.class_names), value_range=testset.value_range,
                   feature_names=testset.feature_names, categories=testset.categories)


@dataclass(frozen=True)
class RobustnessPoint:
    strength: float
    accuracy: float


@dataclass(frozen=True)
class Curve:
    """A robustness curve as kept: its points so far, of `planned` strengths (fewer when it was cut short)."""

    points: tuple[RobustnessPoint, ...]
    planned: int

    @property
    def partial(self) -> bool:
        return len(self.points) < self.planned


def robustness(client: ScoringClient, scoring_uri: str, testset: TestSet, kind: str,
               strengths: tuple[float, ...] | None = None, *, seed: int = 0,
               progress: Callable[[int, int], object] | None = None,
               on_evaluation: Callable[[Perturbation, TestSet, Evaluation, float], object] | None = None,
               **kwargs: Any) -> tuple[RobustnessPoint, ...]:
    """Accuracy on the whole test set perturbed by `kind` at each strength (default: the kind's curve,
    sized for the set: `kinds_of`);
    progress(done, total) after each strength, and on_evaluation(perturbation, perturbed set,
    evaluation, seconds) to keep each. Other keyword arguments: those of `score_testset`.

    Raises:
        InvalidPerturbationError, and what `score_testset` raises.
    """
    sized = kinds_of(testset)
    if Perturbation(kind, 0.0).kind not in sized:
        raise InvalidPerturbationError(f"{kind} does not apply to test set {testset.name!r} ({testset.rows_noun}s): "
                                       f"choose one of {', '.join(sized)}")
    chosen = strengths if strengths is not None else sized[kind].curve
    points = []
    for done, strength in enumerate(chosen, start=1):
        perturbation = Perturbation(kind, strength, seed)
        perturbed = perturbation.apply(testset)
        started = time.perf_counter()
        evaluation = evaluate_endpoint(client, scoring_uri, perturbed, **kwargs)
        if on_evaluation:
            on_evaluation(perturbation, perturbed, evaluation, time.perf_counter() - started)
        points.append(RobustnessPoint(float(strength), evaluation.accuracy))
        if progress:
            progress(done, len(chosen))
    return tuple(points)
