"""Loading a scoring script: a Python file with `init()` and `run(raw_data)`."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType


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
