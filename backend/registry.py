"""The model registry: versioned models, their files stored by sha256, and metadata, in SQLite."""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sqlite3
from contextlib import closing
from dataclasses import dataclass, field
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path

from .errors import ChecksumMismatchError, ModelNotFoundError, RegistryError

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
    PRIMARY KEY (name, version)
)
"""


@dataclass(frozen=True)
class ModelFile:
    """One file of a model, as stored: its name in the model folder, sha256 and size."""

    name: str
    sha256: str
    size: int


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

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"

    @property
    def sha256(self) -> str:
        """One digest for the whole model: of its files' names and digests."""
        joined = "\n".join(f"{f.name}\0{f.sha256}" for f in sorted(self.files, key=lambda f: f.name))
        return hashlib.sha256(joined.encode()).hexdigest()

    @property
    def sklearn_version(self) -> str | None:
        return self.library_versions.get("scikit-learn")


def current_library_versions() -> dict[str, str]:
    """The versions of python and of the tracked libraries in this environment."""
    versions = {"python": platform.python_version()}
    for name in TRACKED_LIBRARIES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def bytes_sha256(content: bytes) -> str:
    return hashlib.sha256(content).hexdigest()


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


class ModelRegistry:
    """Models in SQLite at `db_path`; their files in `blobs_dir`, named by sha256."""

    def __init__(self, db_path: Path, blobs_dir: Path) -> None:
        self.db_path = Path(db_path)
        self.blobs_dir = Path(blobs_dir)
        self.db_path.parent.mkdir(parents=True, exist_ok=True)
        self.blobs_dir.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as conn, conn:
            conn.execute(_SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def register(self, name: str, paths: list[Path], *, framework: str = "scikit-learn",
                 tags: dict[str, str] | None = None, description: str = "",
                 metrics: dict[str, float] | None = None,
                 library_versions: dict[str, str] | None = None) -> Model:
        """Stores the files and records the next version of `name`.

        Args:
            name: model name (letters, digits, `_`, `.`, `-`).
            paths: the model's files; each keeps its base name in the model folder.
            library_versions: defaults to the versions of this environment.

        Returns:
            The new Model, version 1 for a new name, else the latest version + 1.

        Raises:
            RegistryError: bad name, no files, a missing file, or two files with one name.
        """
        if not name or len(name) > 100 or not set(name) <= _NAME_CHARS or name[0] in ".-":
            raise RegistryError(
                f"model name {name!r} is not valid: use 1-100 letters, digits, '_', '.' or '-', "
                "starting with a letter, digit or '_'")
        if not paths:
            raise RegistryError("a model needs at least one file")
        files = []
        for path in map(Path, paths):
            if not path.is_file():
                raise RegistryError(f"model file {path} does not exist")
            digest = file_sha256(path)
            blob = self.blobs_dir / digest
            if not blob.exists():
                tmp = blob.with_suffix(".tmp")
                shutil.copyfile(path, tmp)
                tmp.replace(blob)
            files.append(ModelFile(path.name, digest, path.stat().st_size))
        if len({f.name for f in files}) != len(files):
            raise RegistryError("two model files have the same name: " + ", ".join(f.name for f in files))
        created = datetime.now(timezone.utc).isoformat(timespec="seconds")
        versions = library_versions if library_versions is not None else current_library_versions()
        with closing(self._connect()) as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                row = conn.execute("SELECT MAX(version) FROM models WHERE name = ?", (name,)).fetchone()
                version = (row[0] or 0) + 1
                conn.execute(
                    "INSERT INTO models VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (name, version, framework, json.dumps([f.__dict__ for f in files]),
                     json.dumps(versions), json.dumps(tags or {}), description,
                     json.dumps(metrics or {}), created))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        return self.get(name, version)

    def register_bytes(self, name: str, files: dict[str, bytes], **kwargs) -> Model:
        """`register` for uploaded files: {file name: content}. Same arguments and errors."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="modeldeck-upload-") as tmp:
            paths = []
            for filename, content in files.items():
                safe = Path(filename).name
                if not safe or safe in (".", ".."):
                    raise RegistryError(f"file name {filename!r} is not valid")
                path = Path(tmp) / safe
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

    def list(self) -> list[Model]:
        """Every model version, by name then version."""
        with closing(self._connect()) as conn:
            rows = conn.execute("SELECT * FROM models ORDER BY name, version").fetchall()
        return [_row_to_model(row) for row in rows]

    def update_metrics(self, model: Model, metrics: dict[str, float]) -> Model:
        """Merges `metrics` into the model's recorded metrics."""
        merged = {**model.metrics, **metrics}
        with closing(self._connect()) as conn, conn:
            conn.execute("UPDATE models SET metrics = ? WHERE name = ? AND version = ?",
                         (json.dumps(merged), model.name, model.version))
        return self.get(model.name, model.version)

    def materialize(self, model: Model, dest: Path) -> Path:
        """Copies the model's files into `dest`, checking each one's sha256 first.

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
        return dest


def _row_to_model(row: sqlite3.Row) -> Model:
    return Model(
        name=row["name"], version=row["version"], framework=row["framework"],
        files=tuple(ModelFile(**f) for f in json.loads(row["files"])),
        library_versions=json.loads(row["library_versions"]), tags=json.loads(row["tags"]),
        description=row["description"], metrics=json.loads(row["metrics"]),
        created_at=row["created_at"])
