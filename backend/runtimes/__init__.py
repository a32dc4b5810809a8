"""Runtimes: where deployments run. `open_runtime` picks one from the settings."""

from __future__ import annotations

from ..config import Settings
from ..errors import RuntimeUnavailableError
from .base import DeployConfig, Deployment, DeploymentSpec, DeploymentState, Runtime, validate_name
from .local import LocalRuntime

__all__ = ["DeployConfig", "Deployment", "DeploymentSpec", "DeploymentState", "Runtime", "LocalRuntime",
           "open_runtime", "validate_name"]


def open_runtime(settings: Settings, name: str | None = None) -> Runtime:
    """The runtime `name` (default: settings.runtime): docker, local, or auto (docker when an engine answers).

    Raises:
        RuntimeUnavailableError: docker was asked for and no engine answers, or the name is unknown.
    """
    choice = (name or settings.runtime).lower()
    if choice == "local":
        return LocalRuntime(settings.local_deployments_dir)
    if choice in ("docker", "auto"):
        try:
            from .docker import DockerRuntime

            return DockerRuntime.connect(settings)
        except RuntimeUnavailableError:
            if choice == "docker":
                raise
            return LocalRuntime(settings.local_deployments_dir)
    raise RuntimeUnavailableError(f"unknown runtime {choice!r}: use auto, docker or local")
