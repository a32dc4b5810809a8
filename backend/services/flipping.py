"""What would make an image another class, as the CLI and the Test page ask: the search of inspection.flip, its
scoring done at a Healthy deployment."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np

from ..data.testset import TestSet
from ..errors import InvalidExplanationError
from ..inspection.flip import MAX_STEPS, Flip, flip
from ..runtimes.base import Deployment
from .explaining import class_index_of
from .scoring import score_rows

if TYPE_CHECKING:
    from ..context import ModelDeck


def counterfactual_image(deck: ModelDeck, deployment: Deployment, testset: TestSet, image: np.ndarray, to: str, *,
                         max_steps: int = MAX_STEPS) -> Flip:
    """The smallest edit the search finds that makes the deployment answer class `to` for `image` (a row of
    `testset`'s form), within `max_steps` marks (a request each, and two more to take back marks not needed).

    Raises:
        InvalidExplanationError: a table, a class the set does not have, or an endpoint that gives labels only.
        ScoringError: the endpoint failed.
    """
    if testset.image_shape is None:
        raise InvalidExplanationError(f"test set {testset.name!r} is a table: for a row, the what-if's nearest row of "
                                      "another class answers this")
    target = class_index_of(testset, to)

    def score(images: np.ndarray) -> np.ndarray:
        _, probabilities = score_rows(deck, deployment, images, testset)
        if probabilities is None:
            raise InvalidExplanationError("this scoring script returns labels only: the search needs probabilities to "
                                          "tell which mark brings the answer closer")
        return probabilities

    return flip(image.astype(np.float32), target, score, testset.image_shape, testset.value_range, max_steps)
