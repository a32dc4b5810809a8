"""Whether a test set fits a model's signature, and why not: the rules, on what the catalogue knows."""

from __future__ import annotations

from ..registry import Signature
from .testset import DatasetInfo, format_range


def mismatch(info: DatasetInfo, signature: Signature) -> str | None:
    """Why the test set does not fit a model with `signature`, or None when it fits: its image shape (or
    value count), its value range and its classes must be the model's, where the signature states them; a
    table's columns must be the model's named features (in any order: a load puts them in the model's), its text
    columns the model's text columns, holding categories it knows.
    An unknown signature fits every installed set (the endpoint then says what it refuses)."""
    if not info.installed:
        return "not installed" + (f" ({info.install_hint})" if info.install_hint else "")
    why = _table_mismatch(info, signature) if info.is_table else _image_mismatch(info, signature)
    return why or _class_mismatch(info, signature)


def _table_mismatch(info: DatasetInfo, signature: Signature) -> str | None:
    columns = info.feature_names or ()
    if signature.image_shape is not None:
        shape = signature.image_shape
        return f"it is a table of {len(columns):,} columns; the model takes {shape[0]}x{shape[1]} images"
    if signature.feature_names is not None and set(signature.feature_names) != set(columns):
        missing = [name for name in signature.feature_names if name not in set(columns)]
        extra = [name for name in columns if name not in set(signature.feature_names)]
        return "; ".join(part for part in (
            f"it lacks the model's column{'s' if len(missing) > 1 else ''} {_first(tuple(missing))}" if missing else "",
            f"it has column{'s' if len(extra) > 1 else ''} the model does not take: {_first(tuple(extra))}"
            if extra else "") if part)
    if signature.n_features is not None and signature.n_features != len(columns):
        return f"it has {len(columns):,} feature columns; the model takes {signature.n_features:,} values"
    return _category_mismatch(info, signature)


def _category_mismatch(info: DatasetInfo, signature: Signature) -> str | None:
    """Why the set's text columns do not fit the model's: text where it takes numbers, numbers where it takes text,
    a category it does not know (the endpoint would refuse each). Unknown where the model's categories are."""
    if signature.categories is None and not info.categories:
        return None
    model, texts = signature.categories_of(), info.categories_of()
    for column in info.feature_names or ():
        theirs, known = model.get(column), texts.get(column)
        if known is not None and theirs is not None:
            unknown = [category for category in known if category not in set(theirs)]
            if unknown:
                return (f"its column {column!r} holds {_first(tuple(unknown))}, not among the model's categories "
                        f"({_first(theirs, 6)})")
        elif known is not None and signature.categories is not None:
            return f"its column {column!r} holds text ({_first(known)}); the model takes numbers there"
        elif theirs is not None:
            return f"its column {column!r} holds numbers; the model takes it as text ({_first(theirs)})"
    return None


def _image_mismatch(info: DatasetInfo, signature: Signature) -> str | None:
    assert info.image_shape is not None  # a set is images or a table
    height, width = info.image_shape
    if signature.feature_names is not None:
        return (f"its rows are {height}x{width} images; the model takes {len(signature.feature_names):,} named "
                f"features ({_first(signature.feature_names)})")
    if signature.image_shape is not None and signature.image_shape != info.image_shape:
        return f"its images are {height}x{width}; the model takes {signature.image_shape[0]}x{signature.image_shape[1]}"
    if signature.n_features is not None and signature.n_features != info.n_features:
        return f"its images have {height}x{width} = {info.n_features} values; the model takes {signature.n_features}"
    if signature.value_range is not None and (why := range_mismatch(info.value_range, signature.value_range)):
        return why
    return None


def _class_mismatch(info: DatasetInfo, signature: Signature) -> str | None:
    labels = signature.class_labels
    if labels is None:
        return None
    # Matched by name, in any order (a model trained on names has them sorted: scikit-learn's classes_); a set may
    # hold some of the model's classes only (a month of benign cases): it is scored against all of them
    foreign = [name for name in info.class_names if name not in set(labels)]
    if not foreign:
        return None
    if len(info.class_names) > len(labels) and not set(labels) & set(info.class_names):
        return f"it has {len(info.class_names)} classes; the model has {len(labels)}"
    return (f"its classes are {_first(info.class_names)}; the model's are {_first(labels)}"
            + (f" ({_first(tuple(foreign))} not among them)" if len(foreign) < len(info.class_names) else ""))


def range_mismatch(values: tuple[float, float], model: tuple[float, float]) -> str | None:
    """Why a set with values in `values` does not fit a model taking `model`, or None: the set's range must
    lie within the model's and span at least half of it. A narrower read range is the same scale (a
    held-out subset with no 16 in a 0-16 set); a much narrower one is another scale ([0, 1] for [0, 16]:
    every prediction the same class)."""
    (low, high), (m_low, m_high) = values, model
    within = m_low <= low and high <= m_high
    if within and (high - low) >= (m_high - m_low) / 2:
        return None
    why = f"its values are in {format_range(values)}; the model takes {format_range(model)}"
    return why if not within else f"{why}, on another scale (the set spans under half of the model's range)"


def _first(names: tuple[str, ...], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")
