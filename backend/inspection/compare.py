"""Two models on one test set: which is better, where, and whether the difference could be chance.

The comparison itself is pure (two evaluations of the same labelled set in, a `Comparison` out);
the paired test is McNemar's on the images exactly one of the two gets right.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ComparisonError
from .evaluation import Evaluation

EXACT_BELOW = 25  # discordant pairs below this: exact binomial test; else chi-square, continuity-corrected
SIGNIFICANT = 0.05


def mcnemar(a_only: int, b_only: int) -> tuple[float, str]:
    """(two-sided p-value, the test's name) for `a_only` images only A gets right and `b_only` only B
    gets right. Under "equally good" each discordant image is a fair coin."""
    from scipy.stats import binomtest, chi2

    if a_only < 0 or b_only < 0:
        raise ValueError("counts of discordant pairs are never negative")
    discordant = a_only + b_only
    if discordant == 0:
        return 1.0, "nothing in the test set told them apart"
    if discordant < EXACT_BELOW:
        return float(binomtest(min(a_only, b_only), discordant, 0.5).pvalue), "McNemar, exact binomial"
    statistic = (abs(a_only - b_only) - 1) ** 2 / discordant
    return float(chi2.sf(statistic, df=1)), "McNemar, chi-square with continuity correction"


def p_value_words(p_value: float) -> str:
    """What a p-value means for a stakeholder: the end of a sentence that starts "A difference like this"."""
    if p_value < 0.001:
        return "is very unlikely to be chance (p < 0.001)"
    if p_value < SIGNIFICANT:
        return f"is unlikely to be chance (p = {p_value:.3f})"
    return f"could well be chance (p = {p_value:.2f}): on this test set the two cannot be told apart"


@dataclass(frozen=True)
class Side:
    """One of the two compared: what was deployed and how it did."""

    deployment: str
    model: str  # "name:version"
    accuracy: float
    correct: int

    def to_json(self) -> dict[str, Any]:
        return {"deployment": self.deployment, "model": self.model, "accuracy": self.accuracy,
                "correct": self.correct}


@dataclass(frozen=True)
class ClassChange:
    """Recall of one class for A and for B."""

    label: str
    n: int
    recall_a: float
    recall_b: float

    @property
    def change(self) -> float:
        return self.recall_b - self.recall_a


DISAGREEMENT_KINDS = {"b_right": "B right, A wrong", "a_right": "A right, B wrong",
                      "both_wrong": "both wrong, differently"}


@dataclass(frozen=True)
class Comparison:
    """A and B scored on the same `n` images of `dataset`.

    Attributes:
        a_only_right, b_only_right: images exactly one of them gets right (McNemar's discordant pairs).
        confusion_delta: B's normalised confusion matrix minus A's (rows normalised, diagonal zeroed):
            above zero, B takes that true label for that predicted one more often than A does.
        predictions_a, predictions_b, y_true: label indices, in test-set order.
        noun: what one of the test set's items is to people: "image", or a table's "row".
    """

    dataset: str
    labels: tuple[str, ...]
    a: Side
    b: Side
    a_only_right: int
    b_only_right: int
    p_value: float
    test: str
    per_class: tuple[ClassChange, ...]
    confusion_delta: np.ndarray
    predictions_a: np.ndarray
    predictions_b: np.ndarray
    y_true: np.ndarray
    noun: str = "image"

    @property
    def n(self) -> int:
        return len(self.y_true)

    @property
    def delta(self) -> float:
        """B's accuracy minus A's."""
        return self.b.accuracy - self.a.accuracy

    @property
    def significant(self) -> bool:
        return self.p_value < SIGNIFICANT

    def disagreements(self, kind: str | None = None) -> np.ndarray:
        """Indices of the images the two label differently (`kind`: one of DISAGREEMENT_KINDS)."""
        differ = self.predictions_a != self.predictions_b
        a_right, b_right = self.predictions_a == self.y_true, self.predictions_b == self.y_true
        masks = {None: differ, "b_right": differ & b_right, "a_right": differ & a_right,
                 "both_wrong": differ & ~a_right & ~b_right}
        if kind not in masks:
            raise ValueError(f"unknown kind {kind!r}: one of {', '.join(DISAGREEMENT_KINDS)}")
        return np.flatnonzero(masks[kind])

    def taken_for(self, true: int, predicted: int) -> np.ndarray:
        """Indices of the images of true label `true` that A or B took for `predicted` (a cell of the
        difference matrix)."""
        return np.flatnonzero((self.y_true == true) & ((self.predictions_a == predicted)
                                                       | (self.predictions_b == predicted)))

    @property
    def n_disagree(self) -> int:
        return int(np.count_nonzero(self.predictions_a != self.predictions_b))

    def biggest_changes(self, top: int = 3) -> tuple[tuple[str, str, float], ...]:
        """(true, predicted, change) of the confusions that moved most, largest move first."""
        flat = np.argsort(-np.abs(self.confusion_delta), axis=None, kind="stable")[:top]
        found = []
        for k in flat:
            i, j = np.unravel_index(k, self.confusion_delta.shape)
            if self.confusion_delta[i, j] != 0:
                found.append((self.labels[i], self.labels[j], float(self.confusion_delta[i, j])))
        return tuple(found)

    def disagreement_words(self) -> str:
        """How the images they answer differently on add up, in plain words (the three kinds of
        DISAGREEMENT_KINDS: only B right + only A right + both wrong, differently = all disagreements)."""
        if self.n_disagree == 0:
            return f"They give the same answer on every {self.noun}."
        both = self.n_disagree - self.a_only_right - self.b_only_right
        parts = [f"{self.b.deployment} alone is right on {self.b_only_right:,}",
                 f"{self.a.deployment} alone on {self.a_only_right:,}"]
        if both:
            parts.append(f"both are wrong on the other {both:,}, each with a different wrong answer")
        return (f"They answer differently on {self.n_disagree:,} {self.noun}{'s' if self.n_disagree != 1 else ''}: "
                + ", ".join(parts[:-1]) + " and " + parts[-1] + ".")

    def verdict(self, decimals: int = 2) -> str:
        """The answer in plain words: who is better, by how much (points and accuracies with `decimals`
        decimals), how the disagreements add up, and whether the difference could be chance."""
        if self.a_only_right == self.b_only_right:
            better = f"Both get the same number of {self.noun}s right"
        else:
            winner, loser = (self.b, self.a) if self.delta > 0 else (self.a, self.b)
            better = (f"{winner.deployment} ({winner.model}) is better by {abs(self.delta) * 100:.{decimals}f} points "
                      f"({loser.accuracy:.{decimals}%} → {winner.accuracy:.{decimals}%})")
        told_apart = self.a_only_right + self.b_only_right
        deciding = (f" Only the {told_apart:,} that one of them gets right tell them apart."
                    if told_apart != self.n_disagree and told_apart else "")
        return (f"{better}. {self.disagreement_words()}{deciding} A difference like this "
                f"{p_value_words(self.p_value)} [{self.test}].")

    def to_json(self) -> dict[str, Any]:
        return {"dataset": self.dataset, "n": self.n, "labels": list(self.labels), "a": self.a.to_json(),
                "b": self.b.to_json(), "delta": self.delta, "p_value": self.p_value, "test": self.test,
                "significant": self.significant, "verdict": self.verdict(), "n_disagree": self.n_disagree,
                "a_only_right": self.a_only_right, "b_only_right": self.b_only_right,
                "both_wrong_differently": len(self.disagreements("both_wrong")),
                "per_class": [{"label": c.label, "n": c.n, "recall_a": c.recall_a, "recall_b": c.recall_b,
                               "change": c.change} for c in self.per_class],
                "confusion_delta": [[round(float(v), 6) for v in row] for row in self.confusion_delta]}


def compare(a: Evaluation, b: Evaluation, *, dataset: str, a_name: str, a_model: str, b_name: str,
            b_model: str, noun: str = "image") -> Comparison:
    """Compares two evaluations of the same test set.

    Raises:
        ComparisonError: they were not made on the same labelled images.
    """
    if a.labels != b.labels or not np.array_equal(a.y_true, b.y_true):
        raise ComparisonError("the two evaluations were not made on the same test set: score both on one set")
    a_right, b_right = a.predictions == a.y_true, b.predictions == b.y_true
    a_only, b_only = int(np.count_nonzero(a_right & ~b_right)), int(np.count_nonzero(b_right & ~a_right))
    p_value, test = mcnemar(a_only, b_only)
    support = a.confusion.sum(axis=1)
    per_class = tuple(ClassChange(label, int(support[i]), float(a.recall[i]), float(b.recall[i]))
                      for i, label in enumerate(a.labels))
    return Comparison(dataset=dataset, labels=a.labels,
                      a=Side(a_name, a_model, a.accuracy, int(a_right.sum())),
                      b=Side(b_name, b_model, b.accuracy, int(b_right.sum())),
                      a_only_right=a_only, b_only_right=b_only, p_value=p_value, test=test, per_class=per_class,
                      confusion_delta=b.normalized - a.normalized, predictions_a=a.predictions,
                      predictions_b=b.predictions, y_true=a.y_true, noun=noun)
