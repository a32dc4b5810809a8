"""Why a Healthy deployment answers as it does, from its answers alone: each column's contribution to one table row's
answer (Shapley values against a background sample of the test set) or each patch's to an image's (against a blank
image), and each column's importance on a whole table set (accuracy with that column shuffled). Nothing is kept:
the page caches what it shows."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..data.testset import TestSet
from ..errors import InvalidExplanationError
from ..inspection.evaluation import class_name
from ..inspection.explain import (
    BACKGROUND,
    ORDERINGS,
    SCALES,
    Explanation,
    Importance,
    Scale,
    WeightMaps,
    deleted,
    importance_of,
    orderings,
    output_of,
    patches,
    pixel_rows,
    saturated,
    shapley_rows,
    shapley_values,
    shuffled,
    weight_maps,
)
from ..inspection.whatif import one_hot
from ..runtimes.base import Deployment
from .scoring import score_rows

if TYPE_CHECKING:
    from ..context import ModelDeck

REPEATS = 3  # shuffles per column for the importance
IMPORTANCE_ROWS = 2_000_000  # scored for one importance, at most: a larger set is sampled down to fit


SCORED_PER_REQUEST = 10_000  # rows an explanation sends a request
PATCHES_ACROSS = 7  # an image is explained in about 7 x 7 patches (4 x 4 pixels of a 28 x 28 digit)


def _columns(testset: TestSet) -> tuple[str, ...]:
    if testset.feature_names is None:
        raise InvalidExplanationError(f"test set {testset.name!r} is images: the importance of columns is for a "
                                      "table's rows")
    return testset.feature_names


def explain_row(deck: ModelDeck, deployment: Deployment, testset: TestSet, row: np.ndarray, *,
                class_index: int | None = None, scale: Scale = "probability", background: int = BACKGROUND,
                count: int = ORDERINGS, seed: int = 0) -> Explanation:
    """Each column's contribution to the deployment's output for `row` (one of `testset`'s rows, or an edited one):
    the probability (or log-odds) of `class_index` (default: the class it predicts for the row), against
    `background` random rows of the set in `count` orderings of the columns, all scored at the deployment. For an
    image, each patch's contribution (about PATCHES_ACROSS across) against a blank image of the set's background
    value (every pixel at the low end of its range: the ink taken away).

    Raises:
        InvalidExplanationError: an unknown class or scale, log-odds of labels only, too many rows.
        ScoringError: the endpoint failed.
    """
    if scale not in SCALES:
        raise InvalidExplanationError(f"the scale is one of {', '.join(SCALES)}, not {scale!r}")
    classes = len(testset.class_names)
    if class_index is not None and not 0 <= class_index < classes:
        raise InvalidExplanationError(f"test set {testset.name!r} has classes 0 to {classes - 1}, not {class_index}")
    rng = np.random.default_rng(seed)
    group_of: np.ndarray | None = None
    grid: tuple[int, int] | None = None
    side = 0
    if testset.image_shape is None:
        names = _columns(testset)
        chosen = np.sort(rng.choice(len(testset), size=min(background, len(testset)), replace=False))
        compared = testset.X[chosen].astype(np.float64)
    else:
        side = max(1, min(testset.image_shape) // PATCHES_ACROSS)
        group_of, names, grid = patches(testset.image_shape, side)
        compared = np.full((1, len(row)), testset.value_range[0], dtype=np.float64)
    order = orderings(len(names), count, rng)
    # in float64: the model then computes in it, and a probability near 0 or 1 keeps the digits its log-odds need
    rows = shapley_rows(row.astype(np.float64), compared, order, group_of)
    predicted, probabilities = score_rows(deck, deployment, rows, testset, batch_size=SCORED_PER_REQUEST)
    from_labels = probabilities is None
    if probabilities is None:
        if scale == "log-odds":
            raise InvalidExplanationError("this scoring script returns labels only: there are no log-odds to explain; "
                                          "explain the probability (1 where the class is predicted)")
        probabilities = one_hot(predicted, classes)
    explained = int(predicted[-1]) if class_index is None else class_index  # the last row scored is `row` itself
    contributions, errors, base, output, spread = shapley_values(output_of(probabilities, explained, scale), order,
                                                                 len(compared))
    return Explanation(names, row.copy(), contributions, errors, base, output, explained, scale, len(compared), count,
                       from_labels, saturated(probabilities, explained) if scale == "log-odds" else 0, grid, side,
                       testset.categories, spread, int(predicted[-1]), -(-len(rows) // SCORED_PER_REQUEST))


def class_index_of(testset: TestSet, name: str) -> int:
    """The index of the class called `name` in the set.

    Raises:
        InvalidExplanationError: no such class.
    """
    shown = [class_name(testset.class_names, k) for k in range(len(testset.class_names))]
    if name not in shown:
        raise InvalidExplanationError(f"{name!r} is not a class of test set {testset.name!r}: {', '.join(shown)}")
    return shown.index(name)


def permutation_importance(deck: ModelDeck, deployment: Deployment, testset: TestSet, *, repeats: int = REPEATS,
                           seed: int = 0, progress: Callable[[int, int], object] | None = None) -> Importance:
    """Each column's importance to the deployment on the whole set (a random sample of it when columns x repeats x
    rows would pass IMPORTANCE_ROWS): its fall in accuracy with that column shuffled, `repeats` times.
    progress(columns done, columns).

    Raises:
        InvalidExplanationError: images, or fewer than 2 repeats. ScoringError: the endpoint failed.
    """
    names = _columns(testset)
    if repeats < 2:
        raise InvalidExplanationError(f"the importance takes 2 or more shuffles per column (for its spread), not {repeats}")
    rng = np.random.default_rng(seed)
    fits = max(2, IMPORTANCE_ROWS // (len(names) * repeats + 1))
    used = np.sort(rng.choice(len(testset), size=fits, replace=False)) if len(testset) > fits else np.arange(len(testset))
    X, labels = testset.X[used], testset.y[used]
    predicted, _ = score_rows(deck, deployment, X, testset)
    shuffled_predictions = np.empty((len(names), repeats, len(X)), dtype=np.int64)
    for column in range(len(names)):
        rows = np.concatenate([shuffled(X, column, rng) for _ in range(repeats)])
        shuffled_predictions[column] = score_rows(deck, deployment, rows, testset)[0].reshape(repeats, -1)
        if progress:
            progress(column + 1, len(names))
    return importance_of(names, labels, predicted, shuffled_predictions)


@dataclass(frozen=True)
class Deletion:
    """The deletion test of image explanations on some test images: the mean fall in the predicted class's probability
    with the most salient `fraction` of pixels removed, and with as many random ink pixels removed."""

    images: int
    fraction: float
    top_drop: float
    random_drop: float
    seconds: tuple[float, ...]  # per explanation


def deletion_test(deck: ModelDeck, deployment: Deployment, testset: TestSet, indices: Sequence[int], *,
                  fraction: float = 0.1, seed: int = 0) -> Deletion:
    """Explains each image of `indices` for the class the deployment predicts, removes (sets to the set's background
    value) its most salient `fraction` of pixels and, apart, as many random ink pixels, and scores both.

    Raises:
        InvalidExplanationError: a table, or an endpoint that gives labels only. ScoringError.
    """
    if testset.image_shape is None:
        raise InvalidExplanationError(f"test set {testset.name!r} is a table: the deletion test is for images")
    saliencies, seconds = [], []
    for index in indices:
        started = time.perf_counter()
        explanation = explain_row(deck, deployment, testset, testset.X[index])
        seconds.append(time.perf_counter() - started)
        saliencies.append(explanation.pixel_saliency(testset.image_shape))
    return deletion_of(deck, deployment, testset, indices, saliencies, seconds, fraction=fraction, seed=seed)


def deletion_of(deck: ModelDeck, deployment: Deployment, testset: TestSet, indices: Sequence[int],
                saliencies: Sequence[np.ndarray], seconds: Sequence[float], *, fraction: float = 0.1,
                seed: int = 0) -> Deletion:
    """The deletion test of saliency maps made by any method (one per image of `indices`, for the class the deployment
    predicts): each image scored whole, with its most salient `fraction` of pixels removed (set to the set's
    background value) and with as many random ink pixels removed.

    Raises:
        InvalidExplanationError: an endpoint that gives labels only. ScoringError.
    """
    rng = np.random.default_rng(seed)
    background = testset.value_range[0]
    drops: list[tuple[float, float]] = []
    for index, saliency in zip(indices, saliencies, strict=True):
        row = testset.X[index]
        top, randomly = deleted(row, saliency, fraction, background, rng)
        _, probabilities = score_rows(deck, deployment, np.stack([row, top, randomly]), testset)
        if probabilities is None:
            raise InvalidExplanationError("this scoring script returns labels only: the deletion test measures a fall "
                                          "in probability")
        p = probabilities[:, int(np.argmax(probabilities[0]))]
        drops.append((float(p[0] - p[1]), float(p[0] - p[2])))
    top_drop, random_drop = (float(np.mean(column)) for column in zip(*drops, strict=True))
    return Deletion(len(drops), fraction, top_drop, random_drop, tuple(seconds))


CHECKED_IMAGES = 20  # test images the weight maps are checked on


def class_weight_maps(deck: ModelDeck, deployment: Deployment, testset: TestSet) -> WeightMaps:
    """What the deployment looks for in each class, read through its answers to a blank image and to each single
    pixel inked (one request), and checked on CHECKED_IMAGES test images: exact weights for a linear model (a
    logistic regression); for any other, says it is not linear.

    Raises:
        InvalidExplanationError: a table, or an endpoint that gives labels only. ScoringError.
    """
    if testset.image_shape is None:
        raise InvalidExplanationError(f"test set {testset.name!r} is a table: a linear model's columns are explained "
                                      "exactly on the log-odds scale (explain --scale log-odds)")
    low, high = testset.value_range
    rows = pixel_rows(testset.image_shape[0] * testset.image_shape[1], low, high)
    checked = testset.X[:CHECKED_IMAGES].astype(np.float64)
    _, probabilities = score_rows(deck, deployment, np.vstack([rows, checked]), testset)
    if probabilities is None:
        raise InvalidExplanationError("this scoring script returns labels only: weight maps are read from probabilities")
    return weight_maps(probabilities[:len(rows)], checked, probabilities[len(rows):], low, high)
