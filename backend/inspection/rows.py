"""A table's test rows for people: what the model said of each (and the true label, the confidence) beside
its values, the wrong ones marked. What the image grids are to images."""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from ..data.testset import Categories, category_name
from .evaluation import class_name

WRONG_BACKGROUND = "#fde0dc"  # the red of a misclassified row (a misclassified image's tile is red too)
WRONG_TEXT = "#b3261e"
RIGHT_BACKGROUND = "#dcf1e0"  # the green of a right answer where two are compared
RIGHT_TEXT = "#1b6e2d"


@dataclass(frozen=True)
class RowTable:
    """Rows of a table test set as scored.

    Attributes:
        columns: "row", "prediction" (or what each compared answer is headed), "true label", ("confidence",) then
            the feature names.
        cells: one tuple per row, in `columns` order: the row's index, the names, the confidence, the values.
        wrong: per row, whether the prediction is wrong (all False where answers are compared: see `verdicts`).
        verdicts: where two answers are compared, per answer column (its heading) whether each row's answer is
            right: those cells are marked green or red, not the row.
    """

    columns: tuple[str, ...]
    cells: tuple[tuple[int | str | float, ...], ...]
    wrong: tuple[bool, ...]
    verdicts: tuple[tuple[str, tuple[bool, ...]], ...] = ()

    @property
    def right(self) -> int:
        return len(self.wrong) - sum(self.wrong)


def row_table(X: np.ndarray, feature_names: Sequence[str], indices: np.ndarray, labels: np.ndarray,
              predictions: np.ndarray, class_names: tuple[str, ...], confidence: np.ndarray | None = None,
              *, answers: Sequence[tuple[str, np.ndarray]] = (), heading: str = "prediction",
              categories: Categories = ()) -> RowTable:
    """Rows `indices` of a set (X holds those rows, in that order) with the prediction (under `heading`), the true
    label and the confidence when known; `answers` puts other predictions (by heading) beside the first, as
    Compare does: then each answer's cell is marked right or wrong, not the row. A text column (in `categories`)
    shows its category."""
    columns = ("row", heading, *(heading for heading, _ in answers), "true label",
               *(("confidence",) if confidence is not None else ()), *feature_names)
    texts = dict(categories)
    known = [texts.get(name) for name in feature_names]
    cells = []
    for k, index in enumerate(indices):
        other = tuple(class_name(class_names, int(said[k])) for _, said in answers)
        sure = (float(confidence[k]),) if confidence is not None else ()
        cells.append((int(index), class_name(class_names, int(predictions[k])), *other,
                      class_name(class_names, int(labels[k])), *sure,
                      *(float(v) if names is None else category_name(names, v) for v, names in zip(X[k], known, strict=True))))
    if answers:
        verdicts = tuple((name, tuple(bool(p == t) for p, t in zip(said, labels, strict=True)))
                         for name, said in ((heading, predictions), *answers))
        return RowTable(columns, tuple(cells), (False,) * len(cells), verdicts)
    wrong = tuple(bool(p != t) for p, t in zip(predictions, labels, strict=True))
    return RowTable(columns, tuple(cells), wrong)


def cell_style(right: bool) -> str:
    """A compared answer's cell: green where right, red where wrong (CSS)."""
    return (f"background-color: {RIGHT_BACKGROUND}; color: {RIGHT_TEXT}" if right else
            f"background-color: {WRONG_BACKGROUND}; color: {WRONG_TEXT}")


def rows_html(table: RowTable) -> str:
    """The table as HTML (self-contained: inline styles), wrong rows red; wide tables scroll sideways."""
    head = "".join(f"<th>{html.escape(column)}</th>" for column in table.columns)
    body = []
    marked = {table.columns.index(name): rights for name, rights in table.verdicts}
    for k, (cells, wrong) in enumerate(zip(table.cells, table.wrong, strict=True)):
        style = f" style='background:{WRONG_BACKGROUND};color:{WRONG_TEXT}'" if wrong else ""
        tds = "".join((f"<td style='{cell_style(marked[j][k])}'>" if j in marked else "<td>")
                      + html.escape(_text(cell)) + "</td>" for j, cell in enumerate(cells))
        body.append(f"<tr{style}>{tds}</tr>")
    return (f"<div style='overflow-x:auto'><table class='grid rows'><tr>{head}</tr>{''.join(body)}</table></div>")


def _text(cell: int | str | float) -> str:
    if isinstance(cell, float):
        return f"{cell:.4g}"
    return str(cell)
