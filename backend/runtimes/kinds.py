"""The kinds of runtime a deployment can go to. Adding one is its module (a `Runtime` and a function
that opens it) and one `register` line at the end of this file; the CLI's --runtime choices,
MODELDECK_RUNTIME, `Runtimes` and the dashboard's runtime lists all read this registry."""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from dataclasses import dataclass
from typing import cast

from ..config import Home, Settings
from ..errors import ConfigError
from .base import Runtime

AUTO = "auto"  # the first kind, in preference order, that answers


@dataclass(frozen=True)
class RuntimeKind:
    """One kind of runtime.

    Attributes:
        name: what users pick it by (--runtime, MODELDECK_RUNTIME, the Deploy page); its runtimes' `name`.
        opener: "module:callable", called as callable(settings, home) -> Runtime on first use and
            imported only then (so the Docker SDK loads when Docker is used); it raises
            RuntimeUnavailableError when its engine does not answer.
    """

    name: str
    opener: str

    def open(self, settings: Settings, home: Home) -> Runtime:
        """A runtime of this kind for `home`. Raises RuntimeUnavailableError."""
        opener = cast(Callable[[Settings, Home], Runtime], pkgutil.resolve_name(self.opener))
        return opener(settings, home)


_KINDS: dict[str, RuntimeKind] = {}  # in registration order, which is preference order


def register(kind: RuntimeKind) -> None:
    """Adds `kind` after those registered before it (preference order for "auto").

    Raises:
        ValueError: the name is taken, or is "auto".
    """
    if kind.name == AUTO:
        raise ValueError(f"{AUTO!r} is reserved: it means the first kind that answers")
    if kind.name in _KINDS:
        raise ValueError(f"a runtime kind named {kind.name!r} exists already")
    _KINDS[kind.name] = kind


def runtime_kinds() -> tuple[RuntimeKind, ...]:
    """Every kind, in preference order."""
    return tuple(_KINDS.values())


def runtime_names() -> tuple[str, ...]:
    """Every kind's name, in preference order: where an existing deployment may be."""
    return tuple(_KINDS)


def runtime_choices() -> tuple[str, ...]:
    """Where a new deployment may go: "auto", then every kind's name."""
    return (AUTO, *_KINDS)


def check_choice(runtime: str) -> None:
    """Raises ConfigError unless `runtime` is one of `runtime_choices()`."""
    if runtime not in runtime_choices():
        raise ConfigError(f"MODELDECK_RUNTIME={runtime!r} is not one of {', '.join(runtime_choices())}")


register(RuntimeKind("docker", "backend.runtimes.docker:DockerRuntime.connect"))
register(RuntimeKind("local", "backend.runtimes.local:LocalRuntime.for_home"))
