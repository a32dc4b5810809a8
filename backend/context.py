"""Wiring: settings -> home, registry, runtimes, deployment service, scoring client, kept results and
the evaluation history, made once per process. Nothing here talks to an engine: runtimes are opened on first use."""

from __future__ import annotations

from dataclasses import dataclass

from .client import ScoringClient
from .config import Home, Settings, open_home
from .deployments import DeploymentService
from .inspection.evaluation_log import EvaluationLog
from .inspection.kept_results import ResultStore
from .registry import ModelRegistry
from .runtimes import Runtimes
from .runtimes.kinds import check_choice


@dataclass(frozen=True)
class ModelDeck:
    settings: Settings
    home: Home
    registry: ModelRegistry
    runtimes: Runtimes
    deployments: DeploymentService
    client: ScoringClient
    results: ResultStore
    evaluations: EvaluationLog


def open_modeldeck(settings: Settings | None = None) -> ModelDeck:
    """Everything a CLI command or dashboard page needs.

    Raises:
        ConfigError: bad settings, or a home that cannot be created.
    """
    settings = settings or Settings.from_env()
    check_choice(settings.runtime)  # before the home is made: a refused start writes nothing
    home = open_home(settings.home)
    registry = ModelRegistry(settings.registry_path, settings.blobs_dir)
    runtimes = Runtimes(settings, home)
    client = ScoringClient()
    results = ResultStore(settings.home / "results")
    deployments = DeploymentService(registry, runtimes, client, on_delete=results.forget)
    return ModelDeck(settings, home, registry, runtimes, deployments, client, results,
                     EvaluationLog(settings.registry_path))
