"""One .npz holding arrays X and y (and optionally class_names); nothing is unpickled."""

from __future__ import annotations

import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ...errors import DatasetImportError
from .base import RawSet, checked_members


def read_npz(paths: Sequence[Path]) -> RawSet:
    """X, y and class_names from one .npz; object arrays (which only unpickling could read) are refused.

    Raises:
        DatasetImportError: not an .npz, too large unpacked, unreadable, or without X or y.
    """
    (path,) = paths
    with path.open("rb") as handle:
        head = handle.read(8)
    if head.startswith(b"\x93NUMPY"):
        raise DatasetImportError(
            f"{path.name} is a single .npy array: save X and y together with np.savez(path, X=..., y=...)")
    if not head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        raise DatasetImportError(
            f"{path.name} is not an .npz file (it starts with {head!r}): save one with np.savez(path, X=..., y=...)")
    try:
        with zipfile.ZipFile(path) as archive:
            checked_members(archive, path.name)
        with np.load(path, allow_pickle=False) as npz:
            arrays = list(npz.files)
            read = {key: npz[key] for key in ("X", "y", "class_names") if key in arrays}
    except ValueError as e:
        if "pickle" in str(e):
            raise DatasetImportError(
                f"{path.name} holds object arrays, which only unpickling could read, and uploaded files are "
                "never unpickled: save X and y as numeric arrays and class_names as strings "
                "(np.array(names, dtype=str))") from e
        raise DatasetImportError(f"cannot read {path.name} as an .npz file: {e}") from e
    except DatasetImportError:
        raise
    except Exception as e:  # zipfile and numpy raise many kinds on a damaged file: all mean "unreadable"
        raise DatasetImportError(f"cannot read {path.name} as an .npz file: {e}") from e
    missing = [key for key in ("X", "y") if key not in read]
    if missing:
        held = ", ".join(arrays[:10]) + (", ..." if len(arrays) > 10 else "") if arrays else "no arrays"
        raise DatasetImportError(
            f"{path.name} holds {held}; a test set needs arrays X (images) and y (labels), optionally "
            f"class_names: {' and '.join(missing)} missing")
    return RawSet(read["X"], read["y"], read.get("class_names"), path.name)
