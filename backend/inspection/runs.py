"""Whole-test-set scorings as a user starts them (CLI, Test page, Compare page): score at the
endpoint, keep the result for the dashboard and record it in the evaluation history."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from ..data.catalogue import dataset_title
from ..data.testset import TestSet
from ..errors import ComparisonError
from ..progress import Progress, quiet, step
from ..registry import Model
from ..runtimes.base import Deployment
from .compare import Comparison, compare
from .evaluation import Evaluation, evaluate_endpoint, npy_dtypes
from .history import EvaluationRecord
from .perturb import Perturbation

if TYPE_CHECKING:
    from ..context import ModelDeck
    from .report import ReportInputs


def why_incomparable(a: Model | None, b: Model | None) -> str | None:
    """Why two models cannot be compared on one test set (different inputs or classes), or None."""
    if a is None or b is None:
        return None
    if a.signature.n_features and b.signature.n_features and a.signature.n_features != b.signature.n_features:
        return f"{a.id} takes {a.signature.n_features} values per row and {b.id} {b.signature.n_features}"
    classes = [m.signature.class_labels for m in (a, b)]
    if classes[0] and classes[1] and sorted(classes[0]) != sorted(classes[1]):
        return (f"{a.id} answers {', '.join(classes[0][:3])}, ... and {b.id} answers {', '.join(classes[1][:3])}, "
                "...: they do not predict the same classes")
    return None


def score_and_keep(deck: ModelDeck, deployment: Deployment, testset: TestSet, *, source: str,
                   perturbation: Perturbation | None = None, use_json: bool = False, batch_size: int = 2000,
                   progress: Callable[[int, int], None] | None = None) -> Evaluation:
    """Scores the whole `testset` (perturbed when asked) at a Healthy `deployment`, keeps the result for
    the dashboard (by the deployment's uid, under the scored set's name) and adds it to the evaluation history.

    Raises:
        ScoringError: the endpoint failed or answered something else than labels.
    """
    uri = deployment.scoring_uri or ""
    key = deck.deployments.key_for(deployment)
    scored_set = perturbation.apply(testset) if perturbation is not None else testset
    dtypes = [] if use_json else npy_dtypes(deck.client, uri, key)
    started = time.perf_counter()
    evaluation = evaluate_endpoint(deck.client, uri, scored_set, batch_size=batch_size, use_binary=bool(dtypes),
                                   key=key, uint8="uint8" in dtypes, progress=progress)
    deck.results.save_evaluation(deployment, scored_set.name, testset.y, evaluation)
    deck.evaluations.add(EvaluationRecord.of(deployment, scored_set, evaluation, source=source,
                                             duration_s=time.perf_counter() - started,
                                             perturbation=perturbation.key if perturbation else ""))
    return evaluation


def contender(deck: ModelDeck, ref: str, progress: Progress = quiet) -> Deployment:
    """The Healthy deployment `ref` names, or for a model version "NAME:VERSION" a Healthy deployment
    of this home serving exactly it, deployed now (default configuration) when there is none.

    Raises:
        ModelNotFoundError, DeploymentNotFoundError, DeploymentNotHealthyError, and what a deploy raises.
    """
    if ":" not in ref:
        return deck.deployments.healthy(ref)
    model = deck.registry.get_ref(ref)
    found = deck.deployments.serving(model)
    if found is not None:
        step(progress, f"{model.id} is served by {found.name}")
        return found
    name = deck.deployments.suggest_name(model)
    step(progress, f"deploying {model.id} as {name} to compare it")
    return deck.deployments.deploy_and_wait(model, name, progress=progress)


def compare_deployments(deck: ModelDeck, a: Deployment, b: Deployment, testset: TestSet, *,
                        source: str, use_json: bool = False,
                        progress: Callable[[str, int, int], None] | None = None) -> Comparison:
    """Scores the whole test set at both deployments (kept as `score_and_keep` keeps it) and compares them;
    progress(which deployment, done, total) while scoring.

    Raises:
        ComparisonError: A and B are the same deployment, or predict different classes.
        ScoringError: as `score_and_keep`.
    """
    _check_comparable(deck, a, b)
    evaluations = []
    for deployment in (a, b):
        def scored(done: int, total: int, name: str = deployment.name) -> None:
            if progress is not None:
                progress(name, done, total)

        evaluations.append(score_and_keep(deck, deployment, testset, source=source, use_json=use_json,
                                          progress=scored))
    return _compare(evaluations[0], evaluations[1], testset.name, a, b)


def kept_comparison(deck: ModelDeck, a: Deployment, b: Deployment, dataset: str) -> Comparison | None:
    """The comparison of the two deployments' kept scorings of `dataset` (None unless both are kept and
    were made on the same images). Reads only."""
    kept = [deck.results.load_evaluation(d, dataset) for d in (a, b)]
    if kept[0] is None or kept[1] is None or a.record.uid == b.record.uid:
        return None
    try:
        return _compare(kept[0], kept[1], dataset, a, b)
    except ComparisonError:
        return None


def _check_comparable(deck: ModelDeck, a: Deployment, b: Deployment) -> None:
    if a.record.uid == b.record.uid:
        raise ComparisonError(f"{a.name} is both A and B: pick two different deployments")
    why = why_incomparable(deck.deployments.model_of(a), deck.deployments.model_of(b))
    if why is not None:
        raise ComparisonError(f"{a.name} and {b.name} cannot be compared: {why}")


def _compare(first: Evaluation, second: Evaluation, dataset: str, a: Deployment, b: Deployment) -> Comparison:
    return compare(first, second, dataset=dataset, a_name=a.name,
                   a_model=f"{a.record.model_name}:{a.record.model_version}", b_name=b.name,
                   b_model=f"{b.record.model_name}:{b.record.model_version}")


def report_inputs(deck: ModelDeck, deployment: Deployment, testset: TestSet, *, compare_with: Deployment | None = None,
                  source: str = "report", progress: Callable[[str, int, int], None] | None = None) -> ReportInputs:
    """What the report of a Healthy `deployment` on `testset` shows: its kept scoring of that set (scored
    now when there is none), its latest load test and, with `compare_with`, the comparison with it as A
    (kept scorings where both have them, else scored now).

    Raises:
        ScoringError: a scoring it needed failed. ComparisonError: `compare_with` is the deployment itself
            or predicts other classes.
    """
    from .report import ReportInputs  # matplotlib behind it: imported when a report is made, not by every command

    def kept_or_scored(d: Deployment) -> Evaluation:
        kept = deck.results.load_evaluation(d, testset.name)
        if kept is not None and np.array_equal(kept.y_true, testset.y):
            return kept
        return score_and_keep(deck, d, testset, source=source, progress=None if progress is None else
                              lambda done, total: progress(d.name, done, total))

    if compare_with is not None:
        _check_comparable(deck, compare_with, deployment)
    evaluation = kept_or_scored(deployment)
    comparison = None if compare_with is None else _compare(kept_or_scored(compare_with), evaluation, testset.name,
                                                            compare_with, deployment)
    load = deck.results.load_loadtest(deployment)
    return ReportInputs(deployment=deployment, model=deck.deployments.model_of(deployment), testset=testset,
                        evaluation=evaluation, evaluated_at=deck.results.saved_at(deployment, testset.name, "evaluation"),
                        load_test=None if load is None else load.to_json(), comparison=comparison,
                        testset_title=dataset_title(testset.name, deck.settings.datasets_dir))
