"""Every test set by name (built in and the user's own): listing, loading, titles, and which sets fit
some models."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from ..errors import DatasetError, DatasetMismatchError
from ..registry import Model, Signature
from .builtin import BUILT_IN, BUILT_IN_BY_NAME, DATASET_NAMES
from .cases import SET_NAMES, CaseBook
from .fit import mismatch
from .store import load_user_dataset, user_catalogue
from .testset import DatasetInfo, TestSet


def catalogue(user_root: Path | None = None) -> list[DatasetInfo]:
    """Every test set ModelDeck knows, with whether it is installed here; with `user_root`, the
    user's own sets stored there too (`modeldeck datasets add`), and the flagged cases (`cases`, ...)."""
    built_in = [built.info() for built in BUILT_IN]
    return built_in if user_root is None else built_in + user_catalogue(user_root) + CaseBook(user_root).infos()


@dataclass(frozen=True)
class SetFit:
    """Which test sets fit some models' signatures.

    Attributes:
        fitting: the sets that fit every one, in catalogue order (built-in sets first).
        hidden: each other set with why it does not fit (the first model's reason that does not).
    """

    fitting: tuple[DatasetInfo, ...]
    hidden: tuple[tuple[DatasetInfo, str], ...]


def sets_fitting(*signatures: Signature | None, user_root: Path | None = None) -> SetFit:
    """The test sets that fit every one of `signatures` (None: a model not in the registry, which every
    installed set fits), and the others with why not; the user's own with `user_root`."""
    fitting, hidden = [], []
    known = [signature or Signature() for signature in signatures] or [Signature()]
    for info in catalogue(user_root):
        why = next((why for signature in known if (why := mismatch(info, signature)) is not None), None)
        if why is None:
            fitting.append(info)
        else:
            hidden.append((info, why))
    return SetFit(tuple(fitting), tuple(hidden))


def fitting_testset(*models: Model | None, user_root: Path | None = None, requested: str | None = None) -> TestSet:
    """The test set to score `models` on (None: a model not in the registry): `requested`, checked against
    each model's signature, or else the first that fits them all.

    Raises:
        DatasetError: `requested` is unknown or not installed.
        DatasetMismatchError: `requested` does not fit a model, or no set fits them all.
    """
    signatures = [model.signature for model in models if model is not None]
    first = signatures[0] if signatures else None
    if requested is not None:
        for signature in signatures[1:]:
            load_dataset(requested, signature, user_root)  # raises when it does not fit
        return load_dataset(requested, first, user_root)
    fit = sets_fitting(*signatures, user_root=user_root)
    if not fit.fitting:
        raise DatasetMismatchError("no test set fits " + " and ".join(m.id for m in models if m is not None)
                                   + ": see `datasets list`")
    return load_dataset(fit.fitting[0].name, first, user_root)


def load_dataset(name: str, signature: Signature | None = None, user_root: Path | None = None) -> TestSet:
    """The test set called `name` (one of DATASET_NAMES, or with `user_root` one of the user's own),
    checked against a model's signature; a table's columns in the order of the model's named features.

    Raises:
        DatasetError: unknown name or data not installed.
        DatasetNotFoundError: with `user_root`, no built-in or stored set of that name.
        DatasetMismatchError: it does not fit `signature`.
    """
    built_in = BUILT_IN_BY_NAME.get(name)
    loader: Callable[[], TestSet] | None = built_in.load if built_in is not None else None
    if loader is None and user_root is not None:  # a flagged case set, or a stored one (raises DatasetNotFoundError)
        loader = partial(CaseBook(user_root).testset, name) if SET_NAMES.match(name) else partial(
            load_user_dataset, user_root, name)
    if loader is None:
        raise DatasetError(f"unknown dataset {name!r}: choose one of {', '.join(DATASET_NAMES)}")
    if signature is not None:
        info = next((i for i in catalogue(user_root) if i.name == name), None)
        if info is None:
            return loader()  # not in the catalogue: the loader says why
        why = mismatch(info, signature)
        if why is not None and info.installed:
            raise DatasetMismatchError(f"test set {name!r} does not fit this model: {why}")
        return in_model_order(loader(), signature)
    return loader()


def in_model_order(testset: TestSet, signature: Signature) -> TestSet:
    """A table with its columns in the order of the model's named features (the order its endpoint takes
    lists in), its text columns' categories the model's; a set holding some of the model's classes only with all of them (its labels renumbered in the
    model's order), so an answer of a class the set lacks is a wrong answer, not one the set cannot read; anything
    else as it is."""
    labels = signature.class_labels
    if labels and set(testset.class_names) < set(labels):
        position = {name: k for k, name in enumerate(labels)}
        renumbered = np.array([position[name] for name in testset.class_names], dtype=testset.y.dtype)
        testset = replace(testset, y=renumbered[testset.y], class_names=tuple(labels))
    testset = _in_model_categories(testset, signature)
    wanted, have = signature.feature_names, testset.feature_names
    if wanted is None or have is None or wanted == have or set(wanted) != set(have):
        return testset
    position = {name: j for j, name in enumerate(have)}
    order = [position[name] for name in wanted]
    return replace(testset, X=np.ascontiguousarray(testset.X[:, order]), feature_names=tuple(wanted))


def _in_model_categories(testset: TestSet, signature: Signature) -> TestSet:
    """A table whose text columns hold categories the model knows, indexed into the model's categories (so an edit
    can pick any of them, and a column lists them as the model does)."""
    model = signature.categories_of()
    if not testset.categories or not model or testset.feature_names is None:
        return testset
    X, categories = testset.X, []
    for column, known in testset.categories:
        theirs = model.get(column)
        if theirs is None or known == theirs or not set(known) <= set(theirs):
            categories.append((column, known))
            continue
        if X is testset.X:
            X = X.copy()
        j = testset.feature_names.index(column)
        position = {category: k for k, category in enumerate(theirs)}
        recode = np.array([position[category] for category in known], dtype=np.float32)
        X[:, j] = recode[X[:, j].astype(np.int64)]
        categories.append((column, theirs))
    return replace(testset, X=X, categories=tuple(categories))


def dataset_title(name: str, user_root: Path | None = None) -> str:
    """The title people read for the test set `name` ("MNIST 10k (bundled)" for "mnist"); a perturbed
    set's name ("mnist+rotate=15") gives its base set's title; an unknown name is its own title."""
    base = name.split("+", 1)[0]
    return next((info.title for info in catalogue(user_root) if info.name == base), name)
