"""Traffic and load tests of a named deployment: the lookups the CLI and the dashboard share."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..runtimes.base import Deployment
from ..traffic.loadtest import LoadTestResult, Progress, request_bodies, run_load_test
from ..traffic.metrics import TrafficSnapshot, scrape
from .testsets import choose_testset

if TYPE_CHECKING:
    from ..context import ModelDeck


def scrape_deployment(deck: ModelDeck, deployment: Deployment) -> TrafficSnapshot:
    """The deployment's counters now (with its key when it has key auth).

    Raises:
        EndpointUnreachableError, MetricsUnavailableError.
    """
    return scrape(deck.client, deployment.scoring_uri or "", deck.deployments.key_for(deployment))


def load_test(deck: ModelDeck, name: str, *, seconds: int, concurrency: int, dataset: str | None = None,
              progress: Progress | None = None, seed: int | None = None) -> LoadTestResult:
    """Load-tests the Healthy deployment `name` with random rows of its test set, and keeps the result
    (`deck.results.load_loadtest`): each second what ran so far (marked partial), so a test cut short
    (the page reloaded, Ctrl-C) keeps its partial result; at the end the whole result.

    Raises:
        DeploymentNotFoundError, DeploymentNotHealthyError, DatasetError, LoadTestRefusedError.
    """
    deployment = deck.deployments.healthy(name)
    bodies = request_bodies(choose_testset(deck, deck.deployments.model_of(deployment), requested=dataset), seed=seed)
    result = run_load_test(deployment.scoring_uri or "", bodies, seconds=seconds, concurrency=concurrency,
                           key=deck.deployments.key_for(deployment), deployment=deployment.name,
                           deployment_uid=deployment.record.uid, progress=progress,
                           keep=lambda so_far: deck.results.save_loadtest(deployment, so_far))
    deck.results.save_loadtest(deployment, result)
    return result
