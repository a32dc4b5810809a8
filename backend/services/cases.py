"""Flagged cases, as the CLI and the Test page ask for them: flag an input with its right label and a note (a test
set's row, perturbed or not; an image of the user's), list, remove and export them, and replay them at a deployment
(or a model version, deployed on the fly), against a second one when asked: which cases each gets right, which the
first fixes and which it breaks."""

from __future__ import annotations

import getpass
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..data.cases import SET_NAMES, Case, CaseBook, CaseForm, CaseSource
from ..data.flag_logs import read_flag_log
from ..data.testset import TestSet
from ..errors import CaseError, CaseNotFoundError
from ..files import atomic_write
from ..inspection.evaluation import Evaluation, class_name
from ..inspection.perturb import Perturbation
from ..progress import Progress, quiet, step
from ..runtimes.base import Deployment
from .comparing import contender
from .scoring import prepared_image, score_and_keep
from .testsets import choose_testset, fitting_testsets

if TYPE_CHECKING:
    from ..context import ModelDeck

REPLAY_SOURCE = "cases replay"


def book(deck: ModelDeck) -> CaseBook:
    return CaseBook(deck.settings.datasets_dir)


def flagged_by() -> str:
    """Who flags: the OS user this runs as ("unknown" where none is known)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


def _source(deck: ModelDeck, deployment: Deployment | None, origin: str, testset: TestSet, index: int | None,
            perturbation: Perturbation | None) -> CaseSource:
    model = deck.deployments.model_of(deployment) if deployment is not None else None
    return CaseSource(origin, deployment.name if deployment else "", model.id if model else "",
                      model.sha256 if model else "", testset.name.split("+", 1)[0], index,
                      perturbation.key if perturbation else "")


def flag_target(deck: ModelDeck, deployment: str | None, dataset: str | None) -> tuple[Deployment | None, TestSet]:
    """(the deployment a flag names, or None; the test set whose row or form the case has: `dataset`, or the first
    that fits the deployment's model).

    Raises:
        DeploymentNotFoundError, and what `choose_testset` raises.
    """
    found = deck.deployments.get(deployment) if deployment else None
    return found, choose_testset(deck, deck.deployments.model_of(found) if found else None, requested=dataset)


def flag_row(deck: ModelDeck, testset: TestSet, index: int, label: str, note: str = "", *,
             deployment: Deployment | None = None, perturbation: Perturbation | None = None) -> Case:
    """Keeps row `index` of `testset` (perturbed as `perturbation` perturbs it, exactly as it was scored) as a case
    whose right label is `label` (a class name of the set).

    Raises:
        CaseError: an index the set does not have, or what `CaseBook.add` refuses. InvalidPerturbationError.
    """
    if not 0 <= index < len(testset):
        raise CaseError(f"test set {testset.name!r} has rows 0 to {len(testset) - 1}, not {index}")
    row = testset.X[index:index + 1]
    if perturbation is not None:
        row = perturbation.applied(row, testset)
    return book(deck).add(row[0], CaseForm.of(testset), label, note,
                          _source(deck, deployment, "test set", testset, index, perturbation), flagged_by())


def flag_image(deck: ModelDeck, testset: TestSet, image: bytes, label: str, note: str = "", *,
               deployment: Deployment | None = None, origin: str = "uploaded") -> Case:
    """Keeps an image of the user's (PNG/JPEG bytes), prepared as `testset`'s images are (as the Test page scores
    it), as a case labelled `label`.

    Raises:
        UserImageError: not an image, or the set is a table. CaseError: as `CaseBook.add`.
    """
    return book(deck).add(prepared_image(testset, image), CaseForm.of(testset), label, note,
                          _source(deck, deployment, origin, testset, None, None), flagged_by())


def flag_prepared(deck: ModelDeck, testset: TestSet, row: np.ndarray, label: str, note: str = "", *,
                  deployment: Deployment | None = None, origin: str = "drawn") -> Case:
    """Keeps an input already prepared in `testset`'s form (a drawn digit as scored) as a case labelled `label`.

    Raises:
        CaseError: as `CaseBook.add`.
    """
    return book(deck).add(row, CaseForm.of(testset), label, note, _source(deck, deployment, origin, testset, None, None),
                          flagged_by())


@dataclass(frozen=True)
class Imported:
    """What a flagging log gave: the cases kept, and how many of its flags were kept already (left out)."""

    cases: tuple[Case, ...]
    known: int


def flag_log(deck: ModelDeck, testset: TestSet, log: Path, label: str = "", note: str = "", *,
             deployment: Deployment | None = None) -> Imported:
    """Keeps every image of a Gradio flagging log, prepared as `testset`'s images are, as a case: labelled `label`
    when given, else by its flagging option when that names a class; noted `note`, else with what Gradio logged (its
    answer, the option, who and when). All of them or, when one cannot be kept, none.

    Raises:
        CaseError: what `read_flag_log` refuses, or a flag with no class for its label (naming its line).
        UserImageError: an image that cannot be read.
    """
    entries = []
    for flag in read_flag_log(log):
        right = label or flag.flag
        if right not in testset.class_names:
            raise CaseError(f"line {flag.row} of {log.name}: its flag {flag.flag!r} is not one of the classes: say the "
                            "right label with --label (it then holds for every image of the log)" if flag.flag else
                            f"line {flag.row} of {log.name} has no flag naming its class: say the right label with "
                            "--label")
        entries.append((prepared_image(testset, flag.image), right, note or flag.note(),
                        _source(deck, deployment, "gradio flag", testset, None, None)))
    kept = book(deck).add_all(entries, CaseForm.of(testset), flagged_by(), skip_twins=True)
    return Imported(tuple(kept), len(entries) - len(kept))


def all_cases(deck: ModelDeck) -> list[Case]:
    """Every flagged case, oldest first. Reads only."""
    return book(deck).cases()


def remove_case(deck: ModelDeck, case_id: str) -> Case:
    """Deletes one case.

    Raises:
        CaseNotFoundError: no such case.
    """
    return book(deck).remove(case_id)


def export_cases(deck: ModelDeck, out: Path, set_name: str = "cases") -> int:
    """Writes the case set `set_name` to `out` as an .npz that `datasets add` takes back (X, y, class_names; a
    table's feature_names), with each case's id, note and source beside them (`cases` as JSON text). Returns how
    many cases it holds.

    Raises:
        CaseNotFoundError: no cases in that set. CaseError: `out` cannot be written.
    """
    testset = book(deck).testset(set_name)
    cases = book(deck).cases(set_name)
    about = [{"id": c.id, "label": c.label, "note": c.note, "source": c.source.describe(), "flagged_by": c.flagged_by,
              "created_at": c.created_at} for c in cases]
    extra = {"feature_names": np.array(testset.feature_names, dtype=str)} if testset.feature_names is not None else {}
    buffer = io.BytesIO()
    np.savez_compressed(buffer, allow_pickle=False, X=testset.X if testset.image_shape is None else
                        testset.X.reshape(-1, *testset.image_shape), y=testset.y,
                        class_names=np.array(testset.class_names, dtype=str),
                        cases=np.array(json.dumps(about, ensure_ascii=False)), **extra)
    try:
        with atomic_write(out) as handle:
            handle.write(buffer.getvalue())
    except OSError as e:
        raise CaseError(f"cannot write {out}: {e.strerror or e}") from e
    return len(cases)


@dataclass(frozen=True)
class CaseAnswer:
    """What one deployment said of one case."""

    said: str
    right: bool


@dataclass(frozen=True)
class Replay:
    """The cases of one set scored at a deployment (and at a second one, `against`).

    Attributes:
        set_name: the case set.
        cases: its cases, in the set's order.
        deployment: where they were scored; answers: what it said of each.
        against: the second deployment (None: none asked); against_answers: what it said of each.
    """

    set_name: str
    cases: tuple[Case, ...]
    deployment: str
    answers: tuple[CaseAnswer, ...]
    against: str | None = None
    against_answers: tuple[CaseAnswer, ...] = ()

    @property
    def right(self) -> int:
        return sum(answer.right for answer in self.answers)

    @property
    def fixed(self) -> tuple[int, ...]:
        """The cases `against` gets wrong and the deployment right (by position)."""
        return tuple(k for k, (a, b) in enumerate(zip(self.answers, self.against_answers, strict=True))
                     if a.right and not b.right)

    @property
    def broken(self) -> tuple[int, ...]:
        """The cases `against` gets right and the deployment wrong (by position)."""
        return tuple(k for k, (a, b) in enumerate(zip(self.answers, self.against_answers, strict=True))
                     if b.right and not a.right)

    def summary(self) -> str:
        """ "v2 gets 8 of 9 flagged cases right; it fixes 7 of the 8 that v1 gets wrong and breaks 1" for people."""
        said = f"{self.deployment} gets {self.right} of {len(self.cases)} flagged cases right"
        if self.against is None:
            return said
        wrong_before = sum(not answer.right for answer in self.against_answers)
        right_before = len(self.cases) - wrong_before
        fixes = (f"it fixes {len(self.fixed)} of the {wrong_before} that {self.against} gets wrong" if wrong_before
                 else f"it fixes none ({self.against} gets none wrong)")
        breaks = (f"breaks {len(self.broken)} of the {right_before} that {self.against} gets right" if right_before
                  else f"breaks none ({self.against} gets none right)")
        return f"{said}; {fixes} and {breaks}"


def case_set_for(deck: ModelDeck, *deployments: Deployment) -> str:
    """The first case set that fits every deployment's model.

    Raises:
        CaseNotFoundError: none does (no case flagged yet, or none of a form these models take).
    """
    fit = fitting_testsets(deck, *(deck.deployments.model_of(d) for d in deployments))
    found = next((info.name for info in fit.fitting if SET_NAMES.match(info.name)), None)
    if found is None:
        known = [info.name for info in book(deck).infos()]
        raise CaseNotFoundError("no flagged case fits " + " and ".join(d.name for d in deployments) + (
            f" (case sets: {', '.join(known)})" if known else ": none is flagged yet (`cases add`, or Flag on the "
                                                               "Test page)"))
    return found


def replay(deck: ModelDeck, ref: str, *, against: str | None = None, set_name: str | None = None,
           progress: Progress = quiet) -> Replay:
    """Scores every case of a set (default: the first that fits) at `ref` (a deployment, or MODEL:VERSION deployed
    on the fly) and, with `against`, at that one too; each scoring is kept in the evaluation history.

    Raises:
        CaseNotFoundError: no case set fits. ScoringError, and what a deploy on the fly raises.
    """
    first = contender(deck, ref, progress)
    second = contender(deck, against, progress) if against is not None else None
    deployments = (first,) if second is None else (first, second)
    chosen = set_name or case_set_for(deck, *deployments)
    cases = tuple(book(deck).cases(chosen))
    answers = []
    for deployment in deployments:
        testset = choose_testset(deck, deck.deployments.model_of(deployment), requested=chosen)
        step(progress, f"scoring {len(testset):,} flagged cases at {deployment.name}")
        answers.append(_answers(score_and_keep(deck, deployment, testset, source=REPLAY_SOURCE), testset))
    return Replay(chosen, cases, first.name, answers[0], second.name if second else None,
                  answers[1] if second else ())


def _answers(evaluation: Evaluation, testset: TestSet) -> tuple[CaseAnswer, ...]:
    return tuple(CaseAnswer(class_name(testset.class_names, int(p)), bool(p == t))
                 for p, t in zip(evaluation.predictions, testset.y, strict=True))
