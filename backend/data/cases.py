"""The cases a tester flags: single inputs kept exactly as they were scored (a test image, a perturbed or drawn one,
a table's row), each with its right label, a note and where it came from. Cases of one form (image shape, value
range and classes, or a table's columns) make one test set: `cases` for the first form flagged, `cases-2`, ...
for the next, names kept for good; each is usable wherever a test set is.

Kept in one SQLite file beside the user's test sets (`<datasets>/cases.sqlite`): every write is one transaction, so
flags from two tabs at once both land and a kill mid-write loses at most that flag. Nothing else is kept: no key, no
answer of a deployment (replaying a case scores it again)."""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from ..errors import CaseError, CaseNotFoundError
from .testset import Categories, DatasetInfo, TestSet

FILE_NAME = "cases.sqlite"
SET_NAME = "cases"
SET_NAMES = re.compile(r"^cases(-[0-9]+)?$")
"""The names case sets take (and no user set may)."""
MAX_NOTE = 2_000  # characters of a note
MAX_CASES = 100_000  # in one home: a case is one input, flagged by hand

SCHEMA = """
CREATE TABLE IF NOT EXISTS forms (
    set_name TEXT PRIMARY KEY,
    form TEXT NOT NULL UNIQUE,
    created_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS cases (
    id TEXT PRIMARY KEY,
    set_name TEXT NOT NULL REFERENCES forms(set_name),
    row BLOB NOT NULL,
    label TEXT NOT NULL,
    note TEXT NOT NULL,
    origin TEXT NOT NULL,
    deployment TEXT NOT NULL,
    model TEXT NOT NULL,
    model_sha256 TEXT NOT NULL,
    dataset TEXT NOT NULL,
    dataset_index INTEGER,
    perturbation TEXT NOT NULL,
    flagged_by TEXT NOT NULL,
    created_at TEXT NOT NULL
);
"""


@dataclass(frozen=True)
class CaseForm:
    """What a case's row is: an image of `image_shape` in `value_range`, or a table's `feature_names` (its text
    columns' `categories`); with the classes its label is one of."""

    class_names: tuple[str, ...]
    image_shape: tuple[int, int] | None = None
    value_range: tuple[float, float] = (0.0, 1.0)
    feature_names: tuple[str, ...] | None = None
    categories: Categories = ()

    @classmethod
    def of(cls, testset: TestSet) -> CaseForm:
        """The form of `testset`'s rows."""
        return cls(tuple(testset.class_names), testset.image_shape, testset.value_range, testset.feature_names,
                   testset.categories)

    @property
    def n_values(self) -> int:
        if self.feature_names is not None:
            return len(self.feature_names)
        assert self.image_shape is not None  # a form is images or a table
        return self.image_shape[0] * self.image_shape[1]

    def key(self) -> str:
        """The form as JSON: equal forms, equal keys."""
        return json.dumps({"class_names": list(self.class_names),
                           "image_shape": list(self.image_shape) if self.image_shape else None,
                           "value_range": [float(v) for v in self.value_range],
                           "feature_names": list(self.feature_names) if self.feature_names is not None else None,
                           "categories": {name: list(known) for name, known in self.categories}}, sort_keys=True)

    @classmethod
    def from_key(cls, key: str) -> CaseForm:
        data = json.loads(key)
        shape, names = data["image_shape"], data["feature_names"]
        return cls(tuple(data["class_names"]), (int(shape[0]), int(shape[1])) if shape else None,
                   (float(data["value_range"][0]), float(data["value_range"][1])),
                   tuple(names) if names is not None else None,
                   tuple((name, tuple(known)) for name, known in data["categories"].items()))


@dataclass(frozen=True)
class CaseSource:
    """Where a case came from.

    Attributes:
        origin: "test set", "drawn", "uploaded", "what-if" (a table's row as edited), "file" (a CLI --image) or
            "gradio flag" (a Gradio flagging log).
        deployment: the deployment it was flagged at ("" when none).
        model: that deployment's model ("NAME:VERSION"), model_sha256 its file's checksum ("" when unknown).
        dataset: the test set whose form it has (and, for "test set", whose row it is).
        dataset_index: its row in that set (None when it is not a row of one).
        perturbation: the perturbation applied before it was scored ("noise=0.2~3"), "" for none.
    """

    origin: str
    deployment: str = ""
    model: str = ""
    model_sha256: str = ""
    dataset: str = ""
    dataset_index: int | None = None
    perturbation: str = ""

    def describe(self) -> str:
        """ "mnist #17 (rotate=15), at demo (sklearn_mnist:1)" for people."""
        what = f"{self.dataset} #{self.dataset_index}" if self.dataset_index is not None else \
            f"{self.origin} ({self.dataset})" if self.dataset else self.origin
        if self.perturbation:
            what += f" ({self.perturbation})"
        if self.deployment:
            what += f", at {self.deployment}" + (f" ({self.model})" if self.model else "")
        return what


@dataclass(frozen=True)
class Case:
    """One flagged input.

    Attributes:
        id: short and unique ("c-3f9a2b1c").
        set_name: the case set it belongs to ("cases", "cases-2", ...).
        row: float32 values exactly as scored.
        label: the right label (one of `form.class_names`).
        note: what the tester wrote.
        form: what the row is.
        source: where it came from.
        flagged_by: who flagged it (the OS user the dashboard or CLI runs as).
        created_at: ISO 8601, UTC.
    """

    id: str
    set_name: str
    row: np.ndarray
    label: str
    note: str
    form: CaseForm
    source: CaseSource
    flagged_by: str
    created_at: str

    @property
    def label_index(self) -> int:
        return self.form.class_names.index(self.label)


class CaseBook:
    """The cases of one home, in `<datasets>/cases.sqlite` (made at the first flag: reads never write)."""

    def __init__(self, datasets_dir: Path) -> None:
        self.path = Path(datasets_dir) / FILE_NAME

    @contextmanager
    def _connection(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        if write:
            self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        elif not self.path.exists():
            raise FileNotFoundError(self.path)
        try:
            with closing(sqlite3.connect(self.path, timeout=30, isolation_level=None)) as conn:
                conn.row_factory = sqlite3.Row
                if write:
                    self.path.chmod(0o600)
                    conn.executescript(SCHEMA)
                    conn.execute("BEGIN IMMEDIATE")  # two tabs flagging at once: one waits for the other
                    try:
                        yield conn
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
                else:
                    yield conn
        except sqlite3.DatabaseError as e:
            if not write and str(e).startswith("no such table"):  # made this instant, its tables not yet: empty
                raise FileNotFoundError(self.path) from e
            raise CaseError(f"the cases in {self.path} cannot be read or written ({e})") from e

    def add(self, row: np.ndarray, form: CaseForm, label: str, note: str, source: CaseSource,
            flagged_by: str) -> Case:
        """Keeps a flagged input, in the case set of its form (a new set for a new form).

        Raises:
            CaseError: a label that is not one of the form's classes, a note or label past its length, a row that is
                not of the form, the same input flagged with that label already, or the book full.
        """
        return self.add_all([(row, label, note, source)], form, flagged_by)[0]

    def add_all(self, entries: Sequence[tuple[np.ndarray, str, str, CaseSource]], form: CaseForm,
                flagged_by: str, *, skip_twins: bool = False) -> list[Case]:
        """Keeps flagged inputs of one form (row, label, note, source each) all together or, when one cannot be
        kept, none; with `skip_twins`, an input flagged with its label already is left out instead (an import read
        twice adds nothing the second time).

        Raises:
            CaseError: as `add`, naming the entry (from 1) when there are several.
        """
        rows = []
        for number, (row, label, note, _) in enumerate(entries, 1):
            where = f"entry {number}: " if len(entries) > 1 else ""
            row = np.asarray(row, dtype=np.float32).ravel()
            if label not in form.class_names:
                shown = ", ".join(form.class_names[:12]) + (", ..." if len(form.class_names) > 12 else "")
                raise CaseError(f"{where}the label {label!r} is not one of the classes ({shown})")
            if len(note) > MAX_NOTE:
                raise CaseError(f"{where}a note takes at most {MAX_NOTE:,} characters (this one {len(note):,})")
            if row.size != form.n_values or not np.isfinite(row).all():
                raise CaseError(f"{where}a case of this form holds {form.n_values:,} finite values, not {row.size:,}")
            rows.append(row)
        created = datetime.now(UTC).isoformat(timespec="seconds")
        kept = []
        with self._connection(write=True) as conn:
            if conn.execute("SELECT COUNT(*) FROM cases").fetchone()[0] + len(entries) > MAX_CASES:
                raise CaseError(f"{MAX_CASES:,} cases are kept at most: remove some first")
            key = form.key()
            found = conn.execute("SELECT set_name FROM forms WHERE form = ?", (key,)).fetchone()
            if found is None:
                taken = conn.execute("SELECT COUNT(*) FROM forms").fetchone()[0]
                set_name = SET_NAME if taken == 0 else f"{SET_NAME}-{taken + 1}"
                conn.execute("INSERT INTO forms VALUES (?, ?, ?)", (set_name, key, created))
            else:
                set_name = found["set_name"]
            for number, (row, (_, label, note, source)) in enumerate(zip(rows, entries, strict=True), 1):
                twin = conn.execute("SELECT id FROM cases WHERE set_name = ? AND label = ? AND row = ?",
                                    (set_name, label, row.tobytes())).fetchone()
                if twin is not None and skip_twins:
                    continue
                if twin is not None:  # a second click on Flag, or the same input flagged again
                    where = f"entry {number}: " if len(entries) > 1 else ""
                    raise CaseError(f"{where}this input is flagged as {label!r} already ({twin['id']}); remove that "
                                    "case first to flag it again")
                case_id = "c-" + secrets.token_hex(4)
                conn.execute("INSERT INTO cases VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                             (case_id, set_name, row.tobytes(), label, note, source.origin, source.deployment,
                              source.model, source.model_sha256, source.dataset, source.dataset_index,
                              source.perturbation, flagged_by, created))
                kept.append(Case(case_id, set_name, row, label, note, form, source, flagged_by, created))
        return kept

    def cases(self, set_name: str | None = None) -> list[Case]:
        """Every case (of one set), oldest first. Reads only."""
        try:
            with self._connection() as conn:
                query = "SELECT * FROM cases" + (" WHERE set_name = ?" if set_name else "") + " ORDER BY rowid"
                rows = conn.execute(query, (set_name,) if set_name else ()).fetchall()
                # the forms after the cases: a flag landing between the two reads brings its form with it, and a
                # form is never removed, so every case read has its form
                forms = {r["set_name"]: CaseForm.from_key(r["form"]) for r in conn.execute("SELECT * FROM forms")}
        except FileNotFoundError:
            return []
        return [_case(r, forms[r["set_name"]]) for r in rows]

    def remove(self, case_id: str) -> Case:
        """Deletes one case (its set stays named, empty or not).

        Raises:
            CaseNotFoundError: no such case.
        """
        found = next((case for case in self.cases() if case.id == case_id), None)
        if found is None:
            raise CaseNotFoundError(f"no case {case_id!r}: `cases list` shows their ids")
        with self._connection(write=True) as conn:
            conn.execute("DELETE FROM cases WHERE id = ?", (case_id,))
        return found

    def revision(self) -> int:
        """A number that changes with every flag and removal (0 before the first): what a page caches a case set on."""
        try:
            return self.path.stat().st_mtime_ns
        except OSError:
            return 0

    def infos(self) -> list[DatasetInfo]:
        """A case set per form that holds cases, as the catalogue lists sets. Reads only."""
        try:
            with self._connection() as conn:
                rows = conn.execute("SELECT forms.set_name, forms.form, COUNT(cases.id) AS n FROM forms "
                                    "JOIN cases ON cases.set_name = forms.set_name GROUP BY forms.set_name "
                                    "ORDER BY forms.rowid").fetchall()
        except FileNotFoundError:
            return []
        infos = []
        for r in rows:
            form = CaseForm.from_key(r["form"])
            infos.append(DatasetInfo(r["set_name"], f"Flagged cases ({r['n']:,})", form.image_shape, form.class_names,
                                     True, form.value_range, feature_names=form.feature_names,
                                     categories=form.categories))
        return infos

    def testset(self, set_name: str) -> TestSet:
        """The case set `set_name` as a test set (rows oldest first).

        Raises:
            CaseNotFoundError: no cases in a set of that name.
        """
        cases = self.cases(set_name)
        if not cases:
            known = ", ".join(info.name for info in self.infos()) or "none yet: flag one first"
            raise CaseNotFoundError(f"no flagged cases in {set_name!r} (case sets: {known})")
        form = cases[0].form
        X = np.stack([case.row for case in cases])
        y = np.array([case.label_index for case in cases], dtype=np.int64)
        return TestSet(set_name, X, y, form.image_shape, form.class_names, f"{len(cases):,} flagged cases",
                       form.value_range, form.feature_names, form.categories)


def _case(row: sqlite3.Row, form: CaseForm) -> Case:
    source = CaseSource(row["origin"], row["deployment"], row["model"], row["model_sha256"], row["dataset"],
                        row["dataset_index"], row["perturbation"])
    return Case(row["id"], row["set_name"], np.frombuffer(row["row"], dtype=np.float32).copy(), row["label"],
                row["note"], form, source, row["flagged_by"], row["created_at"])
