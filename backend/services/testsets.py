"""Which test sets a deployment (or two, to compare) can be scored on, and the one to use."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..data.catalogue import SetFit, fitting_testset, sets_fitting
from ..data.testset import TestSet
from ..registry import Model
from ..runtimes.base import Deployment

if TYPE_CHECKING:
    from ..context import ModelDeck


def fitting_testsets(deck: ModelDeck, *models: Model | None) -> SetFit:
    """The test sets that fit all `models` (every set for a model not in this registry: None). Reads only."""
    return sets_fitting(*(m.signature if m is not None else None for m in models), user_root=deck.settings.datasets_dir)


def choose_testset(deck: ModelDeck, *models: Model | None, requested: str | None = None) -> TestSet:
    """`requested`, checked against each model's signature, or the first test set that fits them all
    (MNIST when no model is known here).

    Raises:
        DatasetError: unknown set, or not installed. DatasetMismatchError: it (or every set) does not fit.
    """
    return fitting_testset(*models, user_root=deck.settings.datasets_dir, requested=requested)


def scoring_target(deck: ModelDeck, name: str, requested: str | None = None) -> tuple[Deployment, TestSet]:
    """The Healthy deployment `name` and the test set to score it on (`choose_testset` its model).

    Raises:
        DeploymentNotFoundError, DeploymentNotHealthyError, and what `choose_testset` raises.
    """
    deployment = deck.deployments.healthy(name)
    return deployment, choose_testset(deck, deck.deployments.model_of(deployment), requested=requested)
