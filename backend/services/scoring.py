"""Scoring at a Healthy deployment as a user asks for it: random images, the whole set, a robustness
curve, one image of their own. Each result is kept for the dashboard (by the deployment's uid) and the
whole-set scorings are added to the evaluation history, whichever of the CLI or a page asked."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..data.preprocess import InputForm, PreparedDigit, form_of, model_input
from ..data.testset import TestSet
from ..errors import UserImageError
from ..inspection.evaluation import (
    Curve,
    Evaluation,
    RobustnessPoint,
    Samples,
    evaluate_endpoint,
    robustness,
    rows_per_request,
    sample,
    score_batches,
)
from ..inspection.evaluation_log import EvaluationRecord
from ..inspection.perturb import Perturbation
from ..runtimes.base import Deployment
from .reaching import reach_of

if TYPE_CHECKING:
    from ..context import ModelDeck


@dataclass(frozen=True)
class SentImages:
    """Random test images as scored, and with a perturbation the same images perturbed (both kept)."""

    samples: Samples
    perturbed: Samples | None = None


def send_random(deck: ModelDeck, deployment: Deployment, testset: TestSet, n: int, *, seed: int | None = None,
                perturbation: Perturbation | None = None, use_json: bool = False) -> SentImages:
    """`n` random images of `testset` (a fresh seed unless given), with probabilities where the script
    gives them; kept under the set's name, the perturbed ones under the perturbed set's.

    Raises:
        ScoringError: the endpoint failed or answered something else than labels.
    """
    reach = reach_of(deck, deployment, use_json=use_json)
    seed = seed if seed is not None else int(np.random.default_rng().integers(2**31))
    samples = sample(deck.client, reach.uri, testset, n, seed=seed, use_binary=reach.binary, key=reach.key)
    deck.results.save_samples(deployment, testset.name, samples)
    if perturbation is None:
        return SentImages(samples)
    perturbed = sample(deck.client, reach.uri, testset, n, seed=seed, use_binary=reach.binary,
                       key=reach.key, perturbation=perturbation)
    deck.results.save_samples(deployment, perturbation.name_of(testset), perturbed)
    return SentImages(samples, perturbed)


def score_and_keep(deck: ModelDeck, deployment: Deployment, testset: TestSet, *, source: str,
                   perturbation: Perturbation | None = None, use_json: bool = False, batch_size: int | None = None,
                   progress: Callable[[int, int], object] | None = None) -> Evaluation:
    """Scores the whole `testset` (perturbed when asked) at a Healthy `deployment`, keeps the result for
    the dashboard (under the scored set's name) and adds it to the evaluation history.

    Raises:
        ScoringError: the endpoint failed or answered something else than labels.
    """
    reach = reach_of(deck, deployment, use_json=use_json)
    scored_set = perturbation.apply(testset) if perturbation is not None else testset
    started = time.perf_counter()
    evaluation = evaluate_endpoint(deck.client, reach.uri, scored_set, batch_size=batch_size or rows_per_request(testset),
                                   use_binary=reach.binary, key=reach.key, uint8=reach.uint8,
                                   progress=progress)
    deck.results.save_evaluation(deployment, scored_set.name, testset.y, evaluation)
    deck.evaluations.add(EvaluationRecord.of(deployment, scored_set, evaluation, source=source,
                                             duration_s=time.perf_counter() - started,
                                             perturbation=perturbation.key if perturbation else ""))
    return evaluation


def robustness_curve(deck: ModelDeck, deployment: Deployment, testset: TestSet, kind: str,
                     strengths: tuple[float, ...] | None = None, *, source: str, seed: int = 0,
                     use_json: bool = False, batch_size: int | None = None,
                     progress: Callable[[int, int], object] | None = None) -> tuple[RobustnessPoint, ...]:
    """Accuracy on the whole set perturbed by `kind` at each strength (default: the kind's curve for
    these images); each strength's scoring goes to the evaluation history and the curve is kept as it grows
    (a run cut short, say by a page's rerun, keeps its points so far, marked partial).
    progress(strengths done, strengths).

    Raises:
        InvalidPerturbationError: unknown kind or strength. ScoringError: as `score_and_keep`.
    """
    reach = reach_of(deck, deployment, use_json=use_json)
    so_far: list[RobustnessPoint] = []

    def keep(perturbation: Perturbation, perturbed: TestSet, evaluation: Evaluation, seconds: float) -> None:
        deck.evaluations.add(EvaluationRecord.of(deployment, perturbed, evaluation, duration_s=seconds, source=source,
                                                 perturbation=perturbation.key))
        so_far.append(RobustnessPoint(float(perturbation.strength), evaluation.accuracy))

    def step(done: int, total: int) -> None:
        deck.results.save_curve(deployment, testset.name, kind, Curve(tuple(so_far), total))
        if progress:
            progress(done, total)

    return robustness(deck.client, reach.uri, testset, kind, strengths, seed=seed, key=reach.key,
                      use_binary=reach.binary, batch_size=batch_size or rows_per_request(testset), progress=step,
                      on_evaluation=keep)


@dataclass(frozen=True)
class ImagePrediction:
    """What the deployment said of one image of the user's: the image as sent, the predicted class's
    index into the set's class names, and the probabilities per class (None: labels only)."""

    prepared: PreparedDigit
    predicted: int
    probabilities: np.ndarray | None

    @property
    def confidence(self) -> float | None:
        return None if self.probabilities is None else float(self.probabilities[self.predicted])


def input_form(testset: TestSet) -> InputForm:
    """What an image of the user's is made into for models scored on `testset`: its size, how its
    images fill it, its value range.

    Raises:
        UserImageError: `testset` is a table, not images.
    """
    if testset.image_shape is None:
        raise UserImageError(f"test set {testset.name!r} is a table: an image of yours cannot be scored with it")
    return form_of(testset.X, testset.image_shape, testset.value_range)


def prepared_image(testset: TestSet, image: bytes) -> np.ndarray:
    """A photo, scan or drawing (PNG/JPEG bytes) as a row of `testset`'s images (its size, fill and value range).

    Raises:
        UserImageError: not an image that can be read, or the set is a table.
    """
    return model_input(image, input_form(testset)).row


def predict_image(deck: ModelDeck, deployment: Deployment, testset: TestSet, image: bytes, *,
                  form: InputForm | None = None) -> ImagePrediction:
    """A photo, scan or drawing (PNG/JPEG bytes) prepared as `testset`'s images are (`form`, its
    `input_form`, when known already) and scored at the deployment.

    Raises:
        UserImageError: not an image that can be read. ScoringError: the endpoint failed.
    """
    prepared = model_input(image, form or input_form(testset))
    predicted, probabilities = score_rows(deck, deployment, prepared.row[None, :], testset)
    return ImagePrediction(prepared, int(predicted[0]), None if probabilities is None else probabilities[0])


def score_rows(deck: ModelDeck, deployment: Deployment, rows: np.ndarray, testset: TestSet, *,
               batch_size: int = 10_000) -> tuple[np.ndarray, np.ndarray | None]:
    """(label indices into the set's class names, probabilities in that order or None for labels only) of `rows`
    (in the form of `testset`'s), in requests of `batch_size` rows: what the deployment says of a user's image, an
    edited row, or the rows an explanation compares.

    Raises:
        ScoringError: the endpoint failed or answered something else than labels of those classes.
    """
    reach = reach_of(deck, deployment)
    return score_batches(deck.client, reach.uri, rows, testset, batch_size=batch_size, use_binary=reach.binary,
                         key=reach.key, proba=True)
