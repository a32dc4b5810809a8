"""Every whole-test-set scoring, kept: which deployment and model, which test set (and its hash),
which perturbation, the accuracy, confusion matrix and per-class precision/recall, the reliability
diagram's bins (when the endpoint gave probabilities), when and how long.

Kept in the registry's SQLite file (table `evaluations`), so a model's history survives its
deployments; reads never write.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..data.testset import TestSet
from ..runtimes.base import Deployment
from .calibration import Calibration, calibration_of
from .evaluation import Evaluation

_SCHEMA = """
CREATE TABLE IF NOT EXISTS evaluations (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    deployment TEXT NOT NULL,
    deployment_uid TEXT NOT NULL,
    model_name TEXT NOT NULL,
    model_version INTEGER NOT NULL,
    model_sha256 TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_sha256 TEXT NOT NULL,
    perturbation TEXT NOT NULL,
    accuracy REAL NOT NULL,
    n INTEGER NOT NULL,
    labels TEXT NOT NULL,
    confusion TEXT NOT NULL,
    precision TEXT NOT NULL,
    recall TEXT NOT NULL,
    created_at TEXT NOT NULL,
    duration_s REAL NOT NULL,
    source TEXT NOT NULL,
    calibration TEXT
)
"""
# Columns added after the first release, each (name, definition): a table made before gets them.
_ADDED_COLUMNS = (("calibration", "TEXT"),)


@dataclass(frozen=True)
class EvaluationRecord:
    """One kept scoring of a whole test set (`id` 0 until stored)."""

    deployment: str
    deployment_uid: str
    model_name: str
    model_version: int
    model_sha256: str
    dataset: str
    dataset_sha256: str
    perturbation: str
    accuracy: float
    n: int
    labels: tuple[str, ...]
    confusion: tuple[tuple[int, ...], ...]
    precision: tuple[float, ...]
    recall: tuple[float, ...]
    created_at: str
    duration_s: float
    source: str
    id: int = 0
    calibration: Calibration | None = None  # None: labels only, or kept before calibration was

    @property
    def model_id(self) -> str:
        return f"{self.model_name}:{self.model_version}"

    @classmethod
    def of(cls, deployment: Deployment, testset: TestSet, evaluation: Evaluation, *, duration_s: float,
           source: str, perturbation: str = "") -> "EvaluationRecord":
        """The record of `evaluation`, made by scoring `testset` (its base name and, apart, the
        perturbation applied) at `deployment`."""
        return cls(deployment=deployment.name, deployment_uid=deployment.record.uid,
                   model_name=deployment.record.model_name, model_version=deployment.record.model_version,
                   model_sha256=deployment.record.model_sha256, dataset=testset.name.split("+", 1)[0],
                   dataset_sha256=testset_sha256(testset), perturbation=perturbation,
                   accuracy=evaluation.accuracy, n=evaluation.n, labels=evaluation.labels,
                   confusion=tuple(tuple(int(v) for v in row) for row in evaluation.confusion),
                   precision=tuple(float(v) for v in evaluation.precision),
                   recall=tuple(float(v) for v in evaluation.recall),
                   created_at=datetime.now(UTC).isoformat(timespec="seconds"), duration_s=duration_s, source=source,
                   calibration=calibration_of(evaluation))

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `evaluations list --json`."""
        return {"id": self.id, "deployment": self.deployment, "model": self.model_id,
                "model_sha256": self.model_sha256, "dataset": self.dataset, "dataset_sha256": self.dataset_sha256,
                "perturbation": self.perturbation or None, "accuracy": self.accuracy, "n": self.n,
                "labels": list(self.labels), "confusion_matrix": [list(row) for row in self.confusion],
                "precision": list(self.precision), "recall": list(self.recall), "created_at": self.created_at,
                "duration_s": self.duration_s, "source": self.source,
                "ece": None if self.calibration is None else self.calibration.ece,
                "calibration": None if self.calibration is None else self.calibration.to_json()}


def testset_sha256(testset: TestSet) -> str:
    """sha256 of a test set's images and labels as scored (a perturbed set hashes differently)."""
    digest = hashlib.sha256()
    digest.update(np.ascontiguousarray(testset.X).tobytes())
    digest.update(np.ascontiguousarray(testset.y).tobytes())
    return digest.hexdigest()


class EvaluationLog:
    """The `evaluations` table of the registry's SQLite file."""

    def __init__(self, db_path: Path) -> None:
        self.db_path = Path(db_path)
        if self.db_path.exists():
            with closing(self._connect()) as conn, conn:
                _create(conn)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None)
        conn.row_factory = sqlite3.Row
        return conn

    def add(self, record: EvaluationRecord) -> EvaluationRecord:
        """Stores `record`; returns it with its id."""
        data = record.to_dict()
        with closing(self._connect()) as conn, conn:
            _create(conn)
            cursor = conn.execute(
                "INSERT INTO evaluations (deployment, deployment_uid, model_name, model_version, model_sha256, "
                "dataset, dataset_sha256, perturbation, accuracy, n, labels, confusion, precision, recall, "
                "created_at, duration_s, source, calibration) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, "
                "?, ?)",
                (record.deployment, record.deployment_uid, record.model_name, record.model_version,
                 record.model_sha256, record.dataset, record.dataset_sha256, record.perturbation, record.accuracy,
                 record.n, json.dumps(data["labels"]), json.dumps(data["confusion_matrix"]),
                 json.dumps(data["precision"]), json.dumps(data["recall"]), record.created_at, record.duration_s,
                 record.source, None if data["calibration"] is None else json.dumps(data["calibration"])))
        return EvaluationRecord(**{**record.__dict__, "id": int(cursor.lastrowid or 0)})

    def list(self, *, deployment: str | None = None, model_name: str | None = None,
             model_version: int | None = None) -> list[EvaluationRecord]:
        """Kept evaluations, newest first, filtered by deployment name and/or model (and version)."""
        where, args = [], []
        for column, value in (("deployment", deployment), ("model_name", model_name),
                              ("model_version", model_version)):
            if value is not None:
                where.append(f"{column} = ?")
                args.append(value)
        if not self.db_path.exists():
            return []
        with closing(self._connect()) as conn:
            try:
                rows = conn.execute("SELECT * FROM evaluations" + (" WHERE " + " AND ".join(where) if where else "")
                                    + " ORDER BY id DESC", args).fetchall()
            except sqlite3.OperationalError:  # a registry made before evaluations were kept
                return []
        return [_record(row) for row in rows]

    def latest_whole_set(self) -> dict[str, EvaluationRecord]:
        """Each model id's newest kept scoring of an unperturbed test set."""
        latest: dict[str, EvaluationRecord] = {}
        for record in self.list():  # newest first
            if not record.perturbation:
                latest.setdefault(record.model_id, record)
        return latest


def _create(conn: sqlite3.Connection) -> None:
    """The table, with the columns added since a home's table was made."""
    conn.execute(_SCHEMA)
    present = {row["name"] for row in conn.execute("PRAGMA table_info(evaluations)")}
    for name, definition in _ADDED_COLUMNS:
        if name not in present:
            try:
                conn.execute(f"ALTER TABLE evaluations ADD COLUMN {name} {definition}")
            except sqlite3.OperationalError:  # another process added it first, or a read-only file: reads cope
                pass


def _calibration(row: sqlite3.Row) -> Calibration | None:
    """The row's reliability bins (None: labels only, kept before they were, or unreadable)."""
    try:
        text = row["calibration"]
        return None if text is None else Calibration.from_json(json.loads(text))
    except (IndexError, KeyError, ValueError, TypeError):
        return None


def _record(row: sqlite3.Row) -> EvaluationRecord:
    return EvaluationRecord(
        deployment=row["deployment"], deployment_uid=row["deployment_uid"], model_name=row["model_name"],
        model_version=row["model_version"], model_sha256=row["model_sha256"], dataset=row["dataset"],
        dataset_sha256=row["dataset_sha256"], perturbation=row["perturbation"], accuracy=row["accuracy"], n=row["n"],
        labels=tuple(json.loads(row["labels"])), confusion=tuple(tuple(r) for r in json.loads(row["confusion"])),
        precision=tuple(json.loads(row["precision"])), recall=tuple(json.loads(row["recall"])),
        created_at=row["created_at"], duration_s=row["duration_s"], source=row["source"], id=row["id"],
        calibration=_calibration(row))
