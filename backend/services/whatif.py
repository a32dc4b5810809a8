"""What-if on a table's rows at a Healthy deployment: start from a test row or the median row, change some
columns, and see what the deployment says, how its answer moves with one column, and the nearest test row it
puts in another class. Everything is scored through the endpoint; nothing is kept (a what-if is a question,
not a result)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..data.testset import TestSet
from ..errors import InvalidWhatIfError
from ..inspection.evaluation import score_testset
from ..inspection.whatif import (
    AVERAGED_ROWS,
    POINTS,
    Control,
    Counterfactual,
    Dependence,
    controls,
    dependence_of,
    dependence_rows,
    grid_of,
    median_row,
    nearest_other,
    one_hot,
)
from ..runtimes.base import Deployment
from .reaching import reach_of
from .scoring import score_rows

if TYPE_CHECKING:
    from ..context import ModelDeck


@dataclass(frozen=True)
class RowPrediction:
    """What the deployment said of one row: the predicted class's index into the set's classes and the
    probabilities per class (None: labels only)."""

    row: np.ndarray
    predicted: int
    probabilities: np.ndarray | None

    @property
    def confidence(self) -> float | None:
        return None if self.probabilities is None else float(self.probabilities[self.predicted])


def controls_of(testset: TestSet) -> tuple[Control, ...]:
    """A control per column of a table test set (kind, range, median, spread), in its column order.

    Raises:
        InvalidWhatIfError: the set is images.
    """
    if testset.feature_names is None:
        raise InvalidWhatIfError(f"test set {testset.name!r} is images: a what-if edits a table's rows")
    return controls(testset.X, testset.feature_names, testset.categories_of())


def start_row(testset: TestSet, index: int | None) -> np.ndarray:
    """Row `index` of the set, or its median row when None (a copy: edits do not touch the set).

    Raises:
        InvalidWhatIfError: images, or no such row.
    """
    the_controls = controls_of(testset)  # refuses images
    if index is None:
        return median_row(testset.X, the_controls)
    if not 0 <= index < len(testset):
        raise InvalidWhatIfError(f"test set {testset.name!r} has rows 0 to {len(testset) - 1}, not {index}")
    return testset.X[index].copy()


def edited(testset: TestSet, row: np.ndarray, changes: Mapping[str, float | str]) -> np.ndarray:
    """`row` with the named columns set to the values given (any number: the editor's range is a guide; a text
    column's category by its name or its index).

    Raises:
        InvalidWhatIfError: a name that is not one of the set's columns, a value that is not a finite number, or
            not one of a text column's categories.
    """
    names = testset.feature_names or ()
    texts = testset.categories_of()
    changed = row.copy()
    for name, given in changes.items():
        if name not in names:
            raise InvalidWhatIfError(f"{name!r} is not a column of test set {testset.name!r}; its columns are "
                                     + ", ".join(names[:6]) + (", ..." if len(names) > 6 else ""))
        value = _category_index(name, given, texts[name]) if name in texts else given
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                raise InvalidWhatIfError(f"{name!r} takes numbers, not {value!r}") from None
        if not np.isfinite(value) or abs(value) > np.finfo(np.float32).max:
            raise InvalidWhatIfError(f"{name!r} must be a finite number, not {value!r}")
        changed[names.index(name)] = value
    return changed


def _category_index(name: str, given: float | str, known: tuple[str, ...]) -> float:
    if isinstance(given, str) and given in known:
        return float(known.index(given))
    if not isinstance(given, str) and float(given).is_integer() and 0 <= given < len(known):
        return float(given)
    shown = ", ".join(map(repr, known[:8])) + (", ..." if len(known) > 8 else "")
    raise InvalidWhatIfError(f"{name!r} takes one of its categories ({shown}), not {given!r}")


def predict_row(deck: ModelDeck, deployment: Deployment, testset: TestSet, row: np.ndarray) -> RowPrediction:
    """What the deployment says of `row` (a row of `testset`'s columns, in its order).

    Raises:
        ScoringError: the endpoint failed or answered something else than a class of the set.
    """
    predicted, probabilities = score_rows(deck, deployment, row[None, :], testset)
    return RowPrediction(row, int(predicted[0]), None if probabilities is None else probabilities[0])


def dependence(deck: ModelDeck, deployment: Deployment, testset: TestSet, row: np.ndarray, feature: str, *,
               points: int = POINTS, averaged: int = AVERAGED_ROWS, seed: int = 0) -> Dependence:
    """How the deployment's answer for `row` moves as `feature` goes across its range (ICE), beside the mean
    over `averaged` random rows of the set (partial dependence, the same rows for a `seed`): one request of
    (1 + averaged) x points rows.

    Raises:
        InvalidWhatIfError: not a column of the set. ScoringError: as `predict_row`.
    """
    the_controls = controls_of(testset)
    names = [c.name for c in the_controls]
    if feature not in names:
        raise InvalidWhatIfError(f"{feature!r} is not a column of test set {testset.name!r}")
    column = names.index(feature)
    grid = grid_of(the_controls[column], points)
    chosen = np.random.default_rng(seed).choice(len(testset), size=min(averaged, len(testset)), replace=False)
    rows = dependence_rows(row, testset.X[np.sort(chosen)], column, grid)
    predicted, probabilities = score_rows(deck, deployment, rows, testset)
    known = the_controls[column].categories
    if probabilities is None:  # labels only: the share of rows predicted as each class
        return dependence_of(feature, float(row[column]), grid, one_hot(predicted, len(testset.class_names)),
                             testset.class_names, from_labels=True, categories=known)
    return dependence_of(feature, float(row[column]), grid, probabilities, testset.class_names, categories=known)


def set_predictions(deck: ModelDeck, deployment: Deployment, testset: TestSet) -> np.ndarray:
    """What the deployment predicts for every row of the set (label indices), not kept: the counterfactual's
    candidates.

    Raises:
        ScoringError: as `predict_row`.
    """
    reach = reach_of(deck, deployment)
    predicted, _ = score_testset(deck.client, reach.uri, testset, use_binary=reach.binary, key=reach.key)
    return predicted


def counterfactual(testset: TestSet, predictions: np.ndarray, row: np.ndarray,
                   predicted: int) -> Counterfactual | None:
    """The test row nearest to `row` that the deployment (whose `predictions` of the set these are, from
    `set_predictions`) puts in another class than `predicted`; None when it predicts every row as that one.

    Raises:
        InvalidWhatIfError: images, or predictions of another set.
    """
    if len(predictions) != len(testset):
        raise InvalidWhatIfError(f"{len(predictions)} predictions for the {len(testset)} rows of {testset.name!r}")
    return nearest_other(testset.X, predictions, testset.y, row, predicted, controls_of(testset))
