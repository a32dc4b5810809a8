"""Test sets: the `TestSet` type and loaders for IDX files (MNIST format) and scikit-learn's digits."""

from __future__ import annotations

import gzip
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import cached_property, lru_cache
from pathlib import Path

import numpy as np

from .config import ASSETS_DIR
from .errors import DatasetError, DatasetMismatchError, IdxFormatError
from .registry import Signature

# IDX type codes -> big-endian numpy dtypes (http://yann.lecun.com/exdb/mnist/ "THE IDX FILE FORMAT").
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
MNIST_DIR = ASSETS_DIR / "data" / "mnist"
FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
EIGHT_BIT = np.arange(256, dtype=np.float32) / np.float32(255.0)  # each byte as the float32 a loader makes of it
UNIT_RANGE = (0.0, 1.0)
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                   "Sneaker", "Bag", "Ankle boot")


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


@lru_cache(maxsize=4)
def load_mnist_test() -> TestSet:
    """The real MNIST 10k test set shipped in assets/data/mnist."""
    return load_idx_pair(MNIST_DIR / "t10k-images-idx3-ubyte.gz", MNIST_DIR / "t10k-labels-idx1-ubyte.gz",
                         name="mnist")


@lru_cache(maxsize=2)
def load_digits_set() -> TestSet:
    """scikit-learn's bundled 8x8 digits (1,797 images), pixels 0..16 scaled to [0, 1]."""
    from sklearn.datasets import load_digits

    digits = load_digits()
    X = (digits.data / 16.0).astype(np.float32)
    return TestSet("digits", X, digits.target.astype(np.int64), (8, 8),
                   tuple(str(i) for i in range(10)), "sklearn.datasets.load_digits")


FASHION_MISSING = (f"Fashion-MNIST is not installed in {FASHION_MNIST_DIR}: "
                   "apt-get install dataset-fashion-mnist")


def _fashion_files(part: str = "t10k") -> tuple[Path, Path] | None:
    """The (images, labels) IDX files of Fashion-MNIST's `part` ("t10k" or "train"), gzip or not."""
    base = FASHION_MNIST_DIR
    if not base.is_dir():
        return None
    images = next(iter(sorted(base.glob(f"{part}-images-idx3-ubyte*"))), None)
    labels = next(iter(sorted(base.glob(f"{part}-labels-idx1-ubyte*"))), None)
    return (images, labels) if images and labels else None


def load_fashion_mnist_test() -> TestSet:
    """Fashion-MNIST's 10k test set, from Debian's dataset-fashion-mnist package.

    Raises:
        DatasetError: the package is not installed (the message says how to install it).
    """
    files = _fashion_files()
    if files is None:
        raise DatasetError(FASHION_MISSING)
    return load_idx_pair(*files, name="fashion-mnist", class_names=FASHION_CLASSES)


def load_fashion_mnist_train(limit: int | None = None) -> TestSet:
    """The first `limit` (default: all 60,000) of Fashion-MNIST's training images, for training.

    Raises:
        DatasetError: the package is not installed (the message says how to install it).
    """
    files = _fashion_files("train")
    if files is None:
        raise DatasetError(FASHION_MISSING)
    full = load_idx_pair(*files, name="fashion-mnist-train", class_names=FASHION_CLASSES)
    if limit is None or limit >= len(full):
        return full
    return replace(full, X=full.X[:limit], y=full.y[:limit], source=f"the first {limit:,} of {full.source}")


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
    """

    name: str
    title: str
    image_shape: tuple[int, int]
    class_names: tuple[str, ...]
    installed: bool
    value_range: tuple[float, float] = UNIT_RANGE

    @property
    def n_features(self) -> int:
        return self.image_shape[0] * self.image_shape[1]


_DIGITS = tuple(str(i) for i in range(10))
_LOADERS: dict[str, Callable[[], TestSet]] = {"mnist": load_mnist_test, "digits": load_digits_set, "fashion-mnist": load_fashion_mnist_test}
DATASET_NAMES = tuple(_LOADERS)


def catalogue(user_root: Path | None = None) -> list[DatasetInfo]:
    """Every test set ModelDeck knows, with whether it is installed here; with `user_root`, the
    user's own sets stored there too (`modeldeck datasets add`)."""
    built_in = [DatasetInfo("mnist", "MNIST 10k (bundled)", (28, 28), _DIGITS, True),
                DatasetInfo("digits", "scikit-learn digits 8x8 (1,797)", (8, 8), _DIGITS, True),
                DatasetInfo("fashion-mnist", "Fashion-MNIST 10k", (28, 28), FASHION_CLASSES,
                            _fashion_files() is not None)]
    if user_root is None:
        return built_in
    from .user_datasets import user_catalogue

    return built_in + user_catalogue(user_root)


def mismatch(info: DatasetInfo, signature: Signature) -> str | None:
    """Why the test set does not fit a model with `signature`, or None when it fits: its image shape (or
    value count), its value range and its classes must be the model's, where the signature states them.
    An unknown signature fits every installed set (the endpoint then says what it refuses)."""
    if not info.installed:
        return "not installed (apt-get install dataset-fashion-mnist)"
    height, width = info.image_shape
    if signature.image_shape is not None and signature.image_shape != info.image_shape:
        return f"its images are {height}x{width}; the model takes {signature.image_shape[0]}x{signature.image_shape[1]}"
    if signature.n_features is not None and signature.n_features != info.n_features:
        return f"its images have {height}x{width} = {info.n_features} values; the model takes {signature.n_features}"
    if signature.value_range is not None and (why := range_mismatch(info.value_range, signature.value_range)):
        return why
    labels = signature.class_labels
    if labels is not None and len(labels) != len(info.class_names):
        return f"it has {len(info.class_names)} classes; the model has {len(labels)}"
    # Matched by name, in any order (a model trained on names has them sorted: scikit-learn's classes_)
    if labels is not None and set(labels) != set(info.class_names):
        return (f"its classes are {_first(info.class_names)}; the model's are {_first(labels)}")
    return None


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


def format_range(value_range: tuple[float, float]) -> str:
    """ "[0, 16]" for people."""
    return f"[{value_range[0]:g}, {value_range[1]:g}]"


def _first(names: tuple[str, ...], shown: int = 3) -> str:
    return ", ".join(names[:shown]) + (", ..." if len(names) > shown else "")


def datasets_for(signature: Signature, user_root: Path | None = None
                 ) -> tuple[list[DatasetInfo], list[tuple[DatasetInfo, str]]]:
    """(the test sets that fit `signature`, the others each with why not); the user's own with `user_root`."""
    fitting, hidden = [], []
    for info in catalogue(user_root):
        why = mismatch(info, signature)
        if why is None:
            fitting.append(info)
        else:
            hidden.append((info, why))
    return fitting, hidden


def load_dataset(name: str, signature: Signature | None = None, user_root: Path | None = None) -> TestSet:
    """The test set called `name` (one of DATASET_NAMES, or with `user_root` one of the user's own),
    checked against a model's signature.

    Raises:
        DatasetError: unknown name or data not installed.
        DatasetMismatchError: it does not fit `signature`.
    """
    loader = _LOADERS.get(name)
    if loader is None and user_root is not None:
        from .user_datasets import load_user_dataset

        loader = lambda: load_user_dataset(user_root, name)  # noqa: E731 (raises DatasetNotFoundError)
    if loader is None:
        raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}")
    if signature is not None:
        info = next((i for i in catalogue(user_root) if i.name == name), None)
        if info is None:
            return loader()  # not in the catalogue: the loader says why
        why = mismatch(info, signature)
        if why is not None and info.installed:
            raise DatasetMismatchError(f"test set {name!r} does not fit this model: {why}")
    return loader()


def dataset_title(name: str, user_root: Path | None = None) -> str:
    """The title people read for the test set `name` ("MNIST 10k (bundled)" for "mnist"); a perturbed
    set's name ("mnist+rotate=15") gives its base set's title; an unknown name is its own title."""
    base = name.split("+", 1)[0]
    return next((info.title for info in catalogue(user_root) if info.name == base), name)
