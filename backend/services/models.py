"""The registry as a user fills it: the sample models trained (all of them on a first run), a model of
their own registered from files or an upload (with the names of its columns, declared or read from its table)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from ..data.formats.table import feature_columns
from ..data.limits import MAX_ROW_VALUES
from ..errors import RegistryError
from ..progress import Progress, quiet
from ..registry import Model, Signature, current_library_versions
from ..training import ensure_sample_models, train_sample

if TYPE_CHECKING:
    from ..context import ModelDeck


def needs_first_run(deck: ModelDeck) -> bool:
    """Whether `first_run` would train: the registry is empty and MODELDECK_AUTO_TRAIN is on."""
    return deck.settings.auto_train and not deck.registry.list()


def first_run(deck: ModelDeck, progress: Progress = quiet) -> tuple[Model, ...]:
    """On a first run (an empty registry, with MODELDECK_AUTO_TRAIN on) the sample models trained and
    registered; () otherwise.

    Raises:
        TrainingError, DatasetError.
    """
    if not deck.settings.auto_train:
        return ()
    return ensure_sample_models(deck.registry, progress=progress)  # which trains only into an empty registry


def train(deck: ModelDeck, dataset: str = "mnist", algorithm: str | None = None,
          progress: Progress = quiet) -> Model:
    """A sample model trained and registered as the next version of its name.

    Raises:
        TrainingError, DatasetError, DuplicateModelError: as `training.train_sample`.
    """
    return train_sample(deck.registry, dataset, algorithm, progress=progress)


def register_files(deck: ModelDeck, name: str, files: list[Path] | dict[str, bytes], *, framework: str = "scikit-learn",
                   tags: dict[str, str] | None = None, description: str = "", signature: Signature | None = None,
                   sklearn_version: str | None = None) -> Model:
    """The next version of `name` from files on disk or uploaded ({file name: content}); deployments
    install this environment's library versions, scikit-learn at `sklearn_version` when given.

    Raises:
        RegistryError, DuplicateModelError, and what the registry raises for a bad name or file.
    """
    versions = {**current_library_versions(), "scikit-learn": sklearn_version} if sklearn_version else None
    if isinstance(files, dict):
        return deck.registry.register_bytes(name, files, framework=framework, tags=tags, description=description,
                                            library_versions=versions, signature=signature)
    return deck.registry.register(name, files, framework=framework, tags=tags, description=description,
                                  library_versions=versions, signature=signature)


def registered_models(deck: ModelDeck) -> list[Model]:
    """Every registered model version, by name then version."""
    return deck.registry.list()


def registered_model(deck: ModelDeck, name: str, version: int | None = None) -> Model:
    """The model `name` at `version` (default: its latest); raises ModelNotFoundError."""
    return deck.registry.get(name, version)


def model_by_ref(deck: ModelDeck, ref: str) -> Model:
    """The model for "name" or "name:version"; raises ModelNotFoundError."""
    return deck.registry.get_ref(ref)


def declared_features(path: Path, label: str | None = None) -> tuple[str, ...]:
    """The names of a model's input columns, in order, from a JSON file (a list of names, or {"features": [...]})
    or from a CSV or Parquet table it was fitted on (its columns but `label`; the header alone is read).

    Raises:
        RegistryError: a JSON file that is not such a list. DatasetImportError: a table that cannot be read.
    """
    if path.suffix.lower() != ".json":
        return feature_columns(path, label)
    try:
        given = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as e:
        raise RegistryError(f"cannot read {path.name} as JSON: {e}") from None
    names = given.get("features") if isinstance(given, dict) else given
    if not isinstance(names, list) or not names or not all(isinstance(n, str) and n.strip() for n in names):
        raise RegistryError(f'{path.name} must hold a list of column names, ["mean radius", ...], or '
                            '{"features": [...]}')
    if len(set(names)) != len(names):
        twice = next(name for name in names if names.count(name) > 1)
        raise RegistryError(f"{path.name} names the column {twice!r} twice")
    if len(names) > MAX_ROW_VALUES:
        raise RegistryError(f"{path.name} names {len(names):,} columns: the limit is {MAX_ROW_VALUES:,}")
    return tuple(names)
