"""The two types of the wing: a loaded `TestSet`, and a `DatasetInfo` (a set as the catalogue knows it)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from .named_rows import NamedRows

UNIT_RANGE = (0.0, 1.0)
EIGHT_BIT = np.arange(256, dtype=np.float32) / np.float32(255.0)  # each byte as the float32 a loader makes of it

Categories = tuple[tuple[str, tuple[str, ...]], ...]
"""(column, its categories) for a table's text columns: such a column's values in X are indices into its categories
(the form a model's Signature gives them in too)."""


@dataclass(frozen=True)
class TestSet:
    """Rows of floats with their labels: images (a row is an image's pixels, in the set's own value range)
    or a table (a row is one record's named columns).

    Attributes:
        name: short name (the one `load_dataset` takes).
        X: float32 array (n, features): height*width pixels within `value_range`, or the table's columns.
        y: int64 array (n,).
        image_shape: (height, width) to draw a row as an image; None for a table.
        class_names: display name of each label.
        source: where the data came from.
        value_range: (low, high) the values are on: black is low, white is high ([0, 1] for MNIST's form); a
            table's lowest and highest value over all its columns.
        feature_names: a table's column names, in X's order; None for images.
        categories: a table's text columns: X holds each value's index into its column's categories.
    """

    __test__ = False  # not a pytest test class

    name: str
    X: np.ndarray
    y: np.ndarray
    image_shape: tuple[int, int] | None
    class_names: tuple[str, ...]
    source: str
    value_range: tuple[float, float] = UNIT_RANGE
    feature_names: tuple[str, ...] | None = None
    categories: Categories = ()

    def __len__(self) -> int:
        return len(self.y)

    def categories_of(self) -> dict[str, tuple[str, ...]]:
        """{column: its categories} for the text columns ({} when every column holds numbers)."""
        return dict(self.categories)

    def as_sent(self, rows: np.ndarray) -> np.ndarray | NamedRows:
        """Some of its rows (or edits of them) as the client sends them: the array itself, or named rows where the
        set has text columns (their values as category names)."""
        if not self.categories:
            return rows
        assert self.feature_names is not None  # only a table has text columns
        return NamedRows(self.feature_names, rows, self.categories)

    def value_text(self, column: int, value: float) -> str | float:
        """Column `column`'s `value` for people: a text column's category, a number as it is."""
        assert self.feature_names is not None  # a table's
        known = self.categories_of().get(self.feature_names[column])
        return value if known is None else category_name(known, value)

    @property
    def is_table(self) -> bool:
        return self.feature_names is not None

    @property
    def rows_noun(self) -> str:
        """What one of its rows is to people: "image" or "row"."""
        return "row" if self.is_table else "image"

    @cached_property
    def pixels(self) -> np.ndarray | None:
        """X as the 8-bit pixels it was made from (uint8, with `pixels / 255` in float32 equal to X, bit for
        bit), or None when X is not exactly that (sklearn's digits, a perturbed set, a user's floats).
        Sent instead of X, a whole-set scoring moves a quarter of the bytes. Checked once per set."""
        if self.is_table or self.X.dtype != np.float32 or not len(self.X):
            return None
        with np.errstate(invalid="ignore"):  # NaN or out of range casts to some byte: the check below fails it
            pixels = (self.X * np.float32(255.0) + np.float32(0.5)).astype(np.uint8)
        return pixels if np.array_equal(EIGHT_BIT[pixels], self.X) else None


@dataclass(frozen=True)
class DatasetInfo:
    """A test set as the catalogue knows it, without loading it.

    Attributes:
        name: what `load_dataset` and `--dataset` take.
        title: for people.
        image_shape: (height, width) of its images (rows have height*width values); None for a table.
        class_names: its labels.
        installed: whether its files are on this machine.
        value_range: (low, high) of its values (declared at import or read from the data).
        install_hint: how to install it when it is not (a built-in set from a system package).
        feature_names: a table's column names; None for images.
        categories: a table's text columns and their categories.
    """

    name: str
    title: str
    image_shape: tuple[int, int] | None
    class_names: tuple[str, ...]
    installed: bool
    value_range: tuple[float, float] = UNIT_RANGE
    install_hint: str = ""
    feature_names: tuple[str, ...] | None = None
    categories: Categories = ()

    def categories_of(self) -> dict[str, tuple[str, ...]]:
        """{column: its categories} for the text columns ({} when every column holds numbers)."""
        return dict(self.categories)

    @property
    def n_features(self) -> int:
        if self.feature_names is not None:
            return len(self.feature_names)
        assert self.image_shape is not None  # a set is images or a table
        return self.image_shape[0] * self.image_shape[1]

    @property
    def is_table(self) -> bool:
        return self.feature_names is not None

    @property
    def shape_text(self) -> str:
        """ "28x28" for images, "30 columns" for a table."""
        if self.image_shape is None:
            return f"{self.n_features:,} columns"
        return f"{self.image_shape[0]}x{self.image_shape[1]}"


def format_range(value_range: tuple[float, float]) -> str:
    """ "[0, 16]" for people."""
    return f"[{value_range[0]:g}, {value_range[1]:g}]"


def category_name(known: tuple[str, ...], code: float) -> str:
    """The category a text column's `code` stands for ("?" for a code outside them: an edit, never a loaded row)."""
    index = int(code) if np.isfinite(code) else -1
    return known[index] if 0 <= index < len(known) and index == code else "?"
