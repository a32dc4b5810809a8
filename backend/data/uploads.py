"""The one table of formats a user's test set is read from. Adding a format is a reader (a module in
`formats/`) and its row in `FORMATS`: the CLI's help, the Test page's caption and the refusals below are
made from the rows."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..errors import DatasetImportError
from .formats.base import RawSet, check_file
from .formats.idx_pair import read_idx_pair
from .formats.image_folders import read_image_folders
from .formats.npz import read_npz
from .formats.table import read_csv_table, read_parquet_table

_NUMBERS = {1: "one", 2: "two", 3: "three"}


@dataclass(frozen=True)
class Format:
    """One way of giving a test set.

    Attributes:
        noun: what one of its files is called (".npz", "IDX file").
        files: how many files it takes.
        suffixes: the suffixes its files have (lower case); empty: any suffix.
        read: reads the files (as many as `files`) and the label column's name (a table's) into a RawSet,
            or raises DatasetImportError.
        help: one line for people: what to give.
        table: its files are tables, whose labels are a column the user names (`--label`).
    """

    noun: str
    files: int
    suffixes: frozenset[str]
    read: Callable[[Sequence[Path], str | None], RawSet]
    help: str
    table: bool = False

    @property
    def named(self) -> str:
        """ "one .npz", "two IDX files"."""
        return f"{_NUMBERS.get(self.files, str(self.files))} {self.noun}{'s' if self.files > 1 else ''}"


def _images(read: Callable[[Sequence[Path]], RawSet]) -> Callable[[Sequence[Path], str | None], RawSet]:
    """An image format's reader: its files carry their labels (`read_upload` refuses a label column)."""
    return lambda paths, _label: read(paths)


def _one(read: Callable[[Path, str | None], RawSet]) -> Callable[[Sequence[Path], str | None], RawSet]:
    return lambda paths, label: read(paths[0], label)


FORMATS = (
    Format(".npz", 1, frozenset({".npz"}), _images(read_npz),
           "one .npz with arrays X (images) and y (labels), optionally class_names"),
    Format("IDX file", 2, frozenset(), _images(read_idx_pair),
           "two IDX files, images and labels (MNIST's format, gzip'd or not)"),
    Format(".zip", 1, frozenset({".zip"}), _images(read_image_folders),
           "one .zip of PNG/JPEG images in one folder per class (images not 28x28 are prepared as MNIST's "
           "digits were)"),
    Format(".csv", 1, frozenset({".csv", ".tsv"}), _one(read_csv_table),
           "one .csv table with a header line and a label column (named with --label)", table=True),
    Format(".parquet", 1, frozenset({".parquet", ".pq"}), _one(read_parquet_table),
           "one .parquet table with a label column (named with --label)", table=True),
)


def formats_help() -> str:
    """Every format's help in one sentence: "one .npz ...; two IDX files ...; or one .zip ..."."""
    return _either([fmt.help for fmt in FORMATS], "; ", "; or ")


def formats_named() -> str:
    """The formats in a few words: "one .npz, two IDX files or one .zip"."""
    return _either([fmt.named for fmt in FORMATS], ", ", " or ")


def read_upload(paths: Sequence[Path], label: str | None = None) -> RawSet:
    """The files read by the format they are given in: one whose suffixes they all have, else one that
    takes any suffix (an IDX pair) when none of them has another format's suffix. `label` names a table's
    label column; images carry their labels, and a label column given with them is refused.

    Raises:
        DatasetImportError: a file is missing or too large, the files are in no format (the message says
            what is accepted), or what a reader raises.
        IdxFormatError: an IDX file is malformed.
    """
    for path in paths:
        check_file(path)
    suffixes = [path.suffix.lower() for path in paths]
    for fmt in FORMATS:
        if fmt.suffixes and len(paths) == fmt.files and all(suffix in fmt.suffixes for suffix in suffixes):
            return _read(fmt, paths, label)
    claimed = {suffix: fmt for fmt in FORMATS for suffix in fmt.suffixes}
    for fmt in FORMATS:
        if not fmt.suffixes and len(paths) == fmt.files:
            # Say so before reading a file of another format as this one
            other = next((path for path in paths if path.suffix.lower() in claimed), None)
            if other is not None:
                rest = ", ".join(path.name for path in paths if path is not other)
                raise DatasetImportError(
                    f"{other.name} is given with {rest}: give {claimed[other.suffix.lower()].named} alone, "
                    f"or {fmt.help}")
            return _read(fmt, paths, label)
    arrived = ", ".join(path.name for path in paths) or "no file"
    raise DatasetImportError(f"cannot import {arrived}: give {formats_help()}")


def _read(fmt: Format, paths: Sequence[Path], label: str | None) -> RawSet:
    if label and not fmt.table:
        raise DatasetImportError(f"a label column ({label!r}) is for a CSV or Parquet table: {fmt.named} carries "
                                 "its labels; leave the label column out")
    return fmt.read(paths, label)


def _either(items: list[str], between: str, last: str) -> str:
    return between.join(items[:-1]) + last + items[-1] if len(items) > 1 else "".join(items)
