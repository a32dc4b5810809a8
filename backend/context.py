"""Wiring: settings -> registry, runtime, deployment service and scoring client, made once per process."""

from __future__ import annotations

from dataclasses import dataclass

from .client import ScoringClient
from .config import Settings
from .deployments import DeploymentService
from .registry import ModelRegistry
from .runtimes import Runtime, open_runtime


@dataclass(frozen=True)
class ModelDeck:
    settings: Settings
    registry: ModelRegistry
    runtime: Runtime
    deployments: DeploymentService
    client: ScoringClient


def open_modeldeck(settings: Settings | None = None, runtime: str | None = None) -> ModelDeck:
    """Everything a CLI command or dashboard page needs.

    Raises:
        ConfigError: bad settings. RuntimeUnavailableError: the runtime asked for cannot be used.
    """
    settings = settings or Settings.from_env()
    registry = ModelRegistry(settings.registry_path, settings.blobs_dir)
    chosen = open_runtime(settings, runtime)
    return ModelDeck(settings, registry, chosen, DeploymentService(registry, chosen), ScoringClient())
