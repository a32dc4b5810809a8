"""Which test sets a deployment (or two, to compare) can be scored on, and the one to use."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..datasets import DatasetInfo, TestSet, datasets_for, load_dataset
from ..errors import DatasetMismatchError
from ..registry import Model, Signature
from ..runtimes.base import Deployment

if TYPE_CHECKING:
    from ..context import ModelDeck


@dataclass(frozen=True)
class TestSetChoice:
    """The sets that fit every model asked about, and the others of this home, each with why not."""

    fitting: tuple[DatasetInfo, ...]
    hidden: tuple[tuple[DatasetInfo, str], ...]


def fitting_testsets(deck: ModelDeck, *models: Model | None) -> TestSetChoice:
    """The test sets that fit all `models` (every set for a model not in this registry: None). Reads only."""
    signatures = [m.signature for m in models if m is not None] or [Signature()]
    fitting, hidden = datasets_for(signatures[0], deck.settings.datasets_dir)
    for signature in signatures[1:]:
        _, also_hidden = datasets_for(signature, deck.settings.datasets_dir)
        why_not = {info.name: why for info, why in also_hidden}
        hidden += [(info, why_not[info.name]) for info in fitting if info.name in why_not]
        fitting = [info for info in fitting if info.name not in why_not]
    return TestSetChoice(tuple(fitting), tuple(hidden))


def choose_testset(deck: ModelDeck, *models: Model | None, requested: str | None = None) -> TestSet:
    """`requested`, checked against each model's signature, or the first test set that fits them all
    (MNIST when no model is known here).

    Raises:
        DatasetError: unknown set, or not installed. DatasetMismatchError: it (or every set) does not fit.
    """
    known = [m for m in models if m is not None]
    user_root = deck.settings.datasets_dir
    if requested is not None:
        for model in known[1:]:
            load_dataset(requested, model.signature, user_root)  # raises when it does not fit
        return load_dataset(requested, known[0].signature if known else None, user_root)
    if not known:
        return load_dataset("mnist", None, user_root)
    fitting = fitting_testsets(deck, *known).fitting
    if not fitting:
        raise DatasetMismatchError("no test set fits " + " and ".join(m.id for m in known) + ": see `datasets list`")
    return load_dataset(fitting[0].name, known[0].signature, user_root)


def scoring_target(deck: ModelDeck, name: str, requested: str | None = None) -> tuple[Deployment, TestSet]:
    """The Healthy deployment `name` and the test set to score it on (`choose_testset` its model).

    Raises:
        DeploymentNotFoundError, DeploymentNotHealthyError, and what `choose_testset` raises.
    """
    deployment = deck.deployments.healthy(name)
    return deployment, choose_testset(deck, deck.deployments.model_of(deployment), requested=requested)
