"""IDX files (MNIST's format, http://yann.lecun.com/exdb/mnist/ "THE IDX FILE FORMAT"), gzip'd or not."""

from __future__ import annotations

import gzip
import math
from pathlib import Path

import numpy as np

from ..errors import DatasetError, IdxFormatError
from .testset import TestSet

# IDX type codes -> big-endian numpy dtypes
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: Path) -> np.ndarray:
    """Reads an IDX file, gzip-compressed or not, as a numpy array of its dimensions.

    Raises:
        IdxFormatError: wrong magic number, unknown type code, or fewer bytes than the header says.
        DatasetError: the file cannot be read.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as e:
        raise DatasetError(f"cannot read {path}: {e}") from e
    # Named without its folder: an uploaded file's is a private staging folder
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise IdxFormatError(
            f"{path.name} is not an IDX file ({_looks_like(raw)}): an IDX file starts with two zero bytes, then "
            "a type code and the number of dimensions, as MNIST's files")
    type_code, ndim = raw[2], raw[3]
    if type_code not in _IDX_DTYPES:
        raise IdxFormatError(f"{path.name}: unknown IDX type code 0x{type_code:02x}")
    if ndim == 0 or len(raw) < 4 + 4 * ndim:
        raise IdxFormatError(f"{path.name}: header truncated or with no dimensions (ndim={ndim})")
    dims = tuple(int(d) for d in np.frombuffer(raw, dtype=">u4", count=ndim, offset=4))
    dtype = np.dtype(_IDX_DTYPES[type_code])
    expected = math.prod(dims) * dtype.itemsize  # Python ints: 65536**4 must not wrap to 0 as int64 would
    available = len(raw) - 4 - 4 * ndim
    if available < expected:
        raise IdxFormatError(
            f"{path.name} is truncated: its header says {'x'.join(map(str, dims))} values "
            f"({expected} bytes) but only {available} bytes follow")
    data = np.frombuffer(raw, dtype=dtype, count=expected // dtype.itemsize, offset=4 + 4 * ndim)
    return data.reshape(dims).astype(dtype.newbyteorder("="))


def _looks_like(raw: bytes) -> str:
    """What a file that is not IDX seems to be, in words."""
    kinds = {b"PK": "it is a zip archive, as an .npz is", b"\x93NUMPY": "it is a .npy array",
             b"\x89PNG": "it is a PNG image", b"\xff\xd8": "it is a JPEG image"}
    return next((words for magic, words in kinds.items() if raw.startswith(magic)),
                "it is empty" if not raw else "its first bytes are not an IDX header")


def load_idx_pair(images: Path, labels: Path, *, name: str, class_names: tuple[str, ...] | None = None
                  ) -> TestSet:
    """A TestSet from an IDX image file (n x h x w) and its IDX label file (n), as the tutorial's
    `load_data`: pixels divided by 255.

    Raises:
        IdxFormatError: either file is invalid, or they disagree on the number of items.
    """
    images_arr, labels_arr = read_idx(images), read_idx(labels)
    if images_arr.ndim != 3 or labels_arr.ndim != 1:
        raise IdxFormatError(
            f"expected images n x height x width and labels n, got {images_arr.shape} and {labels_arr.shape}")
    if len(images_arr) != len(labels_arr):
        raise IdxFormatError(f"{images} has {len(images_arr)} images but {labels} has {len(labels_arr)} labels")
    n, h, w = images_arr.shape
    X = images_arr.reshape(n, h * w).astype(np.float32) / np.float32(255.0)
    y = labels_arr.astype(np.int64)
    names = class_names or tuple(str(i) for i in range(int(y.max()) + 1 if n else 0))
    testset = TestSet(name, X, y, (h, w), names, f"{images} + {labels}")
    if images_arr.dtype == np.uint8:  # X was made from these bytes: no need to check
        testset.__dict__["pixels"] = images_arr.reshape(n, h * w)
    return testset
