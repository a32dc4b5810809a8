"""A user's own test sets, kept under `root` (`$MODELDECK_HOME/datasets`), two files per set:

    import_dataset(root, name, files) -> <root>/<name>.npz + <root>/<name>.json
    user_catalogue(root), load_user_dataset(root, name), remove_dataset(root, name), dataset_sha256(root, name),
    revision(root, name)

Each file is 0600 and written whole to a temporary file in `root`, then renamed in:
- `<name>.npz` (numpy, no object arrays: read back with allow_pickle=False): `X` (n, height*width) as uint8
  when dividing by `x_scale` (255 for a set in [0, 1], 1 for whole numbers 0-255) gives back the imported
  float32 rows exactly (every 8-bit image set does), else as float32 (not float16: a stored set loads back
  bit for bit); `y` int64; `class_names` str.
  A table (CSV or Parquet) is kept as float32 `X` (its columns) with `feature_names` str, and its text
  columns' categories as `categories`, a JSON text ({column: [category, ...]}; X holds indices into them).
- `<name>.json`: format, name, title, source, image_shape (null for a table), feature_names and categories (a table's),
  class_names, value_range, n, x_dtype, x_scale, sha256 (of the .npz), created_at (ISO 8601, UTC). A format-1
  set (no value_range) is in [0, 1]. It is written after the .npz, so a set is listed once its data is in place.
  While a set is being replaced, a reader can briefly see the new .npz with the old .json: the checksum
  then fails and the load says so. Two imports of one name at once are not serialised: the last one wins.
"""

from __future__ import annotations

import hashlib
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..errors import (
    DatasetError,
    DatasetExistsError,
    DatasetImportError,
    DatasetNotFoundError,
    InvalidDatasetNameError,
)
from ..files import atomic_write
from ..staging import staging_dir
from .builtin import DATASET_NAMES
from .cases import SET_NAMES
from .normalise import checked_title, normalised
from .testset import UNIT_RANGE, Categories, DatasetInfo, TestSet
from .uploads import formats_named, read_upload

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{1,61}[a-z0-9]$")
"""A user test set's name: the deployment-name rule, with '_' allowed too."""
FORMAT_VERSION = 3  # 3: tables


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
    if SET_NAMES.match(name):
        raise InvalidDatasetNameError(f"test set name {name!r} is kept for flagged cases (`modeldeck cases`): choose "
                                      "another name")
    if name in DATASET_NAMES:
        raise InvalidDatasetNameError(
            f"test set name {name!r} is a built-in set's ({', '.join(DATASET_NAMES)}): choose another name")
    return name


def import_dataset(root: Path, name: str, files: Sequence[Path], title: str = "", *,
                   replace: bool = False, value_range: tuple[float, float] | None = None,
                   image_shape: tuple[int, int] | None = None,
                   rescale_to: tuple[float, float] | None = None, label: str | None = None) -> DatasetInfo:
    """Reads a user's files as a test set (in one of `uploads.FORMATS`) and stores it as `<root>/<name>.npz`
    + `.json`, its values kept in their range unless `rescale_to` is asked (see `normalise.normalised`).

    Args:
        root: the folder of user test sets, created 0700 when missing.
        name: the set's name (see `validate_dataset_name`).
        files: the uploaded files.
        title: for people; the name stands in when empty.
        replace: overwrite a set of the same name instead of refusing.
        value_range: (low, high) of the values, declared; None reads it from the data.
        image_shape: (height, width) of rows of height*width values (needed when they are not square).
        rescale_to: (low, high) to map the set's range onto, when asked; None keeps the values.
        label: a table's label column (CSV or Parquet); images carry their labels.

    Returns:
        The stored set as the catalogue lists it.

    Raises:
        InvalidDatasetNameError: the name breaks the rule or is a built-in set's.
        DatasetExistsError: a set of that name is stored and `replace` is false.
        DatasetImportError: the files are unreadable, in no accepted format, too big, or hold invalid data
            (the message names the file and says what arrived).
        IdxFormatError: an IDX file is malformed.
        DatasetError: the set cannot be written under `root`.
    """
    validate_dataset_name(name)
    title = checked_title(title)
    root = Path(root)
    if not replace and (root / f"{name}.json").exists():
        raise DatasetExistsError(
            f"a test set named {name!r} exists already: choose another name, or replace it")
    testset = normalised(read_upload([Path(f) for f in files], label), name, value_range, image_shape, rescale_to)
    return _store(root, title, testset, replace=replace)


def import_uploaded(root: Path, name: str, files: dict[str, bytes], title: str, staging: Path, *,
                    replace: bool = False, value_range: tuple[float, float] | None = None,
                    rescale_to: tuple[float, float] | None = None,
                    image_shape: tuple[int, int] | None = None, label: str | None = None) -> DatasetInfo:
    """`import_dataset` for uploaded files ({file name: content}), staged privately under `staging`
    (swept if this process dies), with an optional declared `value_range`, `image_shape`, asked-for
    `rescale_to` and a table's `label` column. Same errors, and DatasetImportError when nothing was uploaded."""
    if not files:
        raise DatasetImportError(f"nothing to add: choose {formats_named()}")
    with staging_dir(staging) as folder:
        paths = []
        for filename, content in files.items():
            path = folder / (Path(filename).name or "upload")
            path.write_bytes(content)
            paths.append(path)
        return import_dataset(root, name, paths, title, replace=replace, value_range=value_range,
                              rescale_to=rescale_to, image_shape=image_shape, label=label)


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
        X float32 (n, height*width) in the set's value range, or a table's columns; y int64; as imported.

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
            features = tuple(str(f) for f in npz["feature_names"].tolist()) if "feature_names" in npz.files else None
            categories = _categories(json.loads(str(npz["categories"]))) if "categories" in npz.files else ()
    except Exception as e:  # numpy and zipfile raise many kinds on a damaged file
        raise DatasetError(f"stored test set {name!r} cannot be read ({e}): import it again") from e
    if (stored.shape != (meta.n, meta.info.n_features) or y.shape != (meta.n,) or y.dtype != np.int64
            or tuple(str(c) for c in names.tolist()) != meta.info.class_names
            or features != meta.info.feature_names or categories != meta.info.categories):
        raise DatasetError(f"stored test set {name!r} does not match its metadata: import it again")
    X = stored.astype(np.float32)
    if stored.dtype == np.uint8 and meta.x_scale != 1:
        X /= np.float32(meta.x_scale)
    return TestSet(name, X, y, meta.info.image_shape, meta.info.class_names, meta.source, meta.info.value_range,
                   feature_names=features, categories=categories)


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


def revision(root: Path, name: str) -> int:
    """A number that changes when the user's set `name` is replaced (0 for a built-in set or none stored):
    what a page caches a loaded set on."""
    try:
        return (Path(root) / f"{name}.npz").stat().st_mtime_ns
    except OSError:
        return 0


# --- storage --------------------------------------------------------------------------------------------------

def _store(root: Path, title: str, testset: TestSet, *, replace: bool) -> DatasetInfo:
    name = testset.name
    X = testset.X
    x_scale = 255 if testset.value_range == UNIT_RANGE else 1
    with np.errstate(invalid="ignore"):  # out-of-byte values cast to some byte: the comparison fails them
        as_bytes = np.rint(X * np.float32(x_scale)).astype(np.uint8)
    fits_bytes = not testset.is_table and np.array_equal(as_bytes.astype(np.float32) / np.float32(x_scale), X)
    stored = as_bytes if fits_bytes else X
    names = np.array(testset.class_names, dtype=str)
    table = {} if testset.feature_names is None else {"feature_names": np.array(testset.feature_names, dtype=str)}
    if testset.categories:
        table["categories"] = np.array(json.dumps(testset.categories_of(), ensure_ascii=False))
    try:
        if not root.is_dir():
            root.mkdir(parents=True, exist_ok=True, mode=0o700)
            root.chmod(0o700)  # mkdir's mode is masked by the umask
        if not replace and (root / f"{name}.json").exists():  # stored meanwhile
            raise DatasetExistsError(f"a test set named {name!r} exists already: choose another name, or replace it")
        with atomic_write(root / f"{name}.npz") as handle:
            np.savez_compressed(handle, allow_pickle=False, X=stored, y=testset.y, class_names=names, **table)
            handle.seek(0)
            sha256 = hashlib.file_digest(handle, "sha256").hexdigest()
        meta = {"format": FORMAT_VERSION, "name": name, "title": title, "source": testset.source,
                "image_shape": list(testset.image_shape) if testset.image_shape is not None else None,
                "feature_names": list(testset.feature_names) if testset.feature_names is not None else None,
                **({"categories": testset.categories_of()} if testset.categories else {}),
                "class_names": list(testset.class_names),
                "value_range": list(testset.value_range), "n": len(testset.y), "x_dtype": str(stored.dtype),
                "x_scale": x_scale if stored.dtype == np.uint8 else 1, "sha256": sha256,
                "created_at": datetime.now(UTC).isoformat(timespec="seconds")}
        with atomic_write(root / f"{name}.json") as handle:
            handle.write(json.dumps(meta, indent=2, ensure_ascii=False).encode() + b"\n")
    except OSError as e:
        raise DatasetError(f"cannot store test set {name!r} in {root}: {e}") from e
    return DatasetInfo(name, title or name, testset.image_shape, testset.class_names, True, testset.value_range,
                       feature_names=testset.feature_names, categories=testset.categories)


def _meta_or_not_found(root: Path, name: str) -> _Meta:
    if not NAME_PATTERN.match(name or "") or not (root / f"{name}.json").is_file():
        raise DatasetNotFoundError(_not_found_message(root, name))
    return _read_meta(root, name)


def _read_meta(root: Path, name: str) -> _Meta:
    path = root / f"{name}.json"
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
        features = meta.get("feature_names")
        feature_names = tuple(str(f) for f in features) if features is not None else None
        image_shape = None if feature_names is not None else _pair(meta["image_shape"])
        class_names = tuple(str(c) for c in meta["class_names"])
        low, high = (float(v) for v in meta.get("value_range", UNIT_RANGE))  # format 1: every set in [0, 1]
        info = DatasetInfo(name, str(meta.get("title") or name), image_shape, class_names, True, (low, high),
                           feature_names=feature_names, categories=_categories(meta.get("categories") or {}))
        sha256 = str(meta["sha256"])
        return _Meta(info, str(meta.get("source", "")), int(meta["n"]), sha256, int(meta.get("x_scale", 255)))
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:  # not JSON, or not the fields
        raise DatasetError(f"the metadata of test set {name!r} ({path}) cannot be read ({e}): import it again") from e


def _categories(stored: dict[str, list[str]]) -> Categories:
    return tuple((str(column), tuple(str(c) for c in known)) for column, known in stored.items())


def _pair(sides: list[int]) -> tuple[int, int]:
    height, width = (int(side) for side in sides)
    return height, width


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
