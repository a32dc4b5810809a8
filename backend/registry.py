"""The model registry: versioned models, their files stored by sha256, and metadata, in SQLite."""

from __future__ import annotations

import builtins
import fcntl
import hashlib
import json
import os
import platform
import re
import shutil
import sqlite3
import time
from collections.abc import Sequence
from contextlib import closing
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from .errors import ChecksumMismatchError, DuplicateModelError, ModelNotFoundError, RegistryError
from .files import TEMP_SUFFIX, atomic_write, file_sha256
from .staging import STAGING_DIR, staging_dir

TRACKED_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib")
_NAME_CHARS = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS models (
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    framework TEXT NOT NULL,
    files TEXT NOT NULL,
    library_versions TEXT NOT NULL,
    tags TEXT NOT NULL,
    description TEXT NOT NULL,
    metrics TEXT NOT NULL,
    created_at TEXT NOT NULL,
    signature TEXT NOT NULL DEFAULT '{}',
    PRIMARY KEY (name, version)
)
"""
_COLUMNS = ("name", "version", "framework", "files", "library_versions", "tags", "description", "metrics",
            "created_at", "signature")


@dataclass(frozen=True)
class ModelFile:
    """One file of a model, as stored: its name in the model folder, sha256 and size."""

    name: str
    sha256: str
    size: int


@dataclass(frozen=True)
class Signature:
    """What a model takes and gives: known at training for the sample models, declared for an upload,
    confirmed by the scoring server (which loads the model) at its first deployment.

    Attributes:
        n_features: values per input row (784 for 28x28 images).
        image_shape: (height, width) when a row is an image.
        value_range: (low, high) of input values.
        class_labels: the model's classes, in its own order.
        feature_names: the names of a row's values, in order, where the model was fitted on named columns
            (scikit-learn's `feature_names_in_`, reported by the scoring server).
        source: where the facts come from ("training", "declared at registration",
            "confirmed by deployment NAME").
        categories: (column, its categories) for the named columns the model takes as text (its pipeline encodes
            them), as the scoring server found them; None when it takes numbers only.
    """

    n_features: int | None = None
    image_shape: tuple[int, int] | None = None
    value_range: tuple[float, float] | None = None
    class_labels: tuple[str, ...] | None = None
    feature_names: tuple[str, ...] | None = None
    source: str = ""
    categories: tuple[tuple[str, tuple[str, ...]], ...] | None = None

    def categories_of(self) -> dict[str, tuple[str, ...]]:
        """{column: its categories} for the columns the model takes as text ({} for numbers only)."""
        return dict(self.categories or ())

    @property
    def known(self) -> bool:
        return self.n_features is not None

    def describe(self) -> str:
        """ "28x28 image (784 values) in [0, 1] → 10 classes: 0, 1, ..." for people."""
        if not self.known:
            return "input signature unknown (recorded at the first deployment)"
        shape = self._shape()
        if self.image_shape:
            shape += f" image ({self.n_features} values)"
        elif self.feature_names:
            shape += " (" + ", ".join(self.feature_names[:3]) + (", ..." if len(self.feature_names) > 3 else "") + ")"
            if self.categories:
                shape += f"; {', '.join(name for name, _ in self.categories[:3])} as text"
        values = f" in [{self.value_range[0]:g}, {self.value_range[1]:g}]" if self.value_range else ""
        classes = ""
        if self.class_labels:
            shown = ", ".join(self.class_labels[:10]) + (", ..." if len(self.class_labels) > 10 else "")
            classes = f" → {len(self.class_labels)} classes: {shown}"
        return shape + values + classes

    def summary(self) -> str:
        """ "28x28 → 10 classes", "30 named features → 2 classes": `describe` in a table's cell."""
        if not self.known:
            return "unknown yet"
        return self._shape() + (f" → {len(self.class_labels)} classes" if self.class_labels else "")

    def _shape(self) -> str:
        if self.image_shape:
            return f"{self.image_shape[0]}x{self.image_shape[1]}"
        return f"{self.n_features} named features" if self.feature_names else f"{self.n_features} values"

    def to_dict(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "image_shape": list(self.image_shape) if self.image_shape else None,
                "value_range": list(self.value_range) if self.value_range else None,
                "class_labels": list(self.class_labels) if self.class_labels is not None else None,
                "feature_names": list(self.feature_names) if self.feature_names is not None else None,
                "source": self.source,
                "categories": {name: list(known) for name, known in self.categories} if self.categories else None}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Signature":
        shape, values, labels = data.get("image_shape"), data.get("value_range"), data.get("class_labels")
        names = data.get("feature_names")
        return cls(n_features=data.get("n_features"),
                   image_shape=(int(shape[0]), int(shape[1])) if shape else None,
                   value_range=(float(values[0]), float(values[1])) if values else None,
                   class_labels=tuple(map(str, labels)) if labels is not None else None,
                   feature_names=tuple(map(str, names)) if names is not None else None,
                   source=str(data.get("source", "")), categories=_categories(data.get("categories")))


def _categories(found: Any) -> tuple[tuple[str, tuple[str, ...]], ...] | None:
    """{column: [category, ...]} (from JSON or a server's /info) as a Signature holds it; None for anything else."""
    if not isinstance(found, dict) or not found:
        return None
    if not all(isinstance(known, list) and all(isinstance(v, str) for v in known) for known in found.values()):
        return None
    return tuple((str(name), tuple(known)) for name, known in found.items())


CLASS_NAMES_FILE = "modeldeck-class-names.json"
"""Beside a deployed model's files: the class names given for it (see serving/score_sklearn.py)."""


def served_class_names(signature: Signature) -> tuple[str, ...] | None:
    """The class names a deployment should answer instead of the numbers 0..n-1: the signature's labels
    when they are not just those numbers; None otherwise."""
    labels = signature.class_labels
    if not labels or labels == tuple(str(i) for i in range(len(labels))):
        return None
    return labels


def parse_value_range(text: str) -> tuple[float, float] | None:
    """(low, high) from "0-1", "0,255", "0..16" or "-1 to 1"; None for an empty text.

    Raises:
        RegistryError: not two numbers, or the low end not below the high end.
    """
    if not text.strip():
        return None
    parts = [v for v in re.split(r"\s*(?:,|\.\.|(?<=\d)-|\bto\b)\s*", text.strip()) if v]
    try:
        low, high = (float(v) for v in parts)
    except ValueError:
        raise RegistryError(f"value range {text!r} is not valid: give LOW-HIGH, like 0-1 or 0-255") from None
    if not low < high:
        raise RegistryError(f"value range {text!r}: the low end must be below the high end")
    return low, high


def parse_image_shape(text: str) -> tuple[int, int] | None:
    """(height, width) from "8x12"; None for an empty text.

    Raises:
        RegistryError: not HEIGHTxWIDTH.
    """
    if not text.strip():
        return None
    sides = re.fullmatch(r"\s*(\d+)\s*[x×]\s*(\d+)\s*", text.lower())
    if sides is None or 0 in (height := int(sides.group(1)), width := int(sides.group(2))):
        raise RegistryError(f"image shape {text.strip()!r} is not valid: give HEIGHTxWIDTH, like 8x8 or 5x6")
    return height, width


def parse_signature(shape: str, value_range: str = "", classes: str = "", *,
                    source: str = "declared at registration", feature_names: tuple[str, ...] | None = None) -> Signature:
    """A Signature from what a person types: shape "28x28" or "784", range "0-1" or "0,255",
    classes "0-9" or "cat, dog", and the names of a table model's columns. Empty shape and no names: unknown
    signature.

    Raises:
        RegistryError: a part that cannot be read, saying what was expected.
    """
    shape = shape.strip().lower()
    if feature_names is not None:
        if re.fullmatch(r"\d+\s*x\s*\d+", shape):
            raise RegistryError(f"named columns are a table's input, not a {shape} image's: give one or the other")
        if shape and shape != str(len(feature_names)):
            raise RegistryError(f"the input shape says {shape} values, and {len(feature_names)} columns are named")
        shape = str(len(feature_names))
    if not shape:
        return Signature()
    image_shape = None
    if re.fullmatch(r"\d+\s*x\s*\d+", shape):
        height, width = (int(v) for v in shape.split("x"))
        image_shape, n_features = (height, width), height * width
    elif shape.isdigit():
        n_features = int(shape)
    else:
        raise RegistryError(f"input shape {shape!r} is not valid: give HEIGHTxWIDTH (like 28x28) or a feature "
                            "count (like 784)")
    if n_features < 1:
        raise RegistryError("the input must have at least one value")
    bounds = parse_value_range(value_range)
    labels = None
    if classes.strip():
        text = classes.strip()
        span = re.fullmatch(r"(\d+)\s*-\s*(\d+)", text)
        if span and int(span.group(1)) < int(span.group(2)):
            labels = tuple(str(i) for i in range(int(span.group(1)), int(span.group(2)) + 1))
        else:
            labels = tuple(label.strip() for label in text.split(",") if label.strip())
        if len(labels) < 2:
            raise RegistryError(f"classes {classes!r}: give at least two labels (like 0-9 or cat, dog)")
    return Signature(n_features, image_shape, bounds, labels, feature_names, source=source)


@dataclass(frozen=True)
class Model:
    """A registered model version."""

    name: str
    version: int
    framework: str
    files: tuple[ModelFile, ...]
    library_versions: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    created_at: str = ""
    signature: Signature = field(default_factory=Signature)

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def sha256(self) -> str:
        """The model sha256, one digest for the whole model: of its files' names and sha256s (so a model
        with a score.py beside its pickle has one too). Shown as "model sha256" everywhere; each file's
        own digest is its "file sha256"."""
        joined = "\n".join(f"{f.name}\0{f.sha256}" for f in sorted(self.files, key=lambda f: f.name))
        return hashlib.sha256(joined.encode()).hexdigest()

    @property
    def sklearn_version(self) -> str | None:
        return self.library_versions.get("scikit-learn")


@dataclass(frozen=True)
class NewModel:
    """A model to register: the arguments of `ModelRegistry.register`, for `register_all`."""

    name: str
    paths: tuple[Path, ...]
    framework: str = "scikit-learn"
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    metrics: dict[str, float] = field(default_factory=dict)
    library_versions: dict[str, str] | None = None  # None: this environment's
    signature: Signature | None = None


def current_library_versions() -> dict[str, str]:
    """The versions of python and of the tracked libraries in this environment."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def parse_tags(text: str) -> dict[str, str]:
    """ "team=vision, stage=demo" -> {"team": "vision", "stage": "demo"} (commas or new lines between pairs).

    Raises:
        RegistryError: a pair without '=' or with an empty key.
    """
    tags = {}
    for pair in text.replace("\n", ",").split(","):
        if not pair.strip():
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key.strip():
            raise RegistryError(f"tag {pair.strip()!r} is not key=value")
        tags[key.strip()] = value.strip()
    return tags


def parse_model_ref(ref: str) -> tuple[str, int | None]:
    """Splits "name" or "name:version" into (name, version or None).

    Raises:
        RegistryError: the version is not a positive whole number.
    """
    name, sep, version = ref.partition(":")
    if not sep:
        return name, None
    if not version.isdigit() or int(version) < 1:
        raise RegistryError(f"model version in {ref!r} must be a positive whole number")
    return name, int(version)


PARTIAL_QUIET_SECONDS = 60.0  # and unwritten this long (a writer of an older ModelDeck takes no lock)


def sweep_partial_blobs(blobs_dir: Path) -> list[Path]:
    """Removes the `.<sha256>.*.tmp` copies that a registration killed mid-copy left in `blobs_dir`: those
    whose writer is gone (no process holds their lock) and unwritten for PARTIAL_QUIET_SECONDS. Returns them."""
    removed = []
    for partial in blobs_dir.glob(f".*{TEMP_SUFFIX}"):
        try:
            fd = os.open(partial, os.O_RDONLY)
        except OSError:
            continue  # renamed into place, or removed, meanwhile
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            if time.time() - os.fstat(fd).st_mtime > PARTIAL_QUIET_SECONDS:
                partial.unlink(missing_ok=True)
                removed.append(partial)
        except OSError:  # BlockingIOError: its writer holds the lock
            pass
        finally:
            os.close(fd)
    return removed


class ModelRegistry:
    """Models in SQLite at `db_path`; their files in `blobs_dir`, named by sha256 (partial copies of a
    registration that was killed are swept at start, see `sweep_partial_blobs`)."""

    def __init__(self, db_path: Path, blobs_dir: Path) -> None:
        self.db_path = Path(db_path)
        self.blobs_dir = Path(blobs_dir)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        sweep_partial_blobs(self.blobs_dir)
        with closing(self._connect()) as conn, conn:
            conn.execute(_SCHEMA)
            if self.db_path.stat().st_mode & 0o077:  # only its owner reads the registry
                self.db_path.chmod(0o600)
            columns = {row[1] for row in conn.execute("PRAGMA table_info(models)")}
            if "signature" not in columns:  # a registry made before signatures were recorded
                conn.execute("ALTER TABLE models ADD COLUMN signature TEXT NOT NULL DEFAULT '{}'")

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def register(self, name: str, paths: list[Path], *, framework: str = "scikit-learn",
                 tags: dict[str, str] | None = None, description: str = "",
                 metrics: dict[str, float] | None = None,
                 library_versions: dict[str, str] | None = None,
                 signature: Signature | None = None) -> Model:
        """Stores the files and records the next version of `name`.

        Args:
            name: model name (letters, digits, `_`, `.`, `-`).
            paths: the model's files; each keeps its base name in the model folder.
            library_versions: defaults to the versions of this environment.
            signature: what the model takes and gives, where known.

        Returns:
            The new Model, version 1 for a new name, else the latest version + 1.

        Raises:
            RegistryError: bad name, no files, a missing file, or two files with one name.
            DuplicateModelError: a version of `name` holds exactly these files already.
        """
        return self.register_all([NewModel(name, tuple(map(Path, paths)), framework=framework, tags=tags or {},
                                           description=description, metrics=metrics or {},
                                           library_versions=library_versions, signature=signature)])[0]

    def register_all(self, models: Sequence[NewModel], *, only_into_empty: bool = False) -> builtins.list[Model]:
        """Registers every one of `models`, in order, in one transaction: all of them or none.

        Args:
            models: each gets the next version of its name (two of one name: consecutive versions).
            only_into_empty: register nothing, and return [], when the registry holds any model
                already: of two first runs at once, the first to get here registers, the other adds nothing.

        Returns:
            The new Models, in the order given.

        Raises:
            RegistryError, DuplicateModelError: as `register`, for any one of them (then none is registered).
        """
        stored = [(new, self._store(new)) for new in models]
        created = datetime.now(UTC).isoformat(timespec="seconds")
        added: builtins.list[tuple[str, int]] = []
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")  # one writer at a time: versions are read and taken atomically
            try:
                if only_into_empty and conn.execute("SELECT 1 FROM models LIMIT 1").fetchone():
                    conn.execute("ROLLBACK")
                    return []
                for new, files in stored:
                    added.append((new.name, _insert(conn, new, files, created)))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return [self.get(name, version) for name, version in added]

    def _store(self, new: NewModel) -> tuple[ModelFile, ...]:
        """Checks `new` and copies its files into the blob store (by sha256; idempotent)."""
        name = new.name
        if not name or len(name) > 100 or not set(name) <= _NAME_CHARS or name[0] in ".-":
            raise RegistryError(
                f"model name {name!r} is not valid: use 1-100 letters, digits, '_', '.' or '-', "
                "starting with a letter, digit or '_'")
        if not new.paths:
            raise RegistryError("a model needs at least one file")
        files = []
        for path in map(Path, new.paths):
            if not path.is_file():
                raise RegistryError(f"model file {path} does not exist")
            digest = file_sha256(path)
            blob = self.blobs_dir / digest
            if not blob.exists():
                with atomic_write(blob) as partial, open(path, "rb") as source:
                    fcntl.flock(partial.fileno(), fcntl.LOCK_EX)  # held while it is written: the sweep leaves it alone
                    shutil.copyfileobj(source, partial, 1 << 20)
            files.append(ModelFile(path.name, digest, path.stat().st_size))
        if len({f.name for f in files}) != len(files):
            raise RegistryError("two model files have the same name: " + ", ".join(f.name for f in files))
        return tuple(files)

    def register_bytes(self, name: str, files: dict[str, bytes], **kwargs: Any) -> Model:
        """`register` for uploaded files: {file name: content}. Same arguments and errors."""
        # Staged in the home (private, swept if this process dies), not in the world's /tmp
        with staging_dir(self.blobs_dir.parent / STAGING_DIR) as tmp:
            paths = []
            for filename, content in files.items():
                safe = Path(filename).name
                if not safe or safe in (".", ".."):
                    raise RegistryError(f"file name {filename!r} is not valid")
                path = tmp / safe
                path.write_bytes(content)
                paths.append(path)
            return self.register(name, paths, **kwargs)

    def get(self, name: str, version: int | None = None) -> Model:
        """The model `name` at `version` (default: the latest).

        Raises:
            ModelNotFoundError: no such model or version.
        """
        with closing(self._connect()) as conn:
            if version is None:
                row = conn.execute("SELECT * FROM models WHERE name = ? ORDER BY version DESC LIMIT 1",
                                   (name,)).fetchone()
            else:
                row = conn.execute("SELECT * FROM models WHERE name = ? AND version = ?",
                                   (name, version)).fetchone()
        if row is None:
            what = f"{name}:{version}" if version is not None else name
            known = ", ".join(m.id for m in self.list()) or "none"
            raise ModelNotFoundError(f"model {what!r} is not registered (registered: {known})")
        return _row_to_model(row)

    def get_ref(self, ref: str) -> Model:
        """The model for "name" or "name:version"."""
        return self.get(*parse_model_ref(ref))

    def list(self) -> builtins.list[Model]:
        """Every model version, by name then version."""
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT * FROM models ORDER BY name, version").fetchall()
        return [_row_to_model(row) for row in rows]

    def confirm_signature(self, model: Model, n_features: int | None, class_labels: builtins.list[str] | None,
                          source: str, feature_names: builtins.list[str] | None = None,
                          categories: dict[str, builtins.list[str]] | None = None) -> Model:
        """Fills in what the scoring server found when it loaded the model (feature count, classes, the
        names of the features where it was fitted on named columns); declared facts it contradicts are
        replaced, and the source says so. Class names given at
        registration for a model whose classes are 0..n-1 are kept (a server that did not map its
        answers onto them reports the numbers).

        Returns:
            The model as now recorded.
        """
        old = model.signature
        if n_features is None and not class_labels and not feature_names:
            return model  # the scoring script reports nothing (the tutorial's does not)
        image_shape = old.image_shape
        if n_features is not None and image_shape and image_shape[0] * image_shape[1] != n_features:
            image_shape = None
        labels = tuple(class_labels) if class_labels else old.class_labels
        if (old.class_labels and labels and len(labels) == len(old.class_labels)
                and labels == tuple(str(i) for i in range(len(labels)))):
            labels = old.class_labels  # names given for the numbers 0..n-1 stand
        count = n_features if n_features is not None else old.n_features
        names = tuple(feature_names) if feature_names and len(feature_names) == count else None
        if names is None and old.feature_names and len(old.feature_names) == count:
            names = old.feature_names
        facts = Signature(n_features=count, image_shape=image_shape, value_range=old.value_range, class_labels=labels,
                          feature_names=names, categories=_categories(categories) if names else None)
        if facts == replace(old, source="") and "confirmed" in old.source:
            return model
        new = replace(facts, source=f"{old.source}; confirmed by {source}" if old.source else f"confirmed by {source}")
        with closing(self._connect()) as conn, conn:
            conn.execute("UPDATE models SET signature = ? WHERE name = ? AND version = ?",
                         (json.dumps(new.to_dict()), model.name, model.version))
        return self.get(model.name, model.version)

    def materialize(self, model: Model, dest: Path) -> Path:
        """Copies the model's files into `dest`, checking each one's sha256 first; with them, where class
        names were given for the model (not its classes' own numbers), CLASS_NAMES_FILE: the built-in
        scoring script answers those names for classes 0..n-1.

        Raises:
            ChecksumMismatchError: a stored file is missing or was changed since registration.
        """
        dest = Path(dest)
        dest.mkdir(parents=True, exist_ok=True)
        for f in model.files:
            blob = self.blobs_dir / f.sha256
            if not blob.exists():
                raise ChecksumMismatchError(
                    f"file {f.name} of model {model.id} is missing from {self.blobs_dir}; "
                    "register the model again")
            actual = file_sha256(blob)
            if actual != f.sha256:
                raise ChecksumMismatchError(
                    f"file {f.name} of model {model.id} has sha256 {actual[:12]}…, "
                    f"not {f.sha256[:12]}… as registered: it was changed on disk; register it again")
            shutil.copyfile(blob, dest / f.name)
        names = served_class_names(model.signature)
        if names is not None and all(f.name != CLASS_NAMES_FILE for f in model.files):
            (dest / CLASS_NAMES_FILE).write_text(json.dumps(list(names), ensure_ascii=False), encoding="utf-8")
        return dest


def _insert(conn: sqlite3.Connection, new: NewModel, files: tuple[ModelFile, ...], created: str) -> int:
    """Records `new` as the next version of its name inside the caller's transaction; returns the version.

    Raises:
        DuplicateModelError: a version of that name holds exactly these files already.
    """
    digest = Model(new.name, 0, new.framework, files).sha256
    for existing in conn.execute("SELECT * FROM models WHERE name = ?", (new.name,)).fetchall():
        if _row_to_model(existing).sha256 == digest:
            raise DuplicateModelError(f"{new.name}:{existing['version']}")
    row = conn.execute("SELECT MAX(version) FROM models WHERE name = ?", (new.name,)).fetchone()
    version = int(row[0] or 0) + 1
    versions = new.library_versions if new.library_versions is not None else current_library_versions()
    conn.execute(
        f"INSERT INTO models ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
        (new.name, version, new.framework, json.dumps([f.__dict__ for f in files]), json.dumps(versions),
         json.dumps(new.tags), new.description, json.dumps(new.metrics), created,
         json.dumps((new.signature or Signature()).to_dict())))
    return version


def _row_to_model(row: sqlite3.Row) -> Model:
    return Model(
        name=row["name"], version=row["version"], framework=row["framework"],
        files=tuple(ModelFile(**f) for f in json.loads(row["files"])),
        library_versions=json.loads(row["library_versions"]), tags=json.loads(row["tags"]),
        description=row["description"], metrics=json.loads(row["metrics"]),
        created_at=row["created_at"], signature=Signature.from_dict(json.loads(row["signature"] or "{}")))
