"""The two types of the wing: a loaded `TestSet`, and a `DatasetInfo` (a set as the catalogue knows it)."""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

UNIT_RANGE = (0.0, 1.0)
EIGHT_BIT = np.arange(256, dtype=np.float32) / np.float32(255.0)  # each byte as the float32 a loader makes of it


@dataclass(frozen=True)
class TestSet:
    """Images as rows of floats with their labels, in the set's own value range.

    Attributes:
        name: short name (the one `load_dataset` takes).
        X: float32 array (n, height*width), values within `value_range`.
        y: int64 array (n,).
        image_shape: (height, width) to draw a row as an image.
        class_names: display name of each label.
        source: where the data came from.
        value_range: (low, high) the values are on: black is low, white is high ([0, 1] for MNIST's form).
    """

    __test__ = False  # not a pytest test class

    name: str
    X: np.ndarray
    y: np.ndarray
    image_shape: tuple[int, int]
    class_names: tuple[str, ...]
    source: str
    value_range: tuple[float, float] = UNIT_RANGE

    def __len__(self) -> int:
        return len(self.y)

    @cached_property
    def pixels(self) -> np.ndarray | None:
        """X as the 8-bit pixels it was made from (uint8, with `pixels / 255` in float32 equal to X, bit for
        bit), or None when X is not exactly that (sklearn's digits, a perturbed set, a user's floats).
        Sent instead of X, a whole-set scoring moves a quarter of the bytes. Checked once per set."""
        if self.X.dtype != np.float32 or not len(self.X):
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
        image_shape: (height, width) of its images; rows have height*width values.
        class_names: its labels.
        installed: whether its files are on this machine.
        value_range: (low, high) of its values (declared at import or read from the data).
        install_hint: how to install it when it is not (a built-in set from a system package).
    """

    name: str
    title: str
    image_shape: tuple[int, int]
    class_names: tuple[str, ...]
    installed: bool
    value_range: tuple[float, float] = UNIT_RANGE
    install_hint: str = ""

    @property
    def n_features(self) -> int:
        return self.image_shape[0] * self.image_shape[1]


def format_range(value_range: tuple[float, float]) -> str:
    """ "[0, 16]" for people."""
    return f"[{value_range[0]:g}, {value_range[1]:g}]"
