"""The report of a deployment on a test set (with a comparison, when asked): one self-contained HTML
file, or its PDF."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..data.testset import TestSet
from ..errors import CaseNotFoundError
from ..inspection.evaluation import Evaluation
from ..runtimes.base import Deployment
from .cases import book, case_set_for
from .comparing import check_comparable, comparison_of
from .scoring import score_and_keep
from .testsets import choose_testset, testset_title

if TYPE_CHECKING:
    from ..context import ModelDeck
    from ..inspection.report import ReportInputs


def report_inputs(deck: ModelDeck, deployment: Deployment, testset: TestSet, *, compare_with: Deployment | None = None,
                  source: str = "report", progress: Callable[[str, int, int], None] | None = None) -> ReportInputs:
    """What the report of a Healthy `deployment` on `testset` shows: its kept scoring of that set (scored
    now when there is none), its latest load test and, with `compare_with`, the comparison with it as A
    (kept scorings where both have them, else scored now).

    Raises:
        ScoringError: a scoring it needed failed. ComparisonError: `compare_with` is the deployment itself
            or predicts other classes.
    """
    # matplotlib behind it: imported when a report is made, not by every command
    from ..inspection.report import FlaggedCases, ReportInputs

    def kept_or_scored(d: Deployment) -> Evaluation:
        kept = deck.results.load_evaluation(d, testset.name)
        if kept is not None and np.array_equal(kept.y_true, testset.y):
            return kept
        return score_and_keep(deck, d, testset, source=source, progress=None if progress is None else
                              lambda done, total: progress(d.name, done, total))

    if compare_with is not None:
        check_comparable(deck, compare_with, deployment)
    evaluation = kept_or_scored(deployment)
    comparison = None if compare_with is None else comparison_of(kept_or_scored(compare_with), evaluation, testset.name,
                                                            compare_with, deployment)
    load = deck.results.load_loadtest(deployment)
    flagged = None
    try:
        case_set = choose_testset(deck, deck.deployments.model_of(deployment), requested=case_set_for(deck, deployment))
    except CaseNotFoundError:
        pass  # no flagged case fits: no section
    else:
        kept = deck.results.load_evaluation(deployment, case_set.name)
        scored = kept if kept is not None and np.array_equal(kept.y_true, case_set.y) else score_and_keep(
            deck, deployment, case_set, source=source)
        flagged = FlaggedCases(case_set, tuple(book(deck).cases(case_set.name)), scored)
    return ReportInputs(deployment=deployment, model=deck.deployments.model_of(deployment), testset=testset,
                        evaluation=evaluation, evaluated_at=deck.results.saved_at(deployment, testset.name, "evaluation"),
                        load_test=None if load is None else load.to_json(), comparison=comparison,
                        testset_title=testset_title(deck, testset.name), flagged=flagged)


@dataclass(frozen=True)
class Report:
    """A report as one self-contained HTML document, and what it shows."""

    html: str
    inputs: ReportInputs


def make_report(deck: ModelDeck, deployment: Deployment, testset: TestSet, *, compare_with: Deployment | None = None,
                source: str = "report", progress: Callable[[str, int, int], None] | None = None) -> Report:
    """The report of `report_inputs`, rendered.

    Raises:
        as `report_inputs`.
    """
    from ..inspection.report import render

    inputs = report_inputs(deck, deployment, testset, compare_with=compare_with, source=source, progress=progress)
    return Report(render(inputs), inputs)


def report_pdf(html: str) -> bytes:
    """A report's HTML document as PDF."""
    from ..inspection.report import to_pdf

    return to_pdf(html)
