"""Two deployments (or model versions, deployed on the fly) scored on one test set and compared,
kept, as the CLI and the Compare page ask for them."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..data.testset import TestSet
from ..errors import ComparisonError
from ..inspection.compare import Comparison, compare
from ..inspection.evaluation import Evaluation
from ..progress import Progress, quiet, step
from ..registry import Model
from ..runtimes.base import Deployment
from .scoring import score_and_keep
from .testsets import all_testsets

if TYPE_CHECKING:
    from ..context import ModelDeck


def why_incomparable(a: Model | None, b: Model | None) -> str | None:
    """Why two models cannot be compared on one test set (different inputs or classes), or None."""
    if a is None or b is None:
        return None
    if a.signature.n_features and b.signature.n_features and a.signature.n_features != b.signature.n_features:
        return f"{a.id} takes {a.signature.n_features} values per row and {b.id} {b.signature.n_features}"
    classes = [m.signature.class_labels for m in (a, b)]
    if classes[0] and classes[1] and sorted(classes[0]) != sorted(classes[1]):
        return (f"{a.id} answers {', '.join(classes[0][:3])}, ... and {b.id} answers {', '.join(classes[1][:3])}, "
                "...: they do not predict the same classes")
    return None


def contender(deck: ModelDeck, ref: str, progress: Progress = quiet) -> Deployment:
    """The Healthy deployment `ref` names, or for a model version "NAME:VERSION" a Healthy deployment
    of this home serving exactly it, deployed now (default configuration) when there is none.

    Raises:
        ModelNotFoundError, DeploymentNotFoundError, DeploymentNotHealthyError, and what a deploy raises.
    """
    if ":" not in ref:
        return deck.deployments.healthy(ref)
    model = deck.registry.get_ref(ref)
    found = deck.deployments.serving(model)
    if found is not None:
        step(progress, f"{model.id} is served by {found.name}")
        return found
    name = deck.deployments.suggest_name(model)
    step(progress, f"deploying {model.id} as {name} to compare it")
    return deck.deployments.deploy_and_wait(model, name, progress=progress)


def compare_deployments(deck: ModelDeck, a: Deployment, b: Deployment, testset: TestSet, *,
                        source: str, use_json: bool = False,
                        progress: Callable[[str, int, int], None] | None = None) -> Comparison:
    """Scores the whole test set at both deployments (kept as `score_and_keep` keeps it) and compares them;
    progress(which deployment, done, total) while scoring.

    Raises:
        ComparisonError: A and B are the same deployment, or predict different classes.
        ScoringError: as `score_and_keep`.
    """
    check_comparable(deck, a, b)
    evaluations = []
    for deployment in (a, b):
        def scored(done: int, total: int, name: str = deployment.name) -> None:
            if progress is not None:
                progress(name, done, total)

        evaluations.append(score_and_keep(deck, deployment, testset, source=source, use_json=use_json,
                                          progress=scored))
    return comparison_of(evaluations[0], evaluations[1], testset.name, a, b, testset.rows_noun)


def kept_comparison(deck: ModelDeck, a: Deployment, b: Deployment, dataset: str) -> Comparison | None:
    """The comparison of the two deployments' kept scorings of `dataset` (None unless both are kept and
    were made on the same images). Reads only."""
    kept = [deck.results.load_evaluation(d, dataset) for d in (a, b)]
    if kept[0] is None or kept[1] is None or a.record.uid == b.record.uid:
        return None
    try:
        noun = "row" if any(i.is_table for i in all_testsets(deck) if i.name == dataset.split("+", 1)[0]) else "image"
        return comparison_of(kept[0], kept[1], dataset, a, b, noun)
    except ComparisonError:
        return None


def check_comparable(deck: ModelDeck, a: Deployment, b: Deployment) -> None:
    if a.record.uid == b.record.uid:
        raise ComparisonError(f"{a.name} is both A and B: pick two different deployments")
    why = why_incomparable(deck.deployments.model_of(a), deck.deployments.model_of(b))
    if why is not None:
        raise ComparisonError(f"{a.name} and {b.name} cannot be compared: {why}")


def comparison_of(first: Evaluation, second: Evaluation, dataset: str, a: Deployment, b: Deployment,
                  noun: str = "image") -> Comparison:
    return compare(first, second, dataset=dataset, a_name=a.name,
                   a_model=f"{a.record.model_name}:{a.record.model_version}", b_name=b.name,
                   b_model=f"{b.record.model_name}:{b.record.model_version}", noun=noun)


@dataclass(frozen=True)
class CompareChoices:
    """What can be compared: Healthy deployments by name and the registered versions none of them
    serves (by id, deployed on the fly when chosen), each option's model (None: not in this registry),
    and the A and B to start with (B the newest version of the model with the most versions here, A the
    one before it)."""

    deployments: dict[str, Deployment]
    versions: dict[str, Model]
    models: dict[str, Model | None]
    default_a: str | None
    default_b: str | None

    @property
    def options(self) -> list[str]:
        return [*self.deployments, *self.versions]


def compare_choices(deck: ModelDeck, healthy: Iterable[Deployment]) -> CompareChoices:
    """The choices among the `healthy` deployments and this registry's versions. Reads only."""
    deployments = {d.name: d for d in healthy}
    served = {(d.record.model_name, d.record.model_version, d.record.model_sha256) for d in deployments.values()}
    versions = {m.id: m for m in deck.registry.list() if (m.name, m.version, m.sha256) not in served}
    models: dict[str, Model | None] = {name: deck.deployments.model_of(d) for name, d in deployments.items()}
    models.update(versions)
    options = [*deployments, *versions]
    if len(options) < 2:
        return CompareChoices(deployments, versions, models, None, None)
    known = [(o, m) for o in options if (m := models[o]) is not None]
    if not known:
        return CompareChoices(deployments, versions, models, options[0], options[1])
    counts = {name: sum(1 for _, m in known if m.name == name) for name in {m.name for _, m in known}}
    name = max(counts, key=lambda n: (counts[n], n == "sklearn_mnist", n))
    family = sorted(((o, m) for o, m in known if m.name == name), key=lambda om: (om[1].version, om[0] in deployments))
    newest, newest_model = family[-1]
    older = [o for o, m in family[:-1] if m.version < newest_model.version] or [o for o, _ in family[:-1]]
    return CompareChoices(deployments, versions, models,
                          older[-1] if older else next(o for o in options if o != newest), newest)
