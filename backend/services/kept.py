"""What scoring kept, as the pages and the CLI read it: a deployment's samples, whole-set evaluations,
robustness curves and load test (with the revision a page caches pictures on), and the log of every
evaluation. Reads only."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..inspection.evaluation import Curve, Evaluation, Samples
from ..inspection.evaluation_log import EvaluationRecord
from ..runtimes.base import Deployment
from ..traffic.loadresult import LoadTestResult

if TYPE_CHECKING:
    from ..context import ModelDeck


def samples(deck: ModelDeck, deployment: Deployment, dataset: str) -> Samples | None:
    """The images last sent to `deployment` from `dataset` (a perturbed set's key included), or None."""
    return deck.results.load_samples(deployment, dataset)


def evaluation(deck: ModelDeck, deployment: Deployment, dataset: str) -> Evaluation | None:
    """`deployment`'s last whole-set evaluation on `dataset`, or None."""
    return deck.results.load_evaluation(deployment, dataset)


def curve(deck: ModelDeck, deployment: Deployment, dataset: str, kind: str) -> Curve | None:
    """`deployment`'s last robustness curve on `dataset` for the perturbation `kind` (partial when that run was
    cut short), or None."""
    return deck.results.load_curve(deployment, dataset, kind)


def loadtest(deck: ModelDeck, deployment: Deployment) -> LoadTestResult | None:
    """`deployment`'s last load test, or None."""
    return deck.results.load_loadtest(deployment)


def revision(deck: ModelDeck, deployment: Deployment, dataset: str, kind: str) -> int:
    """A number that changes whenever the `kind` ("samples", "evaluation") result is kept again (0 while
    there is none): what a page caches pictures on."""
    return deck.results.revision(deployment, dataset, kind)


def saved_at(deck: ModelDeck, deployment: Deployment, dataset: str, kind: str) -> str | None:
    """When the `kind` result was kept (ISO 8601, UTC), or None."""
    return deck.results.saved_at(deployment, dataset, kind)


def evaluations(deck: ModelDeck, *, deployment: str | None = None, model_name: str | None = None,
                model_version: int | None = None) -> list[EvaluationRecord]:
    """The evaluation log, newest first, filtered by deployment name and/or model (and version)."""
    return deck.evaluations.list(deployment=deployment, model_name=model_name, model_version=model_version)


def latest_whole_set(deck: ModelDeck) -> dict[str, EvaluationRecord]:
    """Each model id's newest evaluation on an unperturbed test set."""
    return deck.evaluations.latest_whole_set()
