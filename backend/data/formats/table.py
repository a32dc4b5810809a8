"""A table of rows (one CSV or Parquet file): named columns of numbers or of text categories, and a label column.
Every value is checked before anything is kept, with the column and row of the first bad one in the message."""

from __future__ import annotations

import csv
import io
import warnings
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ...errors import DatasetImportError
from ...words import count
from .. import limits
from .base import RawSet

if TYPE_CHECKING:
    import pandas as pd

HEADER_BYTES = 2**20
"""The header line must end within this much of the file's start (4,096 names of 200 characters fit)."""
SEPARATORS = ",;\t|"
PARQUET_MAGIC = b"PAR1"
MAX_CATEGORIES = 10_000
"""Different texts a column may hold (each one category of the model's)."""


def read_csv_table(path: Path, label: str | None) -> RawSet:
    """The rows of a CSV file with a header line: UTF-8 (a byte-order mark is dropped), separated by
    commas, semicolons, tabs or bars (found from the file's start), quoted as Excel and pandas write;
    with `;` separators, decimal commas ("1,5") are read as numbers too.

    Raises:
        DatasetImportError: not text, no header, a column without a name or named twice, too many columns
            or rows, the label column missing, a missing value, or a column mixing numbers and text (with its column
            and row).
    """
    names, separator = _csv_header(path)
    _check_names(names, path.name, label)
    import pandas as pd

    try:
        with warnings.catch_warnings():
            # a row with more fields than the header: pandas warns and drops some, or takes the first as an index
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, sep=separator, encoding="utf-8-sig", nrows=limits.MAX_ROWS + 1, index_col=False,
                                low_memory=False, skipinitialspace=True, dtype_backend="numpy_nullable")
    except (ValueError, pd.errors.ParserError, pd.errors.ParserWarning) as e:
        raise DatasetImportError(f"cannot read {path.name} as CSV ({e}): every row needs as many fields as the "
                                 "header has names") from e
    separated = {",": "commas", ";": "semicolons", "\t": "tabs", "|": "bars"}[separator]
    return _table(frame, names, label, path.name, f"{path.name} (CSV, {separated}",
                  decimal_comma=separator == ";")


def _csv_header(path: Path) -> tuple[list[str], str]:
    """(the column names, the separator) of a CSV file's header line.

    Raises:
        DatasetImportError: not UTF-8 text, empty, or a header line past HEADER_BYTES.
    """
    with path.open("rb") as handle:
        head = handle.read(HEADER_BYTES)
    if head.startswith((PARQUET_MAGIC, b"PK\x03\x04", b"\x93NUMPY")) or b"\x00" in head:
        raise DatasetImportError(f"{path.name} is not a CSV file (it holds binary data): save the table as "
                                 "text, or give a Parquet file as .parquet")
    try:
        text = head.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        if e.start < len(head) - 4:  # not a UTF-8 sequence cut at the 1 MiB boundary
            raise DatasetImportError(f"{path.name} is not UTF-8 text (byte {e.start:,} is {head[e.start:e.start + 1]!r}): "
                                     "save it as UTF-8") from e
        text = head[:e.start].decode("utf-8-sig")
    if not text.strip():
        raise DatasetImportError(f"{path.name} is empty: a test set's CSV has a header line and rows")
    if "\n" not in text and len(head) == HEADER_BYTES:  # the header line does not end within what was read
        raise DatasetImportError(f"{path.name}: its first line is longer than {HEADER_BYTES // 2**20} MiB; the "
                                 f"limit is {limits.MAX_ROW_VALUES:,} columns")
    separator = _separator(text)
    return next(csv.reader(io.StringIO(text), delimiter=separator)), separator


def read_parquet_table(path: Path, label: str | None) -> RawSet:
    """The rows of a Parquet file: its numeric, boolean and text columns, and the label column (any type).

    Raises:
        DatasetImportError: not Parquet, unreadable, too many columns or rows, the label column missing,
            a column mixing numbers and text, or a missing value (with its column and row).
    """
    with path.open("rb") as handle:
        head = handle.read(4)
        handle.seek(max(0, path.stat().st_size - 4))
        tail = handle.read(4)
    if head != PARQUET_MAGIC or tail != PARQUET_MAGIC:
        raise DatasetImportError(f"{path.name} is not a Parquet file (it starts with {head!r}; Parquet starts and "
                                 "ends with b'PAR1'): save it with DataFrame.to_parquet, or give a CSV as .csv")
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
        names = list(parquet.schema_arrow.names)
        rows = parquet.metadata.num_rows
    except Exception as e:  # pyarrow raises several kinds on a damaged file: all mean "unreadable"
        raise DatasetImportError(f"cannot read {path.name} as Parquet: {e}") from e
    _check_names(names, path.name, label)
    if rows > limits.MAX_ROWS:
        raise DatasetImportError(f"{path.name} holds {rows:,} rows: the limit is {limits.MAX_ROWS:,}")
    try:
        frame = parquet.read().to_pandas(types_mapper=_nullable)
    except Exception as e:
        raise DatasetImportError(f"cannot read {path.name} as Parquet: {e}") from e
    return _table(frame, names, label, path.name, f"{path.name} (Parquet")


def _nullable(arrow_type: Any) -> Any:
    """pandas' nullable dtypes for Arrow's integers and booleans, so a missing value is seen as missing."""
    import pandas as pd
    import pyarrow as pa

    if pa.types.is_integer(arrow_type) or pa.types.is_boolean(arrow_type):
        return pd.ArrowDtype(arrow_type)
    return None


def _separator(text: str) -> str:
    """The separator of the header line: the one of SEPARATORS it has most of outside quotes (a comma
    when it has none: a one-column file)."""
    line = text.splitlines()[0]
    counts = {sep: len(next(csv.reader([line], delimiter=sep))) for sep in SEPARATORS}
    best = max(SEPARATORS, key=lambda sep: (counts[sep], -SEPARATORS.index(sep)))
    return best if counts[best] > 1 else ","


def feature_columns(path: Path, label: str | None = None) -> tuple[str, ...]:
    """The names of a CSV or Parquet table's columns but `label` (when given), read from its header or schema
    alone: what a model fitted on that table takes.

    Raises:
        DatasetImportError: not a table that can be read, a column without a name or named twice, too many
            columns, `label` not one of them, or no column but the label.
    """
    if path.suffix.lower() in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        try:
            names = list(pq.read_schema(path).names)
        except Exception as e:  # pyarrow raises several kinds on a damaged file: all mean "unreadable"
            raise DatasetImportError(f"cannot read {path.name} as Parquet: {e}") from e
    else:
        names = _csv_header(path)[0]
    _check_columns(names, path.name)
    if label:
        _check_label(names, path.name, label)
    features = tuple(name for name in names if name != label)
    if not features:
        raise DatasetImportError(f"{path.name} has no column" + (f" but {label!r}" if label else ""))
    return features


def _check_names(names: list[str], origin: str, label: str | None) -> None:
    _check_columns(names, origin)
    _check_label(names, origin, label)


def _check_columns(names: list[str], origin: str) -> None:
    if len(names) > limits.MAX_ROW_VALUES + 1:
        raise DatasetImportError(f"{origin} has {len(names):,} columns: the limit is {limits.MAX_ROW_VALUES:,} "
                                 "feature columns and the label")
    blank = next((i for i, name in enumerate(names) if not str(name).strip()), None)
    if blank is not None:
        hint = " (a pandas index? save with to_csv(..., index=False))" if blank == 0 else ""
        raise DatasetImportError(f"{origin}: column {blank + 1} has no name{hint}; every column needs one")
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise DatasetImportError(f"{origin}: two columns are named {name!r}; each name must appear once")
        seen.add(name)


def _check_label(names: list[str], origin: str, label: str | None) -> None:
    if label is None or not label.strip():
        likely = [name for name in names if name.strip().lower() in ("label", "target", "class", "y")]
        raise DatasetImportError(f"{origin} is a table: say which column holds the true labels (--label COLUMN"
                                 + (f", e.g. --label {likely[0]!r}" if likely else "") + "); its columns are "
                                 + _listed(names))
    if label not in names:
        raise DatasetImportError(f"{origin} has no column {label!r} for the labels; its columns are {_listed(names)}")
    if len(names) < 2:
        raise DatasetImportError(f"{origin} holds only the label column {label!r}: no feature to score")


def _table(frame: pd.DataFrame, names: list[str], label: str | None, origin: str, source: str, *,
           decimal_comma: bool = False) -> RawSet:
    """The frame's feature columns as float32 rows (a text column's values as indices into its categories) and its
    label column, once every value is checked."""

    assert label is not None  # _check_names refused it
    if len(frame) == 0:
        raise DatasetImportError(f"{origin} has a header but no rows: the test set would be empty")
    if len(frame) > limits.MAX_ROWS:
        raise DatasetImportError(f"{origin} holds more than {limits.MAX_ROWS:,} rows: the limit is "
                                 f"{limits.MAX_ROWS:,}; give a sample of it")
    features = [name for name in names if name != label]
    if len(frame) * len(features) > limits.MAX_VALUES:
        raise DatasetImportError(f"{origin}: {len(frame):,} rows of {len(features):,} values: the limit is "
                                 f"{limits.MAX_VALUES:,} values in all")
    frame.columns = names  # as written (pandas would rename a repeated or odd name)
    X = np.empty((len(frame), len(features)), dtype=np.float32)
    decimal_commas = False
    categories: list[tuple[str, tuple[str, ...]]] = []
    for j, name in enumerate(features):
        column = frame[name]
        values, commas = _numbers(column, decimal_comma)
        decimal_commas |= commas
        if values is None:
            values, known = _codes(column, name, origin)
            categories.append((str(name), known))
        missing = np.isnan(values)
        if missing.any():
            raise DatasetImportError(
                f"{origin}: column {name!r} has {count(int(missing.sum()), 'missing value')} (the first in row "
                f"{int(np.argmax(missing)) + 1:,}); fill them in or drop those rows")
        with np.errstate(over="ignore"):
            X[:, j] = values
        if not np.isfinite(X[:, j]).all():
            row = int(np.argmax(~np.isfinite(X[:, j])))
            raise DatasetImportError(f"{origin}: column {name!r} holds {values[row]:g} in row {row + 1:,}: values "
                                     "are float32, at most ±3.4e38 and finite")
    y = frame[label]
    if y.isna().any():
        row = int(np.argmax(y.isna().to_numpy()))
        raise DatasetImportError(f"{origin}: row {row + 1:,} has no label (column {label!r} is empty there)")
    labels = _labels(y)
    read = source + (", decimal commas" if decimal_commas else "") + ")"
    texts = f", {len(categories):,} of them text" if categories else ""
    return RawSet(X, labels, None, origin, f"{read}: {count(len(frame), 'row')} of {len(features):,} columns{texts}",
                  feature_names=tuple(str(name) for name in features), categories=tuple(categories))


def _numbers(column: pd.Series, decimal_comma: bool) -> tuple[np.ndarray | None, bool]:
    """(the column as float64 with NaN where a value is missing, whether decimal commas were read), or
    (None, False) when some value is not a number."""
    import pandas as pd

    if pd.api.types.is_bool_dtype(column.dtype) or pd.api.types.is_numeric_dtype(column.dtype):
        return column.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan), False
    text = column.astype("string").str.strip()
    parsed = pd.to_numeric(text, errors="coerce")
    bad = parsed.isna() & text.notna() & (text != "")
    if bad.any() and decimal_comma:
        parsed = pd.to_numeric(text.str.replace(",", ".", regex=False), errors="coerce")
        if not (parsed.isna() & text.notna() & (text != "")).any():
            return parsed.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan), True
    if bad.any():
        return None, False
    return parsed.astype("Float64").to_numpy(dtype=np.float64, na_value=np.nan), False


def _codes(column: pd.Series, name: str, origin: str) -> tuple[np.ndarray, tuple[str, ...]]:
    """A text column as (each value's index into its categories as float64, NaN where missing; the categories,
    sorted as scikit-learn's encoders sort them).

    Raises:
        DatasetImportError: the column mixes numbers and text, or holds more than MAX_CATEGORIES different texts.
    """
    import pandas as pd

    text = column.astype("string").str.strip()
    present = (text.notna() & (text != "")).fillna(False)
    numbers = (pd.to_numeric(text, errors="coerce").notna() & present).fillna(False)
    if numbers.any():
        number, word = int(np.argmax(numbers.to_numpy(dtype=bool))), int(np.argmax((present & ~numbers).to_numpy(dtype=bool)))
        raise DatasetImportError(
            f"{origin}: column {name!r} mixes numbers and text ({str(text.iloc[number])[:40]!r} in row {number + 1:,}, "
            f"{str(text.iloc[word])[:40]!r} in row {word + 1:,}): a column holds numbers, or text categories; "
            "write every value of it one way")
    known = tuple(sorted(set(text[present].tolist())))
    if len(known) > MAX_CATEGORIES:
        raise DatasetImportError(
            f"{origin}: column {name!r} holds {len(known):,} different texts: the limit is {MAX_CATEGORIES:,} "
            "categories in a column (is it an identifier? leave it out of the test set)")
    position = {category: float(k) for k, category in enumerate(known)}
    codes = np.array([position[value] if isinstance(value, str) and value else np.nan
                      for value in text.tolist()], dtype=np.float64)
    return codes, known


def _labels(y: pd.Series) -> np.ndarray:
    """The labels as the class names a model fitted on them answers: whole numbers as "0", "1", ...
    (3.0 as "3"), anything else as written."""
    import pandas as pd

    if pd.api.types.is_float_dtype(y.dtype):
        values = y.to_numpy(dtype=np.float64)
        if (values == np.round(values)).all():
            return values.astype(np.int64).astype(str)
    return np.asarray([str(value).strip() for value in y.tolist()], dtype=str)


def _listed(names: list[str], limit: int = 8) -> str:
    return ", ".join(map(repr, names[:limit])) + (f", ... ({len(names):,} in all)" if len(names) > limit else "")
