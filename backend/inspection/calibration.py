"""How well a model's confidence matches how often it is right: the reliability diagram's bins and the
expected calibration error (ECE) of a whole-set scoring.

Each answer's confidence is the probability the model gave the label it answered. Answers are put in
`BINS` equal-width bins of confidence ((0, 1/15], (1/15, 2/15], ..., (14/15, 1]; a confidence of 0
goes in the first); per bin, the share of right answers is compared with the mean confidence. The ECE
is the average gap, each bin weighted by its share of the answers (Guo et al., 2017): 0 for a model
whose "90 % sure" answers are right 90 % of the time, and so on for every bin.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .evaluation import Evaluation

BINS = 15
SURE = 0.99  # a wrong answer given with at least this confidence is counted as "sure and wrong"


@dataclass(frozen=True)
class CalibrationBin:
    """Answers whose confidence lies in (`low`, `high`]: how many, how often right, how sure on average
    (accuracy and confidence are 0 for an empty bin)."""

    low: float
    high: float
    count: int
    accuracy: float
    confidence: float

    @property
    def gap(self) -> float:
        """Mean confidence minus accuracy: above 0 the model is over-confident in this bin."""
        return self.confidence - self.accuracy


@dataclass(frozen=True)
class Calibration:
    """The reliability diagram of one scoring: its bins, and `sure_wrong` (wrong answers given with a
    confidence of at least SURE)."""

    bins: tuple[CalibrationBin, ...]
    sure_wrong: int = 0

    @property
    def n(self) -> int:
        return sum(b.count for b in self.bins)

    @property
    def ece(self) -> float:
        """Expected calibration error: the answers' mean |confidence - accuracy| over their bins (0..1)."""
        n = self.n
        return sum(b.count * abs(b.gap) for b in self.bins) / n if n else 0.0

    @property
    def accuracy(self) -> float:
        n = self.n
        return sum(b.count * b.accuracy for b in self.bins) / n if n else 0.0

    @property
    def mean_confidence(self) -> float:
        n = self.n
        return sum(b.count * b.confidence for b in self.bins) / n if n else 0.0

    def summary(self) -> str:
        """The finding in plain words, for a stakeholder."""
        if self.n == 0:
            return "No answers to measure."
        lean = self.mean_confidence - self.accuracy
        how = ("over-confident: it is surer than it is right" if lean > 0.01 else
               "under-confident: it is right more often than it says" if lean < -0.01 else
               "about as sure as it is right, overall")
        sure = (f" {self.sure_wrong:,} wrong answer{'s were' if self.sure_wrong != 1 else ' was'} given with "
                f"{SURE:.0%} confidence or more." if self.sure_wrong else "")
        return (f"On average the model is {self.mean_confidence:.1%} sure of its answers and right "
                f"{self.accuracy:.1%} of the time — {how}. Expected calibration error {self.ece:.1%} "
                f"({len(self.bins)} equal-width bins of confidence): the typical gap between how sure it is "
                f"and how often it is right.{sure}")

    def to_json(self) -> dict[str, Any]:
        """Per-bin counts, accuracy and confidence (what a kept evaluation stores)."""
        return {"bins": [[b.low, b.high, b.count, b.accuracy, b.confidence] for b in self.bins],
                "sure_wrong": self.sure_wrong}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> "Calibration":
        return cls(bins=tuple(CalibrationBin(float(lo), float(hi), int(c), float(a), float(conf))
                              for lo, hi, c, a, conf in data["bins"]), sure_wrong=int(data.get("sure_wrong", 0)))


def reliability(confidence: Sequence[float] | np.ndarray, correct: Sequence[bool] | np.ndarray,
                bins: int = BINS) -> Calibration:
    """The reliability diagram of answers given with `confidence` (0..1), `correct` telling which were right.

    Raises:
        ValueError: the two differ in length, a confidence is outside [0, 1], or `bins` < 1.
    """
    conf = np.asarray(confidence, dtype=np.float64).ravel()
    right = np.asarray(correct, dtype=bool).ravel()
    if len(conf) != len(right):
        raise ValueError(f"{len(conf)} confidences for {len(right)} answers")
    if bins < 1:
        raise ValueError("at least one bin")
    if len(conf) and (not np.all(np.isfinite(conf)) or conf.min() < 0 or conf.max() > 1 + 1e-6):
        raise ValueError("confidences are probabilities, from 0 to 1")
    # Right-closed bins; a confidence on an edge stays below it whether it was kept as float64 or float32
    # (float32's 0.6 is 0.6000000238: a kept scoring reloaded must fall in the same bins as when scored)
    which = np.clip(np.ceil(conf * bins - 1e-6).astype(np.int64) - 1, 0, bins - 1)
    counts = np.bincount(which, minlength=bins)
    hits = np.bincount(which, weights=right.astype(np.float64), minlength=bins)
    sums = np.bincount(which, weights=conf, minlength=bins)
    shares = np.divide(hits, counts, out=np.zeros(bins), where=counts > 0)
    means = np.divide(sums, counts, out=np.zeros(bins), where=counts > 0)
    return Calibration(bins=tuple(CalibrationBin(k / bins, (k + 1) / bins, int(counts[k]), float(shares[k]),
                                                 float(means[k])) for k in range(bins)),
                       sure_wrong=int(np.count_nonzero(~right & (conf >= SURE))))


def calibration_of(evaluation: Evaluation, bins: int = BINS) -> Calibration | None:
    """The reliability diagram of a scoring (None without probabilities: a labels-only endpoint)."""
    confidence = evaluation.confidence
    if confidence is None:
        return None
    return reliability(confidence, evaluation.predictions == evaluation.y_true, bins)
