"""Looking after the deployments a user has: the listing, one found by name (Healthy, or with its model),
its logs, its keys (rotated one at a time) and its deletion; the name a new deploy is offered."""

from __future__ import annotations

from typing import TYPE_CHECKING

from ..deployments import DeploymentList
from ..errors import ModelDeckError
from ..registry import Model
from ..runtimes.base import Deployment, Keys
from .endpoints import release

if TYPE_CHECKING:
    from ..context import ModelDeck


def listing(deck: ModelDeck, *, all_homes: bool = False) -> DeploymentList:
    """Every deployment of the home (of every home on the engine with `all_homes`) and each runtime's status."""
    return deck.deployments.snapshot(all_homes=all_homes)


def healthy_deployment(deck: ModelDeck, name: str, runtime: str | None = None) -> Deployment:
    """The deployment `name`, Healthy (raises a ModelDeckError saying why not, else)."""
    return deck.deployments.healthy(name, runtime)


def model_of(deck: ModelDeck, deployment: Deployment) -> Model | None:
    """The registered model `deployment` serves, or None when it is no longer registered as it was."""
    return deck.deployments.model_of(deployment)


def explain(deck: ModelDeck, deployment: Deployment, error: ModelDeckError) -> ModelDeckError:
    """`error`, a failed request to `deployment`, as its user should read it: where its server gave no answer,
    a DeploymentDownError with the deployment's state now and why; any other error as it is."""
    return deck.deployments.explain(deployment, error)


def logs(deck: ModelDeck, name: str, tail: int | None = None, *, runtime: str | None = None) -> str:
    """The deployment's output (`tail`: its last lines only)."""
    return deck.deployments.get_logs(name, tail, runtime=runtime)


def keys(deck: ModelDeck, name: str, *, runtime: str | None = None) -> Keys:
    """The deployment's two keys (raises when it has no key auth)."""
    return deck.deployments.keys(name, runtime=runtime)


def key_for(deck: ModelDeck, deployment: Deployment) -> str | None:
    """The key a client sends to `deployment`, None without key auth."""
    return deck.deployments.key_for(deployment)


def regenerate_key(deck: ModelDeck, name: str, which: str, *, runtime: str | None = None) -> Keys:
    """Replaces the "primary" or "secondary" key; the other one keeps working."""
    return deck.deployments.regen_key(name, which, runtime=runtime)


def delete(deck: ModelDeck, name: str, *, runtime: str | None = None, force: bool = False) -> None:
    """Deletes the deployment and everything kept for it; first takes it from behind every endpoint (refused while
    it carries traffic there, unless `force` moves its share to the others first)."""
    release(deck, name, force=force)
    deck.deployments.delete(name, runtime=runtime)


def suggest_name(deck: ModelDeck, model: Model, taken: set[str]) -> str:
    """A free deployment name for `model` (none of `taken`)."""
    return deck.deployments.suggest_name(model, taken)
