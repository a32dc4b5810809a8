"""A Healthy deployment as a client talks to it: its scoring URI, its key and what bodies it takes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..client import RawAnswer
from ..runtimes.base import Deployment

if TYPE_CHECKING:
    from ..context import ModelDeck


@dataclass(frozen=True)
class Reach:
    """Attributes: the deployment; its key (None without key auth); the dtypes an .npy body may hold
    (() when it takes JSON only)."""

    deployment: Deployment
    key: str | None
    npy_dtypes: tuple[str, ...]

    @property
    def uri(self) -> str:
        return self.deployment.scoring_uri or ""

    @property
    def binary(self) -> bool:
        """Whether to send the fast application/x-npy body."""
        return bool(self.npy_dtypes)

    @property
    def uint8(self) -> bool:
        """Whether its script takes 8-bit pixels as they are (a quarter of the bytes)."""
        return "uint8" in self.npy_dtypes


def reach_of(deck: ModelDeck, deployment: Deployment, *, use_json: bool = False) -> Reach:
    """How to reach the deployment: its URI, key and bodies (JSON only when `use_json`, the tutorial's wire format).

    Raises:
        ModelDeckError: its key cannot be read.
    """
    key = deck.deployments.key_for(deployment)
    dtypes = () if use_json else deck.client.npy_dtypes(deployment.scoring_uri or "", key=key,
                                                       instance=deployment.record.uid)
    return Reach(deployment, key, dtypes)


def send_as_is(deck: ModelDeck, deployment: Deployment, body: bytes, content_type: str, *,
               key: str | None) -> RawAnswer:
    """POSTs `body` to the deployment as it is (with `key`, or none) and returns its answer as it came,
    refusals included; raises EndpointUnreachableError when nothing answers."""
    return deck.client.send_raw(deployment.scoring_uri or "", body, content_type, key=key)
