"""Test sets as a user sees them: every set of the home, their own added or removed, which sets a
deployment (or two, to compare) can be scored on, and the one to use."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..data.cases import SET_NAMES, CaseBook
from ..data.catalogue import (
    SetFit,
    catalogue,
    dataset_title,
    fitting_testset,
    in_model_order,
    load_dataset,
    sets_fitting,
)
from ..data.store import import_dataset, import_uploaded, remove_dataset, revision
from ..data.testset import DatasetInfo, TestSet
from ..registry import Model
from ..runtimes.base import Deployment
from ..staging import STAGING_DIR

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


def all_testsets(deck: ModelDeck) -> list[DatasetInfo]:
    """The built-in sets (installed or not) and the home's own. Reads only."""
    return catalogue(deck.settings.datasets_dir)


def testset_title(deck: ModelDeck, name: str) -> str:
    """The title people read for the set `name` (a perturbed set's name gives its base set's). Reads only."""
    return dataset_title(name, deck.settings.datasets_dir)


def load_testset(deck: ModelDeck, name: str) -> TestSet:
    """The set called `name`.

    Raises:
        DatasetError: unknown name, or not installed.
    """
    return load_dataset(name, None, deck.settings.datasets_dir)


def for_model(testset: TestSet, model: Model | None) -> TestSet:
    """`testset` as `model` takes it: a table's columns in the order of the model's named features (the set
    itself when that is its order already, or the model names none). Reads only."""
    return testset if model is None else in_model_order(testset, model.signature)


def testset_revision(deck: ModelDeck, name: str) -> int:
    """A number that changes whenever the home's own set `name` is replaced (0 for a built-in set): what a
    page caches a loaded set on. Reads only."""
    if SET_NAMES.match(name):
        return CaseBook(deck.settings.datasets_dir).revision()
    return revision(deck.settings.datasets_dir, name)


def add_testset(deck: ModelDeck, name: str, files: list[Path] | dict[str, bytes], title: str = "", *,
                replace: bool = False, value_range: tuple[float, float] | None = None,
                image_shape: tuple[int, int] | None = None,
                rescale_to: tuple[float, float] | None = None, label: str | None = None) -> DatasetInfo:
    """The user's files on disk, or uploaded ({file name: content}), read as a test set of this home; `label`
    names a table's label column (CSV or Parquet).

    Raises:
        DatasetImportError, DatasetExistsError (unless `replace`), and what the format's reader raises.
    """
    if isinstance(files, dict):
        return import_uploaded(deck.settings.datasets_dir, name, files, title, deck.settings.home / STAGING_DIR,
                               replace=replace, value_range=value_range, rescale_to=rescale_to,
                               image_shape=image_shape, label=label)
    return import_dataset(deck.settings.datasets_dir, name, files, title, replace=replace, value_range=value_range,
                          image_shape=image_shape, rescale_to=rescale_to, label=label)


def remove_testset(deck: ModelDeck, name: str) -> None:
    """Removes the home's own set `name`.

    Raises:
        DatasetNotFoundError, DatasetError (a built-in set).
    """
    remove_dataset(deck.settings.datasets_dir, name)
