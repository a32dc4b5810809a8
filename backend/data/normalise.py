"""What a format reader read, checked and put in the TestSet form: X float32 rows (n, height*width) in the
set's own value range, y int64 class indices 0..k-1, image_shape, class_names, value_range. Values are
never rescaled unless asked (`rescale_to`)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..errors import DatasetImportError
from . import limits
from .formats.base import RawSet, natural_key, shape
from .testset import UNIT_RANGE, TestSet, format_range


def normalised(raw: RawSet, name: str, declared: tuple[float, float] | None = None,
               image_shape: tuple[int, int] | None = None,
               rescale_to: tuple[float, float] | None = None) -> TestSet:
    """What was read, as the test set `name`: values in the `declared` value range, else the one read from
    the data ([0, 1] when every value is, [0, 255] for uint8, else [0 (or the lowest value, rounded down,
    when negative), the highest value rounded up]); rows of `image_shape` when given; mapped linearly onto
    `rescale_to` only when asked.

    Raises:
        DatasetImportError: what is wrong with it (shapes, sizes, values, labels, class names).
    """
    if raw.feature_names is not None:
        return _table(raw, name, declared, image_shape, rescale_to)
    origin, X, y = raw.origin, np.asarray(raw.X), np.asarray(raw.y)
    if X.ndim == 3:
        n, height, width = X.shape
        if image_shape is not None and tuple(image_shape) != (height, width):
            raise DatasetImportError(
                f"{origin}: X holds {height}x{width} images, not the {image_shape[0]}x{image_shape[1]} declared")
    elif X.ndim == 2:
        n, features = X.shape
        if image_shape is not None:
            height, width = image_shape
            if height * width != features:
                raise DatasetImportError(
                    f"{origin}: X has rows of {features:,} values, not the {height}x{width} = {height * width:,} "
                    "of the image shape declared")
        else:
            side = math.isqrt(features)
            if side * side != features:
                raise DatasetImportError(
                    f"{origin}: X has rows of {features:,} values, which is not a square image; give X as "
                    "(n, height, width), or declare the image shape (the Image shape field, or --image-shape "
                    "HEIGHTxWIDTH)")
            height = width = side
    else:
        raise DatasetImportError(
            f"{origin}: X has shape {shape(X)}; expected images (n, height, width) or rows (n, height*width)")
    if n == 0:
        raise DatasetImportError(f"{origin}: X holds no images: the test set would be empty")
    if height * width == 0 or height * width > limits.MAX_ROW_VALUES:
        raise DatasetImportError(
            f"{origin}: images of {height}x{width} pixels; they must have 1 to {limits.MAX_ROW_VALUES:,} pixels (64x64)")
    if n > limits.MAX_ROWS or n * height * width > limits.MAX_VALUES:
        raise DatasetImportError(
            f"{origin}: {n:,} images of {height}x{width}: the limit is {limits.MAX_ROWS:,} images and "
            f"{limits.MAX_VALUES:,} pixel values in all")
    if y.ndim != 1:
        raise DatasetImportError(f"{origin}: y has shape {shape(y)}; expected one label per image, shape ({n},)")
    if len(y) != n:
        raise DatasetImportError(f"{origin}: X holds {n:,} images but y holds {len(y):,} labels")
    values, value_range, how = _values(X.reshape(n, height * width), raw, declared)
    if rescale_to is not None:
        values, how = _rescaled(values, value_range, rescale_to), f"{how}, rescaled to {format_range(rescale_to)} as asked"
        value_range = (float(rescale_to[0]), float(rescale_to[1]))
    labels, class_names = _labels(y, raw.class_names, origin)
    source = raw.source or (f"{origin}: {n:,} images {height}x{width} in {len(class_names):,} classes")
    if not raw.unit or rescale_to is not None:  # a zip's source says how its pictures were read
        source = f"{source}; values {how}"
    return TestSet(name, values, labels, (height, width), class_names, source, value_range)


def _table(raw: RawSet, name: str, declared: tuple[float, float] | None, image_shape: tuple[int, int] | None,
           rescale_to: tuple[float, float] | None) -> TestSet:
    """A table as the test set `name`: its reader checked every value; each column keeps its own scale."""
    asked = [what for what, given in (("a value range", declared), ("an image shape", image_shape),
                                      ("a rescale", rescale_to)) if given is not None]
    if asked:
        raise DatasetImportError(f"{raw.origin} is a table: its columns keep their own values, so "
                                 f"{' and '.join(asked)} cannot apply; leave {'them' if len(asked) > 1 else 'it'} out")
    X = np.asarray(raw.X, dtype=np.float32)
    labels, class_names = _labels(np.asarray(raw.y), raw.class_names, raw.origin)
    texts = {name for name, _ in raw.categories}
    numbers = X[:, [j for j, name in enumerate(raw.feature_names or ()) if name not in texts]]
    value_range = (float(numbers.min()), float(numbers.max())) if numbers.size else (0.0, 0.0)
    return TestSet(name, X, labels, None, class_names, raw.source or raw.origin, value_range,
                   feature_names=raw.feature_names, categories=raw.categories)


def _values(X: np.ndarray, raw: RawSet, declared: tuple[float, float] | None
            ) -> tuple[np.ndarray, tuple[float, float], str]:
    """(float32 values, their range, how it was found): as they are, in the declared range or the one read
    from the data; an IDX pair's 8-bit pixels over 255 (MNIST's loader) when no range is declared."""
    origin, kind = raw.origin, X.dtype.kind
    if kind not in "biuf":
        raise DatasetImportError(f"{origin}: X holds {X.dtype} values; expected numbers")
    with np.errstate(over="ignore"):  # beyond float32 becomes infinite: refused below
        values = X.astype(np.float32)
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.argmax(bad.any(axis=1)))
        raise DatasetImportError(
            f"{origin}: X holds {int(bad.sum()):,} NaN or infinite values (the first in image {row}); "
            "fix or remove those images (values are float32: at most ±3.4e38)")
    low, high = float(values.min()), float(values.max())
    if declared is not None:
        d_low, d_high = float(declared[0]), float(declared[1])
        if not d_low < d_high:
            raise DatasetImportError(f"value range {format_range(declared)}: the low end must be below the high end")
        if low < d_low or high > d_high:
            raise DatasetImportError(
                f"{origin}: X values run from {low:g} to {high:g}, outside the range declared, "
                f"{format_range(declared)}")
        if raw.unit and (d_low, d_high) != UNIT_RANGE:
            raise DatasetImportError(
                f"{origin}: images in a zip are read in [0, 1], not {format_range(declared)}: leave the range "
                "out, or ask for a rescale")
        return values, (d_low, d_high), f"in {format_range(declared)} (declared)"
    if raw.bytes_over_255 and X.dtype == np.uint8:
        return values / np.float32(255.0), UNIT_RANGE, "in [0, 1] (8-bit pixels over 255, as MNIST's loader)"
    if low >= 0 and high <= 1:
        read = UNIT_RANGE
    elif X.dtype == np.uint8:
        read = (0.0, 255.0)
    else:
        read = (float(min(0, math.floor(low))), float(math.ceil(high)))
    return values, read, f"in {format_range(read)} (read from the data)"


def _rescaled(values: np.ndarray, source: tuple[float, float], target: tuple[float, float]) -> np.ndarray:
    """`values` mapped linearly from the range `source` onto `target` (as asked: never by default)."""
    (s_low, s_high), (t_low, t_high) = source, (float(target[0]), float(target[1]))
    if not t_low < t_high:
        raise DatasetImportError(f"rescale to {format_range(target)}: the low end must be below the high end")
    if (s_low, s_high) == (0.0, 255.0) and (t_low, t_high) == UNIT_RANGE:
        return values / np.float32(255.0)  # as MNIST's loader: 8-bit pixels keep their exact float32
    scale = np.float32((t_high - t_low) / (s_high - s_low))
    return ((values - np.float32(s_low)) * scale + np.float32(t_low)).astype(np.float32)


def _labels(y: np.ndarray, given: np.ndarray | tuple[str, ...] | None, origin: str
            ) -> tuple[np.ndarray, tuple[str, ...]]:
    """(class indices int64, class names), from indices or names in `y` and the optional `given` names."""
    names = None if given is None else _class_names(given, origin)
    if y.dtype.kind in "US":
        values = [_text(value, origin, "y") for value in y.tolist()]
        if names is None:
            names = _checked_names(sorted(set(values), key=natural_key), origin)
        unknown = sorted(set(values) - set(names), key=natural_key)
        if unknown:
            raise DatasetImportError(
                f"{origin}: labels {', '.join(map(repr, unknown[:5]))} are not among class_names "
                f"({_listed(names)})")
        index = {name: i for i, name in enumerate(names)}
        return np.array([index[value] for value in values], dtype=np.int64), names
    if y.dtype.kind == "f" and not (np.isfinite(y).all() and (y == np.round(y)).all()):
        odd = y[~(np.isfinite(y) & (y == np.round(y)))][0]
        raise DatasetImportError(
            f"{origin}: y holds labels that are not whole numbers (such as {odd!r}); expected class indices "
            "0, 1, 2, ... or class names")
    if y.dtype.kind not in "biuf":
        raise DatasetImportError(f"{origin}: y holds {y.dtype} values; expected class indices or class names")
    low, high = int(y.min()), int(y.max())
    if low < 0:
        raise DatasetImportError(f"{origin}: labels run from {low} to {high}; class indices start at 0")
    if names is not None and high >= len(names):
        raise DatasetImportError(
            f"{origin}: label {high} is outside the {len(names)} class_names ({_listed(names)}): labels must "
            f"be 0 to {len(names) - 1}")
    if names is None:
        if high >= limits.MAX_CLASSES:
            raise DatasetImportError(
                f"{origin}: labels run up to {high}, which would make {high + 1:,} classes: the limit is "
                f"{limits.MAX_CLASSES:,}")
        names = tuple(str(i) for i in range(high + 1))
    return y.astype(np.int64), names


def _class_names(given: np.ndarray | tuple[str, ...], origin: str) -> tuple[str, ...]:
    array = np.asarray(given)
    if array.ndim != 1 or array.dtype.kind not in "USiu":
        raise DatasetImportError(
            f"{origin}: class_names is {array.dtype} of shape {shape(array)}; expected a list of strings")
    return _checked_names([_text(value, origin, "class_names") for value in array.tolist()], origin)


def _checked_names(names: list[str], origin: str) -> tuple[str, ...]:
    if not names or len(names) > limits.MAX_CLASSES:
        raise DatasetImportError(f"{origin}: {len(names):,} class names; expected 1 to {limits.MAX_CLASSES:,}")
    bad = next((name for name in names if not name.strip() or len(name) > limits.MAX_TITLE or "\n" in name), None)
    if bad is not None:
        raise DatasetImportError(
            f"{origin}: class name {bad[:40]!r} is empty, too long or spans lines; expected 1 to {limits.MAX_TITLE} "
            "characters on one line")
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise DatasetImportError(f"{origin}: class name {twice!r} appears more than once")
    return tuple(names)


def _text(value: object, origin: str, what: str) -> str:
    if isinstance(value, bytes):
        try:
            return value.decode("utf-8")
        except UnicodeDecodeError as e:
            raise DatasetImportError(f"{origin}: {what} holds bytes that are not UTF-8 text ({value[:20]!r})") from e
    return str(value)


def checked_title(title: str) -> str:
    """The title on one line, whitespace collapsed; DatasetImportError past MAX_TITLE characters."""
    title = " ".join(str(title or "").split())
    if len(title) > limits.MAX_TITLE:
        raise DatasetImportError(f"the title is {len(title)} characters long: the limit is {limits.MAX_TITLE}")
    return title


def _listed(names: Sequence[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
