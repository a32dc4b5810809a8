"""A table's rows with text columns in the form they are sent in: a pandas split table, a text column's values as
category names (the scoring client sends an array for numbers-only rows)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class NamedRows:
    """Rows of a table with text columns, as they are sent: a pandas split table (`{"columns": [...], "data":
    [[...], ...]}`), a text column's values as category names. Numbers-only rows go as an array instead.

    Attributes:
        columns: the column names, in the rows' order.
        values: (n, columns) numbers, a text column's as indices into its categories.
        categories: (column, its categories) for the text columns.
    """

    columns: tuple[str, ...]
    values: np.ndarray
    categories: tuple[tuple[str, tuple[str, ...]], ...]

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, rows: slice) -> NamedRows:
        return NamedRows(self.columns, self.values[rows], self.categories)

    def split(self) -> dict[str, Any]:
        """The pandas split form: an unknown index (an edit's) as "?" (the endpoint names it as unknown)."""
        rows = self.values.astype(np.float64).astype(object)
        for column, known in self.categories:
            j = self.columns.index(column)
            names = np.array([*known, "?"], dtype=object)
            codes = self.values[:, j]
            valid = np.isfinite(codes) & (codes >= 0) & (codes < len(known)) & (codes == np.round(codes))
            rows[:, j] = names[np.where(valid, np.nan_to_num(codes), len(known)).astype(np.int64)]
        return {"columns": list(self.columns), "data": rows.tolist()}
