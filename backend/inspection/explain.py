"""Explanations of a model's answers, made only of the answers an endpoint gives (the model is never loaded here):
Shapley values of one table row's columns by permutation sampling against a background sample of the test set (of
an image's patches against a blank image), and the importance of each column by permutation on a whole set. Pure
logic: the service scores the rows.

Shapley values by permutation (Strumbelj and Kononenko, 2014): for each ordering of the columns, start from a
background row and switch the columns to the explained row's values one at a time in that order; each column's
contribution is the mean change of the output its switch made. Per ordering the contributions add up to
f(row) - f(background) exactly; averaged over orderings and background rows they estimate the interventional
Shapley values, with a standard error from the spread between orderings. Each ordering is drawn with its reverse
(antithetic pairs: a smaller error for the same cost). For a model whose output is a sum of one function per column
(a linear model's log-odds) every ordering gives the same contributions: the values are exact and the error 0 (but
for the rounding of the probabilities the endpoint sends)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..data.testset import Categories, category_name
from ..errors import InvalidExplanationError

Scale = Literal["probability", "log-odds"]
SCALES: tuple[Scale, ...] = ("probability", "log-odds")
BACKGROUND = 30  # rows of the set the explained row is compared with
ORDERINGS = 10  # orderings of the columns (5 drawn, each with its reverse)
MAX_CELLS = 5_000_000  # values scored for one explanation, at most (40 MB of float64; 9,300 rows of 30 by default)
# Every ordering agrees when no standard error passes this share of the largest contribution: what spread is left
# is the endpoint's rounding.
AGREEING = 0.01
TINY = float(np.finfo(np.float64).tiny)  # a probability of exactly 0 (or 1) is taken as this far from it: finite


def orderings(columns: int, count: int, rng: np.random.Generator) -> np.ndarray:
    """`count` (even) orderings of `columns` columns: count / 2 random ones, each followed by its reverse."""
    if count < 2 or count % 2:
        raise InvalidExplanationError(f"orderings come in pairs: 2, 4, 6 ..., not {count}")
    drawn = np.array([rng.permutation(columns) for _ in range(count // 2)])
    return np.stack([drawn, drawn[:, ::-1]], axis=1).reshape(count, columns)


def shapley_rows(row: np.ndarray, background: np.ndarray, order: np.ndarray,
                 group_of: np.ndarray | None = None) -> np.ndarray:
    """The rows to score: for each ordering, each background row with its first k players in that order switched
    to `row`'s values, k = 0 .. players. A player is a column, or with `group_of` (the player of each column) a
    group of columns switched together (an image's patch). Shape (orderings x background x (players + 1), columns).

    Raises:
        InvalidExplanationError: more than MAX_CELLS values.
    """
    count, players = order.shape
    columns = len(row)
    total = count * len(background) * (players + 1)
    if total * columns > MAX_CELLS:
        raise InvalidExplanationError(f"explaining a row of {columns:,} values against {len(background)} background "
                                      f"rows in {count} orderings scores {total:,} rows of {columns:,} values; the "
                                      f"most is {MAX_CELLS:,} values: take fewer background rows or orderings")
    rank = np.argsort(order, axis=1)  # rank[p, g]: the step at which ordering p switches player g
    if group_of is not None:
        rank = rank[:, group_of]  # each column switches with its player
    switched = rank[:, None, :] < np.arange(players + 1)[None, :, None]  # [p, k, j]: column j switched by step k
    rows = np.where(switched[:, None, :, :], row[None, None, None, :], background[None, :, None, :])
    return rows.reshape(-1, columns)


def patches(image_shape: tuple[int, int], side: int) -> tuple[np.ndarray, tuple[str, ...], tuple[int, int]]:
    """An image cut into squares of `side` pixels (those at the right and bottom edges smaller): (the patch of each
    pixel, in row-major order; each patch's name, "rows 0-3, columns 4-7"; the grid of patches, rows x columns)."""
    height, width = image_shape
    rows, cols = -(-height // side), -(-width // side)
    y, x = np.divmod(np.arange(height * width), width)
    group_of = (y // side) * cols + x // side
    names = tuple(f"rows {r * side}-{min(height, (r + 1) * side) - 1}, columns {c * side}-{min(width, (c + 1) * side) - 1}"
                  for r in range(rows) for c in range(cols))
    return group_of, names, (rows, cols)


def output_of(probabilities: np.ndarray, class_index: int, scale: Scale) -> np.ndarray:
    """What is explained: one class's probability, or its log-odds (log p - log of the others' sum, which keeps
    the precision 1 - p would lose near 1)."""
    p = probabilities[:, class_index].astype(np.float64)
    if scale == "probability":
        return p
    others = probabilities.astype(np.float64).sum(axis=1) - p
    return np.log(np.maximum(p, TINY)) - np.log(np.maximum(others, TINY))


def saturated(probabilities: np.ndarray, class_index: int) -> int:
    """How many rows' probability of the class is exactly 0 or 1: the endpoint's precision ran out there, and their
    log-odds are a bound, not a value."""
    p = probabilities[:, class_index]
    return int(np.count_nonzero((p == 0) | (p == 1)))


@dataclass(frozen=True)
class Explanation:
    """Each column's contribution to one class's output for one row.

    Attributes:
        feature_names, values: the columns and the row's values of them; for an image, its patches (the players)
            and its pixels.
        contributions: per column, its Shapley value on `scale` (probability: a share, 0.12 is 12 points).
        errors: per column, the standard error of that estimate (about 0 when `exact`).
        base: the mean output over the background rows; output: the row's. base + sum(contributions) = output.
        class_index: the class explained (an index into the set's classes).
        scale: "probability" or "log-odds".
        background, orderings: how many background rows and column orderings the estimate took.
        from_labels: the endpoint gave labels only: the output is 1 where the class is predicted, else 0.
        saturated: on the log-odds scale, how many scored rows had a probability of exactly 0 or 1.
        patch_grid: for an image, its patches as rows x columns (contributions in row-major order); None for a row.
        patch_side: for an image, the side of a patch in pixels.
        categories: a table's text columns (their `values` are indices into these).
        spread: the largest standard deviation of a column's contribution over single orderings (an ordering and its
            reverse can agree where single orderings do not: two columns that matter, say).
        predicted: the class the deployment predicts for the row (an index into the set's classes; -1 unknown).
        requests: the scoring requests it took.
    """

    feature_names: tuple[str, ...]
    values: np.ndarray
    contributions: np.ndarray
    errors: np.ndarray
    base: float
    output: float
    class_index: int
    scale: Scale
    background: int
    orderings: int
    from_labels: bool = False
    saturated: int = 0
    patch_grid: tuple[int, int] | None = None
    patch_side: int = 0
    categories: Categories = ()
    spread: float = 0.0
    predicted: int = -1
    requests: int = 0

    def pixel_saliency(self, image_shape: tuple[int, int]) -> np.ndarray:
        """An image's explanation per pixel (image shape): its patch's contribution shared evenly among the patch's
        pixels, so the pixels add up to what the patches do."""
        group_of = patches(image_shape, self.patch_side)[0]
        sizes = np.bincount(group_of, minlength=len(self.contributions))
        return (self.contributions[group_of] / sizes[group_of]).reshape(image_shape)

    def value_text(self, column: int) -> str:
        """The row's value of `column` for people: "14.1", or a text column's category."""
        known = dict(self.categories).get(self.feature_names[column])
        value = float(self.values[column])
        return f"{value:.4g}" if known is None else category_name(known, value)

    @property
    def exact(self) -> bool:
        """Every ordering gave the same contributions (within AGREEING) and no output was cut off at the endpoint's
        precision: the output is a sum of one function per column, and these are its exact Shapley values."""
        largest = float(np.abs(self.contributions).max(initial=0.0))
        return (not self.saturated and self.spread <= AGREEING * largest
                and bool(np.all(self.errors <= AGREEING * largest)))

    def precision_words(self) -> str:
        """How sure the estimate is, for people: "Every order agrees: these are exact.", "Each value is within
        ±1.2 points (two standard errors at most, 9% of the largest part)." (log-odds: no unit), and "Rough: ..."
        when that margin reaches half the largest part."""
        if self.exact:
            return "Every order agrees: these are exact."
        largest = float(np.abs(self.contributions).max(initial=0.0))
        margin = 2 * float(self.errors.max(initial=0.0))
        shown = f"±{margin * 100:.3g} points" if self.scale == "probability" else f"±{margin:.3g}"
        share = f", {margin / largest:.0%} of the largest part" if largest > 0 else ""
        said = f"Each value is within {shown} (two standard errors at most{share})."
        return said if margin < largest / 2 else f"Rough: {said[0].lower()}{said[1:-1]}: trust the strongest parts only."

    def ranked(self, top: int | None = None) -> np.ndarray:
        """Column indices by the size of their contribution, largest first (the first `top`)."""
        return np.argsort(-np.abs(self.contributions), kind="stable")[:top]


def shapley_values(outputs: np.ndarray, order: np.ndarray, background: int) -> tuple[np.ndarray, np.ndarray, float,
                                                                                      float, float]:
    """(contributions, standard errors, base, output, spread) per player from the outputs of `shapley_rows`' rows, in
    its order; `spread` is the largest standard deviation of a player's contribution over single orderings (0 when
    every ordering gave the same: the model adds up one term per player)."""
    count, columns = order.shape
    steps = outputs.reshape(count, background, columns + 1).mean(axis=1)  # per ordering and step, over background
    changes = np.diff(steps, axis=1)  # changes[p, k]: what step k + 1 of ordering p (column order[p, k]) did
    per_ordering = np.empty((count, columns))
    per_ordering[np.arange(count)[:, None], order] = changes
    pairs = per_ordering.reshape(count // 2, 2, columns).mean(axis=1)  # an ordering and its reverse: one draw
    errors = pairs.std(axis=0, ddof=1) / np.sqrt(len(pairs)) if len(pairs) > 1 else np.zeros(columns)
    return (per_ordering.mean(axis=0), errors, float(steps[:, 0].mean()), float(steps[:, -1].mean()),
            float(per_ordering.std(axis=0).max(initial=0.0)))


@dataclass(frozen=True)
class Importance:
    """How much each column matters to a deployment on a set: its accuracy when that column's values are shuffled
    across the rows, against its accuracy on the set as it is.

    Attributes:
        feature_names: the columns.
        accuracy: on the set as it is.
        drops: per column, the mean fall in accuracy over the repeats (negative: shuffling helped, by chance).
        spreads: per column, the standard deviation of that fall over the repeats.
        rows: how many rows of the set were scored (all of them, or a random sample of a large set).
        repeats: shuffles per column.
    """

    feature_names: tuple[str, ...]
    accuracy: float
    drops: np.ndarray
    spreads: np.ndarray
    rows: int
    repeats: int

    def ranked(self, top: int | None = None) -> np.ndarray:
        """Column indices by their drop, largest first (the first `top`)."""
        return np.argsort(-self.drops, kind="stable")[:top]


def shuffled(X: np.ndarray, column: int, rng: np.random.Generator) -> np.ndarray:
    """`X` with one column's values shuffled across its rows (the rest as they are)."""
    copy = X.copy()
    copy[:, column] = rng.permutation(copy[:, column])
    return copy


def importance_of(feature_names: tuple[str, ...], labels: np.ndarray, predicted: np.ndarray,
                  shuffled_predictions: np.ndarray) -> Importance:
    """The importance from the predictions on the set as it is and with each column shuffled (columns x repeats x
    rows, label indices)."""
    accuracy = float(np.mean(predicted == labels))
    falls = accuracy - (shuffled_predictions == labels[None, None, :]).mean(axis=2)
    repeats = shuffled_predictions.shape[1]
    return Importance(feature_names, accuracy, falls.mean(axis=1), falls.std(axis=1, ddof=1) if repeats > 1 else
                      np.zeros(len(feature_names)), len(labels), repeats)


def deleted(row: np.ndarray, saliency: np.ndarray, fraction: float, background: float,
            rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The deletion test's two images: `row` with its most salient `fraction` of pixels set to `background`, and with
    as many of its ink pixels (those not at `background`) chosen at random set to it. A saliency that finds what the
    model uses lowers its answer much more with the first than the second."""
    flat = saliency.ravel()
    count = max(1, int(round(fraction * row.size)))
    top = row.copy()
    top[np.argsort(-flat, kind="stable")[:count]] = background
    ink = np.flatnonzero(row != background)
    chosen = rng.choice(ink, size=min(count, len(ink)), replace=False) if len(ink) else np.empty(0, dtype=np.int64)
    randomly = row.copy()
    randomly[chosen] = background
    return top, randomly


LINEAR_TOLERANCE = 1e-3  # of the centred log-odds' spread: a model this close to linear on the test images is linear


def centred_log_odds(probabilities: np.ndarray) -> np.ndarray:
    """log p_c minus the mean over classes of log p_k, per row: for a linear softmax model (a logistic regression),
    an affine function of the pixels, whose slope per class is that class's weights minus the mean weights."""
    logs = np.log(np.maximum(probabilities.astype(np.float64), TINY))
    return logs - logs.mean(axis=1, keepdims=True)


def pixel_rows(pixels: int, low: float, high: float) -> np.ndarray:
    """A blank image (all `low`), then each image with one pixel at `high`: the rows that read a linear model's
    weights through its answers."""
    rows = np.full((pixels + 1, pixels), low, dtype=np.float64)
    rows[np.arange(1, pixels + 1), np.arange(pixels)] = high
    return rows


@dataclass(frozen=True)
class WeightMaps:
    """What a model looks for in each class, read through its answers: per class and pixel, how much ink there
    raises that class's centred log-odds (its weight minus the mean weight, for a linear model).

    Attributes:
        maps: classes x pixels.
        linear: the answers to real test images match the maps (within LINEAR_TOLERANCE): these are its weights.
        error: the largest mismatch on those images, relative to the spread of their centred log-odds.
    """

    maps: np.ndarray
    linear: bool
    error: float

    def mismatch_words(self) -> str:
        """How far the maps are from the model's answers to real images, for people: "by up to 12% of the spread of
        its answers", or "by up to 6.9 times the spread of its answers" (far from linear)."""
        size = f"{self.error:.0%}" if self.error < 1 else f"{self.error:.1f} times"
        return f"by up to {size} {'of ' if self.error < 1 else ''}the spread of its answers"


def weight_maps(blank_and_pixels: np.ndarray, checked: np.ndarray, checked_answers: np.ndarray, low: float,
                high: float) -> WeightMaps:
    """The maps from the answers to `pixel_rows` (probabilities), checked on images `checked` (rows) and the answers
    to them: an affine model gives them back exactly."""
    centred = centred_log_odds(blank_and_pixels)
    base, per_pixel = centred[0], (centred[1:] - centred[0]) / (high - low)  # pixels x classes
    predicted = base + (checked.astype(np.float64) - low) @ per_pixel
    actual = centred_log_odds(checked_answers)
    spread = float(np.ptp(actual)) or 1.0
    error = float(np.abs(predicted - actual).max()) / spread
    return WeightMaps(per_pixel.T.copy(), error <= LINEAR_TOLERANCE, error)
