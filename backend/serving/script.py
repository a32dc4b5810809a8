"""Loading a scoring script (a Python file with `init()` and `run(raw_data)`), and `ScoringScript`: what
a loaded script can do, read once when its init() has returned."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any


class ScriptError(Exception):
    """The scoring script cannot be loaded or lacks `init`/`run`."""


def load_script(path: str | Path) -> ModuleType:
    """Imports the scoring script at `path` as module `score` (its folder goes on sys.path).

    Raises:
        ScriptError: the file is missing, fails to import, or has no callable `init` and `run`.
    """
    path = Path(path).resolve()
    if not path.is_file():
        raise ScriptError(f"scoring script {path} does not exist")
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("score", path)
    if spec is None or spec.loader is None:
        raise ScriptError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(spec)
    sys.modules["score"] = module
    spec.loader.exec_module(module)
    missing = [name for name in ("init", "run") if not callable(getattr(module, name, None))]
    if missing:
        raise ScriptError(f"scoring script {path.name} has no {' and no '.join(missing)}() function")
    return module


@dataclass(frozen=True)
class ScoringScript:
    """A scoring script whose init() has returned, and its optional features (the tutorial's script has
    none of them; ModelDeck's built-in score_sklearn.py has all):

    * `run_array(ndarray)`: takes an .npy body's array (`run_array(ndarray, proba=True)` too where
      `supports_proba`; uint8 pixels where `accepts_uint8`);
    * `accepts_bytes`: run() takes the JSON body as bytes (no decode);
    * `json_value_bytes`: run()'s peak memory per JSON value, reserved before a big body's parse;
    * `n_features`, `classes`, `feature_names`: what init() found in the model (None where the script does
      not say; `feature_names` where the model was fitted on named columns);
    * `accepts_records`: with `feature_names`, run() takes rows as objects of those columns too;
    * `categories`: {column: [category, ...]} for the columns the model takes as text (their names), where run()
      takes rows of objects, a split table or lists with those values, and run_array no rows at all.
    """

    run: Callable[[Any], Any]
    run_array: Callable[..., Any] | None = None
    accepts_bytes: bool = False
    supports_proba: bool = False
    accepts_uint8: bool = False
    json_value_bytes: int | None = None
    n_features: Any = None
    classes: Any = None
    feature_names: Any = None
    accepts_records: bool = False
    categories: dict[str, list[str]] | None = None

    @property
    def records_of(self) -> list[str] | None:
        """The columns run() takes a row's object of, or None where it takes lists only."""
        names = self.feature_names
        return [str(name) for name in names] if self.accepts_records and isinstance(names, list) and names else None

    @property
    def answers_proba(self) -> bool:
        """Probabilities can be asked for: `supports_proba` and a run_array to ask them of."""
        return self.supports_proba and self.run_array is not None

    @classmethod
    def of(cls, module: ModuleType) -> ScoringScript:
        """What `module` (a loaded script whose init() has returned) offers."""
        run_array = getattr(module, "run_array", None)
        per_value = getattr(module, "json_value_bytes", None)
        return cls(run=module.run, run_array=run_array if callable(run_array) else None,
                   accepts_bytes=bool(getattr(module, "accepts_bytes", False)),
                   supports_proba=bool(getattr(module, "supports_proba", False)),
                   accepts_uint8=bool(getattr(module, "accepts_uint8", False)),
                   json_value_bytes=per_value if isinstance(per_value, int) and per_value > 0 else None,
                   n_features=getattr(module, "n_features", None), classes=getattr(module, "classes", None),
                   feature_names=getattr(module, "feature_names", None),
                   accepts_records=bool(getattr(module, "accepts_records", False)),
                   categories=_categories(getattr(module, "categories", None)))


def _categories(found: Any) -> dict[str, list[str]] | None:
    """A script's `categories` when it is {column: [category, ...]} of strings; None otherwise."""
    if not isinstance(found, dict) or not found:
        return None
    if not all(isinstance(name, str) and isinstance(known, list) and all(isinstance(v, str) for v in known)
               for name, known in found.items()):
        return None
    return {name: list(known) for name, known in found.items()}
