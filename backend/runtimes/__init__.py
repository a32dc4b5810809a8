"""Runtimes: where deployments run. `Targets` holds every runtime a home can use, opened on first use."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..config import RUNTIME_CHOICES, Home, Settings
from ..errors import RuntimeUnavailableError
from .base import DeployConfig, Deployment, DeploymentRecord, DeploymentSpec, DeploymentState, Runtime, validate_name
from .local import LocalRuntime

__all__ = ["DeployConfig", "Deployment", "DeploymentRecord", "DeploymentSpec", "DeploymentState", "Runtime",
           "LocalRuntime", "TargetStatus", "Targets", "validate_name"]

RETRY_UNAVAILABLE_SECONDS = 15.0  # an engine that did not answer is asked again after this long


@dataclass(frozen=True)
class TargetStatus:
    """One runtime as the sidebar shows it: whether it answers, and what it is (or why not)."""

    name: str
    available: bool
    description: str


class Targets:
    """Every runtime of one home: local processes (always there) and the Docker engine (when one
    answers). Nothing is opened before it is needed, so the registry works with no engine at all."""

    def __init__(self, settings: Settings, home: Home) -> None:
        self.settings = settings
        self.home = home
        self._local = LocalRuntime(settings.local_deployments_dir)
        self._docker: Runtime | None = None
        self._docker_error: tuple[float, RuntimeUnavailableError] | None = None

    def docker(self) -> Runtime:
        """The Docker runtime.

        Raises:
            RuntimeUnavailableError: no engine answers (asked again after a few seconds).
        """
        if self._docker is not None:
            return self._docker
        if self._docker_error and time.monotonic() - self._docker_error[0] < RETRY_UNAVAILABLE_SECONDS:
            raise self._docker_error[1]
        from .docker import DockerRuntime

        try:
            self._docker = DockerRuntime.connect(self.settings, self.home)
        except RuntimeUnavailableError as e:
            self._docker_error = (time.monotonic(), e)
            raise
        self._docker_error = None
        return self._docker

    def forget_docker(self) -> None:
        """Drops the engine connection (it stopped answering); the next use connects again."""
        self._docker = None

    def open(self, name: str | None = None) -> Runtime:
        """The runtime for a new deployment: `name` (docker, local or auto), default the setting
        MODELDECK_RUNTIME; auto means docker when an engine answers, else local.

        Raises:
            RuntimeUnavailableError: docker was asked for and no engine answers, or the name is unknown.
        """
        choice = (name or self.settings.runtime).lower()
        if choice == "local":
            return self._local
        if choice == "docker":
            return self.docker()
        if choice == "auto":
            try:
                return self.docker()
            except RuntimeUnavailableError:
                return self._local
        raise RuntimeUnavailableError(f"unknown runtime {choice!r}: use {', '.join(RUNTIME_CHOICES)}")

    def available(self) -> list[Runtime]:
        """Every runtime that answers now."""
        runtimes: list[Runtime] = []
        try:
            runtimes.append(self.docker())
        except RuntimeUnavailableError:
            pass
        runtimes.append(self._local)
        return runtimes

    def statuses(self) -> list[TargetStatus]:
        """Each runtime with whether it answers and what it is, or why it cannot be used."""
        try:
            docker = TargetStatus("docker", True, self.docker().describe())
        except RuntimeUnavailableError as e:
            docker = TargetStatus("docker", False, str(e))
        return [docker, TargetStatus("local", True, self._local.describe())]
