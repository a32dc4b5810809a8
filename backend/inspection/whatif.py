"""What-if for a table's rows: each column's control (its kind and range, read from the test set), the rows
that trace how the probability depends on one column (ICE for the edited row, partial dependence over a sample
of the set), and the nearest row the model puts in another class. Pure logic: the service scores the rows."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from ..errors import InvalidWhatIfError
from .evaluation import class_name

POINTS = 25  # values of the column a dependence curve is drawn at
AVERAGED_ROWS = 50  # rows of the set the partial dependence averages over
WIDENED = 0.25  # of the set's span, on each side: values a little past the set's are worth trying too
CHANGES_SHOWN = 8  # columns a counterfactual lists, those that differ most first

MAX_GRID_CATEGORIES = 50  # a text column's categories a dependence curve is drawn at (the first, in order)

Kind = Literal["number", "whole", "binary", "category"]


@dataclass(frozen=True)
class Control:
    """How one column can be edited.

    Attributes:
        name: the column's name.
        kind: "binary" (only 0 and 1 in the set), "whole" (whole numbers only), "number", or "category" (a text
            column: its values are indices into `categories`).
        low, high: the editor's range: the set's widened by a quarter of its span each side, not below zero
            for a column that never is (0-1 for binary; every category's index for a category).
        seen_low, seen_high: the set's lowest and highest value.
        median: the set's median (a category's: its most common one).
        spread: the set's standard deviation (1 for a constant column: distances stay finite; 1 for a category,
            so another category is one standard deviation away).
        step: the editor's step (1 for whole numbers; about a hundredth of the set's span otherwise).
        categories: a text column's categories.
    """

    name: str
    kind: Kind
    low: float
    high: float
    seen_low: float
    seen_high: float
    median: float
    spread: float
    step: float
    categories: tuple[str, ...] = ()

    @property
    def decimals(self) -> int:
        """Decimals the step needs (0 for 1, 2 for 0.05)."""
        return max(0, -math.floor(math.log10(self.step))) if self.step < 1 else 0

    def clipped(self, value: float) -> float:
        """`value` within the editor's range (a row of the set always is)."""
        return min(self.high, max(self.low, value))


def controls(X: np.ndarray, feature_names: tuple[str, ...],
             categories: Mapping[str, tuple[str, ...]] | None = None) -> tuple[Control, ...]:
    """A control per column of a table's rows `X`, in order; `categories` names the text columns (X holds indices
    into their categories).

    Raises:
        InvalidWhatIfError: no rows, or not one name per column.
    """
    if X.ndim != 2 or not len(X) or X.shape[1] != len(feature_names):
        raise InvalidWhatIfError(f"a what-if needs rows with one value per named column ({len(feature_names)}), "
                                 f"not an array of shape {X.shape}")
    columns = X.astype(np.float64)
    lows, highs = columns.min(axis=0), columns.max(axis=0)
    medians, spreads = np.median(columns, axis=0), columns.std(axis=0)
    whole = np.all(columns == np.round(columns), axis=0)
    texts = categories or {}
    made = []
    for j, name in enumerate(feature_names):
        low, high = float(lows[j]), float(highs[j])
        if name in texts:
            known = texts[name]
            made.append(Control(name, "category", 0.0, float(len(known) - 1), low, high, _mode(columns[:, j]), 1.0,
                                1.0, known))
            continue
        spread = float(spreads[j]) or 1.0
        if whole[j] and low >= 0 and high <= 1:
            made.append(Control(name, "binary", 0.0, 1.0, low, high, float(medians[j]), spread, 1.0))
            continue
        span = high - low or max(abs(low), 1.0)  # a constant column: some room around its value
        step = _nice(span / 100) if not whole[j] else 1.0
        edit_low, edit_high = low - WIDENED * span, high + WIDENED * span
        if low >= 0:  # a count, an area, a price: not below zero
            edit_low = max(edit_low, 0.0)
        if whole[j]:
            edit_low, edit_high = float(math.floor(edit_low)), float(math.ceil(edit_high))
        else:  # on the step's grid, so the slider's ends are round numbers
            edit_low, edit_high = math.floor(edit_low / step) * step, math.ceil(edit_high / step) * step
        made.append(Control(name, "whole" if whole[j] else "number", round(edit_low, 12), round(edit_high, 12),
                            low, high, float(medians[j]), spread, step))
    return tuple(made)


def _nice(rough: float) -> float:
    """The 1, 2 or 5 times a power of ten at or below `rough` (0.0734 -> 0.05)."""
    power = 10.0 ** math.floor(math.log10(rough))
    return next(m * power for m in (5, 2, 1) if m * power <= rough)


def _mode(column: np.ndarray) -> float:
    """The most common value (the lowest of equals)."""
    values, counts = np.unique(column, return_counts=True)
    return float(values[int(np.argmax(counts))])


def median_row(X: np.ndarray, the_controls: tuple[Control, ...] = ()) -> np.ndarray:
    """Each column's median (a text column's most common category): a typical row that may not be in the set."""
    row = np.median(X.astype(np.float64), axis=0)
    for j, control in enumerate(the_controls):
        if control.kind == "category":
            row[j] = control.median
    return row.astype(X.dtype)


def grid_of(control: Control, points: int = POINTS) -> np.ndarray:
    """The values a dependence curve is drawn at: `points` across the editor's range (every whole number
    when there are no more than that; 0 and 1 for a binary column; each category, up to MAX_GRID_CATEGORIES)."""
    if control.kind == "category":
        return np.arange(min(len(control.categories), MAX_GRID_CATEGORIES), dtype=np.float64)
    if control.kind == "binary":
        return np.array([0.0, 1.0])
    if control.kind == "whole" and control.high - control.low + 1 <= points:
        return np.arange(control.low, control.high + 1)
    grid = np.linspace(control.low, control.high, points)
    return np.unique(np.round(grid)) if control.kind == "whole" else grid


def dependence_rows(row: np.ndarray, averaged: np.ndarray, column: int, grid: np.ndarray) -> np.ndarray:
    """The rows to score for a dependence curve: `row` with `column` at each grid value (its ICE), then each
    row of `averaged` likewise (their mean is the partial dependence), grid value fastest."""
    base = np.vstack([row[None, :], averaged])
    rows = np.repeat(base, len(grid), axis=0)
    rows[:, column] = np.tile(grid, len(base))
    return rows.astype(row.dtype)


@dataclass(frozen=True)
class Dependence:
    """How the model's answer for a row moves with one column.

    Attributes:
        feature: the column's name.
        value: the row's value of it.
        grid: the values the column was set to.
        row: grid x classes: the row's probabilities at each value (its ICE curve).
        average: grid x classes: the mean over `averaged` rows of the set (the partial dependence).
        averaged: how many rows of the set `average` is over.
        class_names: the classes, the columns of `row` and `average`.
        from_labels: the endpoint gave labels only: `row` is 1 for the predicted class and `average` the
            share of rows predicted as each class.
        categories: a text column's categories (`grid` and `value` are indices into them).
    """

    feature: str
    value: float
    grid: np.ndarray
    row: np.ndarray
    average: np.ndarray
    averaged: int
    class_names: tuple[str, ...]
    from_labels: bool = False
    categories: tuple[str, ...] = ()


def dependence_of(feature: str, value: float, grid: np.ndarray, answers: np.ndarray, class_names: tuple[str, ...],
                  *, from_labels: bool = False, categories: tuple[str, ...] = ()) -> Dependence:
    """The curves from the answers (rows x classes, in `dependence_rows`' order) to those rows."""
    per_row = answers.reshape(-1, len(grid), answers.shape[1])
    return Dependence(feature, float(value), grid, per_row[0], per_row[1:].mean(axis=0) if len(per_row) > 1 else
                      per_row[0], len(per_row) - 1, class_names, from_labels, categories)


def one_hot(indices: np.ndarray, classes: int) -> np.ndarray:
    """Label indices as rows of 0 and 1 (an answer of labels only, as probabilities would be)."""
    hot = np.zeros((len(indices), classes))
    hot[np.arange(len(indices)), indices] = 1.0
    return hot


@dataclass(frozen=True)
class Change:
    """A column a counterfactual changes: its value in the edited row and in the other, and the difference
    in the column's standard deviations (1 for another category of a text column: `category`)."""

    name: str
    this: float
    other: float
    spreads: float
    category: bool = False


@dataclass(frozen=True)
class Counterfactual:
    """The test row nearest to an edited one that the model puts in another class.

    Attributes:
        index: its row in the set.
        predicted: what the model says of it; label: its true label (indices into the set's classes).
        distance: root mean square of the columns' differences, each in its standard deviations.
        changes: the columns that differ most (at most CHANGES_SHOWN), largest difference first.
        differing: how many columns differ at all.
    """

    index: int
    predicted: int
    label: int
    distance: float
    changes: tuple[Change, ...]
    differing: int

    def describe(self, class_names: tuple[str, ...]) -> str:
        """ "row 17, predicted malignant (true label malignant), 0.84 standard deviations away" for people."""
        return (f"row {self.index}, predicted {class_name(class_names, self.predicted)} (true label "
                f"{class_name(class_names, self.label)}), {self.distance:.2f} standard deviations away")


def nearest_other(X: np.ndarray, predictions: np.ndarray, labels: np.ndarray, row: np.ndarray, predicted: int,
                  the_controls: tuple[Control, ...]) -> Counterfactual | None:
    """The row of `X` nearest to `row` (in each column's standard deviations; 1 for another category) that the
    model predicts as
    another class than `predicted`; None when it predicts every row as that class."""
    others = np.flatnonzero(predictions != predicted)
    if not len(others):
        return None
    spreads = np.array([c.spread for c in the_controls])
    scaled = (X[others].astype(np.float64) - row.astype(np.float64)) / spreads
    texts = [j for j, c in enumerate(the_controls) if c.kind == "category"]
    scaled[:, texts] = (scaled[:, texts] != 0).astype(np.float64)  # another category: one standard deviation
    distances = np.sqrt(np.mean(scaled**2, axis=1))
    best = int(np.argmin(distances))  # the first of equals: the lowest row
    index = int(others[best])
    differences = scaled[best]
    order = np.argsort(-np.abs(differences), kind="stable")
    changes = tuple(Change(the_controls[j].name, float(row[j]), float(X[index, j]), float(differences[j]),
                           the_controls[j].kind == "category")
                    for j in order[:CHANGES_SHOWN] if differences[j] != 0)
    return Counterfactual(index, int(predictions[index]), int(labels[index]), float(distances[best]), changes,
                          int(np.count_nonzero(differences)))
