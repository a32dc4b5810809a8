"""What every format reader returns (`RawSet`), and the checks and words they share."""

from __future__ import annotations

import re
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ...errors import DatasetImportError
from .. import limits

_MIB = 2**20


@dataclass(frozen=True)
class RawSet:
    """Arrays as read from the user's files, before any check (normalisation checks them).

    Attributes:
        X: images (n, height, width) or rows (n, height*width), any numeric dtype; a table's rows (n, columns).
        y: labels: class indices or class names.
        class_names: the names the files give, if any.
        origin: the files, named for messages ("a.npz", "images + labels").
        source: how the reader read them, when it says more than the files' names.
        unit: the reader made the values, in [0, 1] (pictures decoded from a zip).
        bytes_over_255: 8-bit values are pixels over 255 (MNIST's loader) unless a range is declared.
        feature_names: a table's column names (X's columns); None for images.
        categories: a table's text columns with their categories (X holds indices into them).
    """

    X: np.ndarray
    y: np.ndarray
    class_names: np.ndarray | tuple[str, ...] | None
    origin: str
    source: str | None = None
    unit: bool = False
    bytes_over_255: bool = False
    feature_names: tuple[str, ...] | None = None
    categories: tuple[tuple[str, tuple[str, ...]], ...] = ()


def check_file(path: Path) -> None:
    """Refuses a path that is not a readable file, or one larger than MAX_UNPACKED_BYTES."""
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DatasetImportError(f"cannot read {path.name}: {e.strerror or e}") from e
    if not path.is_file():
        raise DatasetImportError(f"cannot read {path.name}: it is not a file")
    if size > limits.MAX_UNPACKED_BYTES:
        raise DatasetImportError(
            f"{path.name} is {amount(size)}: the limit is {amount(limits.MAX_UNPACKED_BYTES)}")


def checked_members(archive: zipfile.ZipFile, zip_name: str) -> list[zipfile.ZipInfo]:
    """The archive's entries, once their number and unpacked size are under the caps (zip bombs).
    zipfile stops reading a member at its declared size, so the declared sizes bound what is unpacked."""
    infos = archive.infolist()
    if len(infos) > limits.MAX_ZIP_FILES:
        raise DatasetImportError(f"{zip_name} holds {len(infos):,} files: the limit is {limits.MAX_ZIP_FILES:,}")
    total = sum(info.file_size for info in infos)
    if total > limits.MAX_UNPACKED_BYTES:
        raise DatasetImportError(
            f"{zip_name} unpacks to {amount(total)}: the limit is {amount(limits.MAX_UNPACKED_BYTES)}")
    return infos


def natural_key(text: str) -> tuple[tuple[int | str, ...], str]:
    """Sorts "2" before "10" and "img9" before "img10": digit runs compare as numbers."""
    parts = re.split(r"(\d+)", text)
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(parts)), text


def shape(array: np.ndarray) -> str:
    """ "(3, 28, 28)" for people."""
    return "(" + ", ".join(f"{d}" for d in array.shape) + ")"


def amount(size: int) -> str:
    """A size in bytes for people: "3,000 bytes", "1.5 MiB"."""
    return f"{size / _MIB:,.1f} MiB" if size >= _MIB else f"{size:,} bytes"
