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

_NUMBERS = {1: "one", 2: "two", 3: "three"}


@dataclass(frozen=True)
class Format:
    """One way of giving a test set.

    Attributes:
        noun: what one of its files is called (".npz", "IDX file").
        files: how many files it takes.
        suffixes: the suffixes its files have (lower case); empty: any suffix.
        read: reads the files (as many as `files`) into a RawSet, or raises DatasetImportError.
        help: one line for people: what to give.
    """

    noun: str
    files: int
    suffixes: frozenset[str]
    read: Callable[[Sequence[Path]], RawSet]
    help: str

    @property
    def named(self) -> str:
        """ "one .npz", "two IDX files"."""
        return f"{_NUMBERS.get(self.files, str(self.files))} {self.noun}{'s' if self.files > 1 else ''}"


FORMATS = (
    Format(".npz", 1, frozenset({".npz"}), read_npz,
           "one .npz with arrays X (images) and y (labels), optionally class_names"),
    Format("IDX file", 2, frozenset(), read_idx_pair,
           "two IDX files, images and labels (MNIST's format, gzip'd or not)"),
    Format(".zip", 1, frozenset({".zip"}), read_image_folders,
           "one .zip of PNG/JPEG images in one folder per class (images not 28x28 are prepared as MNIST's "
           "digits were)"),
)


def formats_help() -> str:
    """Every format's help in one sentence: "one .npz ...; two IDX files ...; or one .zip ..."."""
    return _either([fmt.help for fmt in FORMATS], "; ", "; or ")


def formats_named() -> str:
    """The formats in a few words: "one .npz, two IDX files or one .zip"."""
    return _either([fmt.named for fmt in FORMATS], ", ", " or ")


def read_upload(paths: Sequence[Path]) -> RawSet:
    """The files read by the format they are given in: one whose suffixes they all have, else one that
    takes any suffix (an IDX pair) when none of them has another format's suffix.

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
            return fmt.read(paths)
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
            return fmt.read(paths)
    arrived = ", ".join(path.name for path in paths) or "no file"
    raise DatasetImportError(f"cannot import {arrived}: give {formats_help()}")


def _either(items: list[str], between: str, last: str) -> str:
    return between.join(items[:-1]) + last + items[-1] if len(items) > 1 else "".join(items)
