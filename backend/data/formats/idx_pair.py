"""Two IDX files (MNIST's format, gzip'd or not): images and labels, in either order."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Sequence
from pathlib import Path

from ...errors import DatasetImportError
from .. import limits
from ..idx import read_idx
from .base import RawSet, amount, shape


def read_idx_pair(paths: Sequence[Path]) -> RawSet:
    """The images (the file of 2 or 3 dimensions) and labels (the one of 1) of an IDX pair; 8-bit pixels
    are read over 255 as MNIST's loader does, unless a range is declared.

    Raises:
        DatasetImportError: a gzip'd file unpacks past the cap, or images cannot be told from labels.
        IdxFormatError: a file is not valid IDX.
    """
    first, second = paths
    for path in (first, second):
        _check_gzip_size(path)
    arrays = [read_idx(first), read_idx(second)]
    one_dimensional = [array.ndim == 1 for array in arrays]
    if one_dimensional.count(True) != 1 or max(array.ndim for array in arrays) > 3:
        raise DatasetImportError(
            f"cannot tell images from labels: {first.name} holds {shape(arrays[0])} and {second.name} "
            f"{shape(arrays[1])}; expected images n x height x width and labels n")
    (images, images_path), (labels, labels_path) = sorted(
        zip(arrays, (first, second), strict=True), key=lambda pair: pair[0].ndim, reverse=True)
    return RawSet(images, labels, None, f"{images_path.name} + {labels_path.name}", bytes_over_255=True)


def _check_gzip_size(path: Path) -> None:
    """Refuses a gzip'd file that unpacks past the cap, before `read_idx` unpacks it in memory."""
    with path.open("rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return
    total = 0
    try:
        with gzip.open(path, "rb") as unpacked:
            while chunk := unpacked.read(2**20):
                total += len(chunk)
                if total > limits.MAX_UNPACKED_BYTES:
                    raise DatasetImportError(
                        f"{path.name} unpacks to more than {amount(limits.MAX_UNPACKED_BYTES)}: refused")
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetImportError(f"cannot read {path.name}: it is not a valid gzip file ({e})") from e
