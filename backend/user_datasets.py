"""A user's own test sets: imported from an .npz, an IDX pair or a zip of class folders, kept under `root`.

    import_dataset(root, name, files) -> <root>/<name>.npz + <root>/<name>.json
    user_catalogue(root), load_user_dataset(root, name), remove_dataset(root, name), dataset_sha256(root, name)

What is accepted (see `import_dataset`), all normalised to the `TestSet` form: X float32 rows
(n, height*width) in the set's own value range, y int64 class indices 0..k-1, image_shape, class_names,
value_range. Values are never rescaled unless asked (`rescale_to`).

Storage, two files per set, each 0600 and written whole to a temporary file in `root`, then renamed in:
- `<name>.npz` (numpy, no object arrays: read back with allow_pickle=False): `X` (n, height*width) as uint8
  when dividing by `x_scale` (255 for a set in [0, 1], 1 for whole numbers 0-255) gives back the imported
  float32 rows exactly (every 8-bit image set does), else as float32 (not float16: a stored set loads back
  bit for bit); `y` int64; `class_names` str.
- `<name>.json`: format, name, title, source, image_shape, class_names, value_range, n, x_dtype, x_scale,
  sha256 (of the .npz), created_at (ISO 8601, UTC). A format-1 set (no value_range) is in [0, 1]. It is written after the .npz, so a set is listed once its data is in place.
  While a set is being replaced, a reader can briefly see the new .npz with the old .json: the checksum
  then fails and the load says so. Two imports of one name at once are not serialised: the last one wins.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import math
import re
import zipfile
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

import numpy as np

from .datasets import DATASET_NAMES, UNIT_RANGE, DatasetInfo, TestSet, format_range, read_idx
from .errors import (
    DatasetError,
    DatasetExistsError,
    DatasetImportError,
    DatasetNotFoundError,
    InvalidDatasetNameError,
    UserImageError,
)
from .files import atomic_write
from .inspection.preprocess import decode_image, grayscale, mnist_input
from .staging import staging_dir

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$")
"""A user test set's name: the deployment-name rule, with '_' allowed too."""
MAX_ROWS = 200_000
MAX_ROW_VALUES = 4_096
"""At most 64x64 pixels per image."""
MAX_VALUES = 200_000 * 784
"""At most 200,000 MNIST-size images' worth of values (627 MB as float32) in one set."""
MAX_CLASSES = 1_000
MAX_TITLE = 200
MAX_UNPACKED_BYTES = 512 * 2**20
"""Cap on what any uploaded file holds once uncompressed (zip members, npz arrays, gzip'd IDX)."""
MAX_ZIP_FILES = 100_000
MAX_IMAGE_PIXELS = 50_000_000
"""A larger image in a zip is refused before it is decoded (a small PNG can unpack to gigabytes)."""
MAX_IMAGE_BYTES = 64 * 2**20
"""Cap on one image in a zip, as a file and decoded (width x height x bytes per pixel, from its header):
a 0.5 MB zip can hold a 496 MiB "PNG"."""
_IMAGE_HEAD_BYTES = 256 * 1024  # enough for the header of a PNG or JPEG (EXIF included) to give its size
MNIST_SIDE = 28
MIN_RESIZED_SIDE = 20
"""An image that goes through `mnist_input` must have a longer side of at least MNIST's 20-pixel digit box."""
IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg"})
FORMAT_VERSION = 2

_MIB = 2**20


@dataclass(frozen=True)
class _Raw:
    """Arrays as read from the user's files, before any check."""

    X: np.ndarray
    y: np.ndarray
    class_names: np.ndarray | tuple[str, ...] | None
    origin: str
    source: str | None = None
    unit: bool = False  # the reader made the values (pictures in a zip: [0, 1])
    idx: bool = False  # an IDX pair (MNIST's format: 8-bit pixels over 255 unless a range is declared)


@dataclass(frozen=True)
class _Prepared:
    X: np.ndarray
    y: np.ndarray
    image_shape: tuple[int, int]
    class_names: tuple[str, ...]
    source: str
    value_range: tuple[float, float] = UNIT_RANGE


@dataclass(frozen=True)
class _Meta:
    info: DatasetInfo
    source: str
    n: int
    sha256: str
    x_scale: int = 255  # stored uint8 values over this are the set's values


def validate_dataset_name(name: str) -> str:
    """Checks a user test set's name: 3-63 of [a-z0-9_-], starting and ending with a letter or digit,
    and not a built-in set's name.

    Args:
        name: the proposed name.

    Returns:
        The name, unchanged.

    Raises:
        InvalidDatasetNameError: with the rule and the offending name.
    """
    if not isinstance(name, str) or not NAME_PATTERN.match(name):
        raise InvalidDatasetNameError(
            f"test set name {name!r} is not valid: use 3 to 63 lowercase letters, digits, '-' and '_', "
            "starting and ending with a letter or digit (for example 'my-digits')")
    if name in DATASET_NAMES:
        raise InvalidDatasetNameError(
            f"test set name {name!r} is a built-in set's ({', '.join(DATASET_NAMES)}): choose another name")
    return name


def import_dataset(root: Path, name: str, files: Sequence[Path], title: str = "", *,
                   replace: bool = False, value_range: tuple[float, float] | None = None,
                   image_shape: tuple[int, int] | None = None,
                   rescale_to: tuple[float, float] | None = None) -> DatasetInfo:
    """Reads a user's files as a test set and stores it as `<root>/<name>.npz` + `.json`.

    Accepted `files`:
    - one `.npz` with arrays `X` (n, h, w) or (n, h*w) (h == w, or `image_shape` given), `y` (n,) of class indices or class
      names (strings: indices of the names sorted naturally), and optionally `class_names`. Nothing is
      unpickled: object arrays are refused.
    - two IDX files (MNIST's format, gzip'd or not), images and labels in either order.
    - one `.zip` of PNG/JPEG images in one folder per class (folder name = class name, classes sorted
      naturally so "2" < "10"; one common top folder is stripped; hidden files and __MACOSX ignored, as
      are files that are not PNG/JPEG). When every image is 28x28 it is taken as it is, in grayscale,
      inverted when its border is light so that ink is bright on black as in MNIST. Otherwise each image
      goes through `inspection.preprocess.mnist_input` (ink cropped, fitted into a 20-pixel box, centred by
      mass in 28x28, as MNIST's digits were made); those must have a longer side of 20 pixels or more.

    Values are kept as they are, in the set's value range: `value_range` when declared (every value must be
    in it), else read from the data: [0, 1] when every value is, [0, 255] for uint8, else [0 (or the lowest
    value, rounded down, when negative), the highest value rounded up] — the 0-16 of scikit-learn's digits.
    IDX pairs are MNIST's format: their 8-bit pixels are divided by 255 as MNIST's loader does ([0, 1]),
    unless a range is declared; images in a zip are read in [0, 1]. Only `rescale_to` rescales: the set's
    range is mapped linearly onto it.

    Args:
        root: the folder of user test sets (`$MODELDECK_HOME/datasets`), created 0700 when missing.
        name: the set's name (see `validate_dataset_name`).
        files: the uploaded files, as above.
        title: for people; the name stands in when empty.
        replace: overwrite a set of the same name instead of refusing.
        value_range: (low, high) of the values, declared; None reads it from the data as above.
        image_shape: (height, width) of rows of height*width values (needed when they are not square).
        rescale_to: (low, high) to map the set's range onto, when asked; None keeps the values.

    Returns:
        The stored set as the catalogue lists it.

    Raises:
        InvalidDatasetNameError: the name breaks the rule or is a built-in set's.
        DatasetExistsError: a set of that name is stored and `replace` is false.
        DatasetImportError: the files are unreadable, of an unknown kind, too big, or hold invalid data
            (the message names the file and says what arrived).
        IdxFormatError: an IDX file is malformed.
        DatasetError: the set cannot be written under `root`.
    """
    validate_dataset_name(name)
    title = _checked_title(title)
    root = Path(root)
    if not replace and (root / f"{name}.json").exists():
        raise DatasetExistsError(
            f"a test set named {name!r} exists already: choose another name, or replace it")
    prepared = _normalised(_read_files([Path(f) for f in files]), value_range, image_shape, rescale_to)
    return _store(root, name, title, prepared, replace=replace)


def import_uploaded(root: Path, name: str, files: dict[str, bytes], title: str, staging: Path,
                    value_range: tuple[float, float] | None = None,
                    rescale_to: tuple[float, float] | None = None,
                    image_shape: tuple[int, int] | None = None) -> DatasetInfo:
    """`import_dataset` for uploaded files ({file name: content}), staged privately under `staging`
    (swept if this process dies), with an optional declared `value_range`, `image_shape` and asked-for
    `rescale_to`. Same errors, and DatasetImportError when nothing was uploaded."""
    if not files:
        raise DatasetImportError("nothing to add: choose one .npz, two IDX files or one .zip")
    with staging_dir(staging) as folder:
        paths = []
        for filename, content in files.items():
            path = folder / (Path(filename).name or "upload")
            path.write_bytes(content)
            paths.append(path)
        return import_dataset(root, name, paths, title, value_range=value_range, rescale_to=rescale_to,
                              image_shape=image_shape)


def user_catalogue(root: Path) -> list[DatasetInfo]:
    """The user test sets stored under `root`, by name. A set whose metadata cannot be read is left out
    (`load_user_dataset` says why).

    Args:
        root: the folder of user test sets; a missing folder holds none.

    Returns:
        One `DatasetInfo` per set, installed, titled from its metadata (or its name).
    """
    root = Path(root)
    if not root.is_dir():
        return []
    infos = []
    for path in sorted(root.glob("*.json")):
        if NAME_PATTERN.match(path.stem) and (root / f"{path.stem}.npz").is_file():
            try:
                infos.append(_read_meta(root, path.stem).info)
            except DatasetError:
                continue
    return infos


def load_user_dataset(root: Path, name: str) -> TestSet:
    """The stored test set `name`, checked against the checksum taken when it was imported.

    Args:
        root: the folder of user test sets.
        name: the set's name.

    Returns:
        X float32 (n, height*width) in the set's value range, y int64, as imported.

    Raises:
        DatasetNotFoundError: no such set; the message names the stored and built-in ones.
        DatasetError: its files are damaged or were changed since the import.
    """
    root = Path(root)
    meta = _meta_or_not_found(root, name)
    raw = _verified_bytes(root, name, meta)
    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as npz:
            stored, y, names = npz["X"], npz["y"], npz["class_names"]
    except Exception as e:  # numpy and zipfile raise many kinds on a damaged file
        raise DatasetError(f"stored test set {name!r} cannot be read ({e}): import it again") from e
    height, width = meta.info.image_shape
    if (stored.shape != (meta.n, height * width) or y.shape != (meta.n,) or y.dtype != np.int64
            or tuple(str(c) for c in names.tolist()) != meta.info.class_names):
        raise DatasetError(f"stored test set {name!r} does not match its metadata: import it again")
    X = stored.astype(np.float32)
    if stored.dtype == np.uint8 and meta.x_scale != 1:
        X /= np.float32(meta.x_scale)
    return TestSet(name, X, y, meta.info.image_shape, meta.info.class_names, meta.source, meta.info.value_range)


def remove_dataset(root: Path, name: str) -> None:
    """Deletes the stored test set `name` (metadata first, so it is never listed half-deleted).

    Args:
        root: the folder of user test sets.
        name: the set's name.

    Raises:
        DatasetNotFoundError: no such set.
        DatasetError: its files cannot be deleted.
    """
    root = Path(root)
    meta_path, data_path = root / f"{name}.json", root / f"{name}.npz"
    if not NAME_PATTERN.match(name or "") or not (meta_path.exists() or data_path.exists()):
        raise DatasetNotFoundError(_not_found_message(root, name))
    try:
        meta_path.unlink(missing_ok=True)
        data_path.unlink(missing_ok=True)
    except OSError as e:
        raise DatasetError(f"cannot delete test set {name!r} from {root}: {e}") from e


def dataset_sha256(root: Path, name: str) -> str:
    """The SHA-256 of the stored set's .npz, checked against the one recorded at import.

    Args:
        root: the folder of user test sets.
        name: the set's name.

    Returns:
        64 lowercase hex digits.

    Raises:
        DatasetNotFoundError: no such set.
        DatasetError: the file is missing or was changed since the import.
    """
    root = Path(root)
    meta = _meta_or_not_found(root, name)
    _verified_bytes(root, name, meta)
    return meta.sha256


# --- reading the user's files -------------------------------------------------------------------------------

def _read_files(paths: list[Path]) -> _Raw:
    for path in paths:
        _check_file(path)
    suffixes = [path.suffix.lower() for path in paths]
    if suffixes == [".npz"]:
        return _from_npz(paths[0])
    if suffixes == [".zip"]:
        return _from_zip(paths[0])
    if len(paths) == 2:
        other = next((path for path in paths if path.suffix.lower() in (".npz", ".zip")), None)
        if other is not None:  # an IDX pair is two IDX files: say so, before reading this one as IDX
            kind = other.suffix.lower()
            raise DatasetImportError(
                f"{other.name} is {'an' if kind == '.npz' else 'a'} {kind} file, given with "
                f"{next(path.name for path in paths if path is not other)}: give one {kind} alone, or an IDX "
                "images file with its labels file")
        return _from_idx(*paths)
    arrived = ", ".join(path.name for path in paths) or "no file"
    raise DatasetImportError(
        f"cannot import {arrived}: give one .npz (arrays X and y), one .zip of images in one folder per "
        "class, or two IDX files (images and labels)")


def _check_file(path: Path) -> None:
    try:
        size = path.stat().st_size
    except OSError as e:
        raise DatasetImportError(f"cannot read {path.name}: {e.strerror or e}") from e
    if not path.is_file():
        raise DatasetImportError(f"cannot read {path.name}: it is not a file")
    if size > MAX_UNPACKED_BYTES:
        raise DatasetImportError(
            f"{path.name} is {_amount(size)}: the limit is {_amount(MAX_UNPACKED_BYTES)}")


def _from_npz(path: Path) -> _Raw:
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
            _checked_members(archive, path.name)
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
    return _Raw(read["X"], read["y"], read.get("class_names"), path.name)


def _from_idx(first: Path, second: Path) -> _Raw:
    for path in (first, second):
        _check_gzip_size(path)
    arrays = [read_idx(first), read_idx(second)]
    one_dimensional = [array.ndim == 1 for array in arrays]
    if one_dimensional.count(True) != 1 or max(array.ndim for array in arrays) > 3:
        raise DatasetImportError(
            f"cannot tell images from labels: {first.name} holds {_shape(arrays[0])} and {second.name} "
            f"{_shape(arrays[1])}; expected images n x height x width and labels n")
    (images, images_path), (labels, labels_path) = sorted(
        zip(arrays, (first, second), strict=True), key=lambda pair: pair[0].ndim, reverse=True)
    return _Raw(images, labels, None, f"{images_path.name} + {labels_path.name}", idx=True)


def _check_gzip_size(path: Path) -> None:
    """Refuses a gzip'd file that unpacks past the cap, before `read_idx` unpacks it in memory."""
    with path.open("rb") as handle:
        if handle.read(2) != b"\x1f\x8b":
            return
    total = 0
    try:
        with gzip.open(path, "rb") as unpacked:
            while chunk := unpacked.read(_MIB):
                total += len(chunk)
                if total > MAX_UNPACKED_BYTES:
                    raise DatasetImportError(
                        f"{path.name} unpacks to more than {_amount(MAX_UNPACKED_BYTES)}: refused")
    except (OSError, EOFError, zlib.error) as e:
        raise DatasetImportError(f"cannot read {path.name}: it is not a valid gzip file ({e})") from e


def _from_zip(path: Path) -> _Raw:
    try:
        with zipfile.ZipFile(path) as archive:
            members, ignored = _class_members(_checked_members(archive, path.name), path.name)
            return _zip_images(archive, path.name, members, ignored)
    except (DatasetImportError, MemoryError):
        raise
    except Exception as e:  # zipfile raises many kinds on a damaged archive (BadZipFile, zlib.error, ...)
        raise DatasetImportError(f"cannot read {path.name} as a zip archive: {e}") from e


def _checked_members(archive: zipfile.ZipFile, zip_name: str) -> list[zipfile.ZipInfo]:
    """The archive's entries, once their number and unpacked size are under the caps (zip bombs).
    zipfile stops reading a member at its declared size, so the declared sizes bound what is unpacked."""
    infos = archive.infolist()
    if len(infos) > MAX_ZIP_FILES:
        raise DatasetImportError(f"{zip_name} holds {len(infos):,} files: the limit is {MAX_ZIP_FILES:,}")
    total = sum(info.file_size for info in infos)
    if total > MAX_UNPACKED_BYTES:
        raise DatasetImportError(
            f"{zip_name} unpacks to {_amount(total)}: the limit is {_amount(MAX_UNPACKED_BYTES)}")
    return infos


def _class_members(infos: list[zipfile.ZipInfo], zip_name: str
                   ) -> tuple[list[tuple[str, zipfile.ZipInfo]], int]:
    """(class folder, entry) of each image, and how many other files were ignored."""
    files: list[tuple[list[str], zipfile.ZipInfo]] = []
    for info in infos:
        parts = _safe_parts(info.filename, zip_name)
        if info.is_dir() or not parts or any(p.startswith(".") or p == "__MACOSX" for p in parts):
            continue
        files.append((parts, info))
    images = [(parts, info) for parts, info in files if PurePosixPath(parts[-1]).suffix.lower() in IMAGE_SUFFIXES]
    if not images:
        what = f"{len(files):,} other files" if files else "it is empty"
        raise DatasetImportError(
            f"{zip_name} holds no PNG or JPEG images ({what}): put each class's images in a folder named "
            "after the class")
    if len({parts[0] for parts, _ in images}) == 1 and all(len(parts) >= 3 for parts, _ in images):
        images = [(parts[1:], info) for parts, info in images]  # one common top folder
    stray = next((info.filename for parts, info in images if len(parts) != 2), None)
    if stray is not None:
        raise DatasetImportError(
            f"{zip_name}: {stray} is not directly in a class folder; expected <class>/<image>.png for every "
            "image (all under one top folder, or none)")
    return [(parts[0], info) for parts, info in images], len(files) - len(images)


def _safe_parts(filename: str, zip_name: str) -> list[str]:
    """The entry's path parts; a path that would leave the archive's folder is refused."""
    name = filename.replace("\\", "/")
    parts = [part for part in name.split("/") if part not in ("", ".")]
    if name.startswith("/") or ".." in parts or (parts and re.match(r"^[A-Za-z]:", parts[0])):
        raise DatasetImportError(
            f"{zip_name} holds {filename!r}, a path outside the archive's folder: refused; rebuild the zip "
            "with relative paths")
    return parts


def _zip_images(archive: zipfile.ZipFile, zip_name: str, members: list[tuple[str, zipfile.ZipInfo]],
                ignored: int) -> _Raw:
    """The images' sizes (from their headers) decide how all of them are read: while every image so far is
    28x28 it is read as it is in the same pass; once one is not, a second pass resizes them all."""
    rows = np.empty((len(members), MNIST_SIDE * MNIST_SIDE), dtype=np.float32)
    inverted, as_they_are = 0, True
    sizes = []
    for i, (_, info) in enumerate(members):
        label = f"{zip_name}: {info.filename}"
        raw = _image_member(archive, info, label)
        sizes.append(_image_size(raw, label))
        as_they_are = as_they_are and sizes[-1] == (MNIST_SIDE, MNIST_SIDE)
        if as_they_are:
            rows[i], was_inverted = _as_is(raw, label)
            inverted += was_inverted
    if not as_they_are:
        for (_, info), (height, width) in zip(members, sizes, strict=True):
            if max(height, width) < MIN_RESIZED_SIDE:
                raise DatasetImportError(
                    f"{zip_name}: {info.filename} is {width}x{height}, too small to resize into MNIST's form "
                    f"(a longer side of at least {MIN_RESIZED_SIDE} pixels, MNIST's digit box); a zip whose "
                    f"images are all {MNIST_SIDE}x{MNIST_SIDE} is taken as it is, and images of another size "
                    "can be kept as they are in an .npz")
        inverted = 0
        for i, (_, info) in enumerate(members):
            rows[i], was_inverted = _resized(archive.read(info), f"{zip_name}: {info.filename}")
            inverted += was_inverted
    classes = sorted({folder for folder, _ in members}, key=_natural_key)
    index = {folder: i for i, folder in enumerate(classes)}
    y = np.array([index[folder] for folder, _ in members], dtype=np.int64)
    how = (f"{MNIST_SIDE}x{MNIST_SIDE} taken as they are" if as_they_are
           else f"resized to MNIST's {MNIST_SIDE}x{MNIST_SIDE} form by preprocess.mnist_input")
    source = (f"{zip_name}: {_count(len(members), 'image')} in {_count(len(classes), 'folder')} ({how}; "
              f"{_count(inverted, 'light-background image')} inverted)")
    if ignored:
        source += f"; {_count(ignored, 'other file')} ignored"
    return _Raw(rows, y, tuple(classes), zip_name, source, unit=True)


def _image_member(archive: zipfile.ZipFile, info: zipfile.ZipInfo, label: str) -> bytes:
    """The bytes of one image in a zip, once its unpacked size and the size its header says it decodes
    to are under MAX_IMAGE_BYTES (the header is read first: nothing large is unpacked or decoded before)."""
    if info.file_size > MAX_IMAGE_BYTES:
        raise DatasetImportError(f"{label} unpacks to {_amount(info.file_size)}: the limit for one image is "
                                 f"{_amount(MAX_IMAGE_BYTES)}")
    with archive.open(info) as member:
        head = member.read(_IMAGE_HEAD_BYTES)
    if len(head) == info.file_size:
        return head
    try:
        header = _image_header(head)
    except Exception:  # the header goes on past the start read: the whole file is checked next
        header = None
    if header is not None:
        _check_image_caps(*header, label)
    return archive.read(info)


def _image_header(raw: bytes) -> tuple[int, int, str, int]:
    """(width, height, mode, bytes its decoded pixels take) from an image's header, without decoding it.
    Raises what Pillow raises for a file it cannot read."""
    from PIL import Image

    with Image.open(io.BytesIO(raw)) as image:
        per_band = 4 if image.mode in ("I", "F") else 2 if ";16" in image.mode else 1
        width, height = image.size
        return width, height, image.mode, width * height * len(image.getbands()) * per_band


def _check_image_caps(width: int, height: int, mode: str, decoded: int, label: str) -> None:
    if width * height > MAX_IMAGE_PIXELS:
        raise DatasetImportError(
            f"{label} is {width}x{height} pixels: the limit is {MAX_IMAGE_PIXELS:,} pixels per image")
    if decoded > MAX_IMAGE_BYTES:
        raise DatasetImportError(
            f"{label} is {width}x{height} pixels of mode {mode}, {_amount(decoded)} once decoded: the limit for "
            f"one image is {_amount(MAX_IMAGE_BYTES)}")


def _image_size(raw: bytes, label: str) -> tuple[int, int]:
    """(height, width) from the image's header, without decoding its pixels."""
    try:
        header = _image_header(raw)
    except Exception as e:  # Pillow raises many kinds on malformed files: all mean "not a readable image"
        raise DatasetImportError(
            f"{label} is not an image that can be read ({len(raw):,} bytes starting {raw[:8]!r}): {e}") from e
    _check_image_caps(*header, label)
    return header[1], header[0]


def _as_is(raw: bytes, label: str) -> tuple[np.ndarray, bool]:
    """A 28x28 image as a row in [0, 1], ink bright on black (inverted when its border is light)."""
    pixels = _decoded(raw, label)
    if pixels.dtype == np.uint8 and pixels.ndim == 2:  # 8-bit gray: invert in integers, so it stays exact
        inverted = bool(np.median(_border(pixels)) > 127.5)
        values = (255 - pixels if inverted else pixels).astype(np.float32) / np.float32(255.0)
    else:
        values = grayscale(pixels)
        inverted = bool(np.median(_border(values)) > 0.5)
        values = 1.0 - values if inverted else values
    return values.reshape(-1), inverted


def _resized(raw: bytes, label: str) -> tuple[np.ndarray, bool]:
    try:
        digit = mnist_input(raw, size=MNIST_SIDE)
    except UserImageError as e:
        raise DatasetImportError(f"{label}: {e}") from e
    return digit.row, digit.inverted


def _decoded(raw: bytes, label: str) -> np.ndarray:
    try:
        return decode_image(raw)
    except UserImageError as e:
        raise DatasetImportError(f"{label}: {e}") from e


def _border(pixels: np.ndarray) -> np.ndarray:
    return np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])


# --- checks and normalisation ---------------------------------------------------------------------------------

def _normalised(raw: _Raw, declared: tuple[float, float] | None = None,
                image_shape: tuple[int, int] | None = None,
                rescale_to: tuple[float, float] | None = None) -> _Prepared:
    """The TestSet form of what was read, or a DatasetImportError saying what is wrong with it."""
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
            f"{origin}: X has shape {_shape(X)}; expected images (n, height, width) or rows (n, height*width)")
    if n == 0:
        raise DatasetImportError(f"{origin}: X holds no images: the test set would be empty")
    if height * width == 0 or height * width > MAX_ROW_VALUES:
        raise DatasetImportError(
            f"{origin}: images of {height}x{width} pixels; they must have 1 to {MAX_ROW_VALUES:,} pixels (64x64)")
    if n > MAX_ROWS or n * height * width > MAX_VALUES:
        raise DatasetImportError(
            f"{origin}: {n:,} images of {height}x{width}: the limit is {MAX_ROWS:,} images and "
            f"{MAX_VALUES:,} pixel values in all")
    if y.ndim != 1:
        raise DatasetImportError(f"{origin}: y has shape {_shape(y)}; expected one label per image, shape ({n},)")
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
    return _Prepared(values, labels, (height, width), class_names, source, value_range)


def _values(X: np.ndarray, raw: _Raw, declared: tuple[float, float] | None
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
    if raw.idx and X.dtype == np.uint8:
        return values / np.float32(255.0), UNIT_RANGE, "in [0, 1] (8-bit IDX pixels over 255, as MNIST's loader)"
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
            names = _checked_names(sorted(set(values), key=_natural_key), origin)
        unknown = sorted(set(values) - set(names), key=_natural_key)
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
        if high >= MAX_CLASSES:
            raise DatasetImportError(
                f"{origin}: labels run up to {high}, which would make {high + 1:,} classes: the limit is "
                f"{MAX_CLASSES:,}")
        names = tuple(str(i) for i in range(high + 1))
    return y.astype(np.int64), names


def _class_names(given: np.ndarray | tuple[str, ...], origin: str) -> tuple[str, ...]:
    array = np.asarray(given)
    if array.ndim != 1 or array.dtype.kind not in "USiu":
        raise DatasetImportError(
            f"{origin}: class_names is {array.dtype} of shape {_shape(array)}; expected a list of strings")
    return _checked_names([_text(value, origin, "class_names") for value in array.tolist()], origin)


def _checked_names(names: list[str], origin: str) -> tuple[str, ...]:
    if not names or len(names) > MAX_CLASSES:
        raise DatasetImportError(f"{origin}: {len(names):,} class names; expected 1 to {MAX_CLASSES:,}")
    bad = next((name for name in names if not name.strip() or len(name) > MAX_TITLE or "\n" in name), None)
    if bad is not None:
        raise DatasetImportError(
            f"{origin}: class name {bad[:40]!r} is empty, too long or spans lines; expected 1 to {MAX_TITLE} "
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


def _checked_title(title: str) -> str:
    title = " ".join(str(title or "").split())
    if len(title) > MAX_TITLE:
        raise DatasetImportError(f"the title is {len(title)} characters long: the limit is {MAX_TITLE}")
    return title


def _natural_key(text: str) -> tuple[tuple[int | str, ...], str]:
    """Sorts "2" before "10" and "img9" before "img10": digit runs compare as numbers."""
    parts = re.split(r"(\d+)", text)
    return tuple(int(part) if i % 2 else part.lower() for i, part in enumerate(parts)), text


def _shape(array: np.ndarray) -> str:
    return "(" + ", ".join(f"{d}" for d in array.shape) + ")"


def _count(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def _amount(size: int) -> str:
    return f"{size / _MIB:,.1f} MiB" if size >= _MIB else f"{size:,} bytes"


def _listed(names: Sequence[str], limit: int = 10) -> str:
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


# --- storage --------------------------------------------------------------------------------------------------

def _store(root: Path, name: str, title: str, prepared: _Prepared, *, replace: bool) -> DatasetInfo:
    X = prepared.X
    x_scale = 255 if prepared.value_range == UNIT_RANGE else 1
    with np.errstate(invalid="ignore"):  # out-of-byte values cast to some byte: the comparison fails them
        as_bytes = np.rint(X * np.float32(x_scale)).astype(np.uint8)
    stored = as_bytes if np.array_equal(as_bytes.astype(np.float32) / np.float32(x_scale), X) else X
    names = np.array(prepared.class_names, dtype=str)
    try:
        if not root.is_dir():
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            root.chmod(0o700)  # mkdir's mode is masked by the umask
        if not replace and (root / f"{name}.json").exists():  # stored meanwhile
            raise DatasetExistsError(f"a test set named {name!r} exists already: choose another name, or replace it")
        with atomic_write(root / f"{name}.npz") as handle:
            np.savez_compressed(handle, allow_pickle=False, X=stored, y=prepared.y, class_names=names)
            handle.seek(0)
            sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        meta = {"format": FORMAT_VERSION, "name": name, "title": title, "source": prepared.source,
                "image_shape": list(prepared.image_shape), "class_names": list(prepared.class_names),
                "value_range": list(prepared.value_range), "n": len(prepared.y), "x_dtype": str(stored.dtype),
                "x_scale": x_scale if stored.dtype == np.uint8 else 1, "sha256": sha256,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
        with atomic_write(root / f"{name}.json") as handle:
            handle.write(json.dumps(meta, indent=2, ensure_ascii=False).encode() + b"\n")
    except OSError as e:
        raise DatasetError(f"cannot store test set {name!r} in {root}: {e}") from e
    return DatasetInfo(name, title or name, prepared.image_shape, prepared.class_names, True, prepared.value_range)


def _meta_or_not_found(root: Path, name: str) -> _Meta:
    if not NAME_PATTERN.match(name or "") or not (root / f"{name}.json").is_file():
        raise DatasetNotFoundError(_not_found_message(root, name))
    return _read_meta(root, name)


def _read_meta(root: Path, name: str) -> _Meta:
    path = root / f"{name}.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        height, width = (int(side) for side in meta["image_shape"])
        class_names = tuple(str(c) for c in meta["class_names"])
        low, high = (float(v) for v in meta.get("value_range", UNIT_RANGE))  # format 1: every set in [0, 1]
        info = DatasetInfo(name, str(meta.get("title") or name), (height, width), class_names, True, (low, high))
        sha256 = str(meta["sha256"])
        return _Meta(info, str(meta.get("source", "")), int(meta["n"]), sha256, int(meta.get("x_scale", 255)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # not JSON, or not the fields
        raise DatasetError(f"the metadata of test set {name!r} ({path}) cannot be read ({e}): import it again") from e


def _verified_bytes(root: Path, name: str, meta: _Meta) -> bytes:
    path = root / f"{name}.npz"
    try:
        raw = path.read_bytes()
    except OSError as e:
        raise DatasetError(f"the data of test set {name!r} cannot be read ({e.strerror or e}): import it again") from e
    if hashlib.sha256(raw).hexdigest() != meta.sha256:
        raise DatasetError(
            f"the data of test set {name!r} ({path}) changed since it was imported (its SHA-256 differs from "
            "the one recorded): import it again")
    return raw


def _not_found_message(root: Path, name: str) -> str:
    stored = [info.name for info in user_catalogue(root)]
    known = f"the stored ones are {', '.join(stored)}" if stored else "none is stored yet"
    return f"no user test set named {name!r}: {known} (built in: {', '.join(DATASET_NAMES)})"
