"""Runtimes: where deployments run. `Runtimes` holds a runtime of every registered kind (kinds.py) a home
can use, each opened on first use."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..config import Home, Settings
from ..errors import RuntimeUnavailableError
from .base import DeployConfig, Deployment, DeploymentRecord, DeploymentSpec, DeploymentState, Runtime, validate_name
from .kinds import AUTO, check_choice, runtime_choices, runtime_kinds, runtime_names

__all__ = ["DeployConfig", "Deployment", "DeploymentRecord", "DeploymentSpec", "DeploymentState", "Runtime",
           "RuntimeStatus", "Runtimes", "validate_name"]

RETRY_UNAVAILABLE_SECONDS = 15.0  # a runtime that did not answer is asked again after this long


@dataclass(frozen=True)
class RuntimeStatus:
    """One runtime as the sidebar shows it: whether it answers, and what it is (or why not)."""

    name: str
    available: bool
    description: str


class Runtimes:
    """A runtime of every registered kind for one home (local processes are always there, the Docker
    engine when one answers). Nothing is opened before it is needed, so the registry works with no
    engine at all and a kind's libraries load only when it is used.

    Raises:
        ConfigError: the settings' runtime is not "auto" or a registered kind.
    """

    def __init__(self, settings: Settings, home: Home) -> None:
        check_choice(settings.runtime)
        self.settings = settings
        self.home = home
        self._opened: dict[str, Runtime] = {}
        self._failed: dict[str, tuple[float, RuntimeUnavailableError]] = {}

    def open(self, name: str | None = None) -> Runtime:
        """The runtime of kind `name`, or for a new deployment with "auto" (the first kind, in preference
        order, that answers); default: the setting MODELDECK_RUNTIME.

        Raises:
            RuntimeUnavailableError: that kind does not answer (asked again after a few seconds), or the
                name is unknown.
        """
        choice = (name or self.settings.runtime).lower()
        if choice == AUTO:
            reasons = []
            for kind_name in runtime_names():
                try:
                    return self.open(kind_name)
                except RuntimeUnavailableError as e:
                    reasons.append(str(e))
            raise RuntimeUnavailableError("no runtime answers: " + "; ".join(reasons))
        kind = next((k for k in runtime_kinds() if k.name == choice), None)
        if kind is None:
            raise RuntimeUnavailableError(f"unknown runtime {choice!r}: use {', '.join(runtime_choices())}")
        if choice in self._opened:
            return self._opened[choice]
        failed = self._failed.get(choice)
        if failed and time.monotonic() - failed[0] < RETRY_UNAVAILABLE_SECONDS:
            raise failed[1]
        try:
            runtime = self._opened[choice] = kind.open(self.settings, self.home)
        except RuntimeUnavailableError as e:
            self._failed[choice] = (time.monotonic(), e)
            raise
        self._failed.pop(choice, None)
        return runtime

    def forget(self, name: str) -> None:
        """Drops the runtime of kind `name` (it stopped answering); the next use opens it again."""
        self._opened.pop(name, None)

    def available(self) -> list[Runtime]:
        """Every runtime that answers now, in preference order."""
        runtimes: list[Runtime] = []
        for kind in runtime_kinds():
            try:
                runtimes.append(self.open(kind.name))
            except RuntimeUnavailableError:
                pass
        return runtimes

    def statuses(self) -> list[RuntimeStatus]:
        """Each runtime with whether it answers and what it is, or why it cannot be used."""
        statuses = []
        for kind in runtime_kinds():
            try:
                statuses.append(RuntimeStatus(kind.name, True, self.open(kind.name).describe()))
            except RuntimeUnavailableError as e:
                statuses.append(RuntimeStatus(kind.name, False, str(e)))
        return statuses
