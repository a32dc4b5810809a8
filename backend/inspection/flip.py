"""What would make an image another class: a small edit, found through the answers of an endpoint alone, that makes
the model answer the class asked for. Pure logic: the service passes a function that scores a batch of images.

The search paints: each step tries every small brush mark at once (ink added beside the image's strokes, or ink
taken away from them: marks a pen or an eraser would make, not noise), scored in one request, and keeps the mark that
raises the asked class's log-odds against the best other class most. It stops once the model answers that class, then
takes back every mark it can do without (one more request), so what is left is needed. It gives up after MAX_STEPS
steps."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from ..errors import InvalidExplanationError

MAX_STEPS = 40  # marks tried in turn at most (a request each)
NEAR_INK = 1  # pixels from the image's ink where ink may be added: strokes grow from strokes, no specks apart
TINY = 1e-12

Scorer = Callable[[np.ndarray], np.ndarray]
"""Images (n, pixels) -> probabilities (n, classes), from the endpoint."""


@dataclass(frozen=True)
class Mark:
    """One brush mark: the pixels it sets and the value it sets them to."""

    pixels: np.ndarray  # flat indices
    value: float


@dataclass(frozen=True)
class Flip:
    """The edit found.

    Attributes:
        original, edited: the image before and after (flat, as scored).
        target: the class asked for (an index); answer: what the model says of `edited` (== target when found).
        probabilities: the model's for `edited`; start: for `original`.
        marks: the marks kept; steps: marks tried in turn; requests: scoring requests made.
        found: whether the model answers `target` for `edited`.
    """

    original: np.ndarray
    edited: np.ndarray
    target: int
    answer: int
    probabilities: np.ndarray
    start: np.ndarray
    marks: int
    steps: int
    requests: int
    found: bool

    @property
    def said_already(self) -> bool:
        """The model answered `target` for the image as it was: nothing to search."""
        return int(np.argmax(self.start)) == self.target

    @property
    def changed_pixels(self) -> int:
        return int(np.count_nonzero(self.edited != self.original))


def brushes(image_shape: tuple[int, int], side: int = 2) -> list[np.ndarray]:
    """Every `side` x `side` square of the image, as flat pixel indices."""
    height, width = image_shape
    return [np.array([(y + dy) * width + x + dx for dy in range(side) for dx in range(side)])
            for y in range(height - side + 1) for x in range(width - side + 1)]


def candidate_marks(image: np.ndarray, image_shape: tuple[int, int], value_range: tuple[float, float]) -> list[Mark]:
    """The marks worth trying on `image`: ink added where the square is mostly empty and near ink, ink taken away
    where the square holds ink."""
    low, high = value_range
    span = high - low
    inked = image > low + 0.25 * span
    near = _dilated(inked.reshape(image_shape), NEAR_INK).ravel()
    marks = []
    for square in brushes(image_shape):
        ink = inked[square]
        if ink.any():
            marks.append(Mark(square, low))
        if not ink.all() and near[square].any():
            marks.append(Mark(square, high))
    return marks


def _dilated(mask: np.ndarray, reach: int) -> np.ndarray:
    grown = mask.copy()
    for _ in range(reach):
        step = grown.copy()
        step[1:, :] |= grown[:-1, :]
        step[:-1, :] |= grown[1:, :]
        step[:, 1:] |= grown[:, :-1]
        step[:, :-1] |= grown[:, 1:]
        grown = step
    return grown


def margin(probabilities: np.ndarray, target: int) -> np.ndarray:
    """log P(target) - log P(the likeliest other class), per row: > 0 exactly where the target is the answer."""
    p = np.maximum(probabilities.astype(np.float64), TINY)
    others = np.delete(p, target, axis=1).max(axis=1)
    return np.log(p[:, target]) - np.log(others)


def applied(image: np.ndarray, marks: list[Mark]) -> np.ndarray:
    edited = image.copy()
    for mark in marks:
        edited[mark.pixels] = mark.value
    return edited


def flip(image: np.ndarray, target: int, score: Scorer, image_shape: tuple[int, int],
         value_range: tuple[float, float], max_steps: int = MAX_STEPS) -> Flip:
    """The smallest edit this search finds that makes the model answer `target` for `image` (see the module).

    Raises:
        InvalidExplanationError: `target` is not one of the model's classes.
    """
    start = score(image[None, :])[0]
    requests = 1
    if not 0 <= target < len(start):
        raise InvalidExplanationError(f"the model has classes 0 to {len(start) - 1}, not {target}")
    kept: list[Mark] = []
    current, probabilities, steps = image.copy(), start, 0
    while int(np.argmax(probabilities)) != target and steps < max_steps:
        marks = [m for m in candidate_marks(current, image_shape, value_range)
                 if not np.array_equal(current[m.pixels], np.full(len(m.pixels), m.value, dtype=current.dtype))]
        if not marks:
            break
        batch = np.stack([applied(current, [m]) for m in marks])
        answers = score(batch)
        requests, steps = requests + 1, steps + 1
        best = int(np.argmax(margin(answers, target)))
        kept.append(marks[best])
        current, probabilities = batch[best], answers[best]
    found = int(np.argmax(probabilities)) == target
    if found and len(kept) > 1:  # take back each mark the answer does not need (one request for all)
        without = np.stack([applied(image, kept[:k] + kept[k + 1:]) for k in range(len(kept))])
        still = np.argmax(score(without), axis=1) == target
        requests += 1
        needed = [mark for k, mark in enumerate(kept) if not still[k]]
        if len(needed) < len(kept):
            trimmed = applied(image, needed)
            answer = score(trimmed[None, :])[0]
            requests += 1
            if int(np.argmax(answer)) == target:
                kept, current, probabilities = needed, trimmed, answer
    return Flip(image, current, target, int(np.argmax(probabilities)), probabilities, start, len(kept), steps,
                requests, found)
