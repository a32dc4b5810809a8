"""What every runtime implements, and the plain types that cross that line."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Protocol

from ..errors import DeploymentError, InvalidDeploymentNameError
from ..registry import Model

Progress = Callable[[str], None]
NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
SCORING_PORT = 8000


class DeploymentState(str, Enum):
    """The tutorial's deployment states."""

    TRANSITIONING = "Transitioning"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    FAILED = "Failed"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True)
class DeployConfig:
    """How to run a deployment (the tutorial's deploy configuration).

    Attributes:
        cpu_cores: CPU limit (cores, fractions allowed); also the BLAS thread count.
        memory_gb: memory limit in GiB.
        tags: free key/value labels.
        description: free text.
    """

    cpu_cores: float = 1.0
    memory_gb: float = 1.0
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""

    def __post_init__(self) -> None:
        if not 0 < self.cpu_cores <= 64:
            raise DeploymentError(f"cpu_cores must be between 0 and 64, got {self.cpu_cores}")
        if not 0.03 <= self.memory_gb <= 1024:
            raise DeploymentError(f"memory_gb must be between 0.03 and 1024, got {self.memory_gb}")

    def to_dict(self) -> dict:
        return {"cpu_cores": self.cpu_cores, "memory_gb": self.memory_gb, "tags": dict(self.tags),
                "description": self.description}

    @classmethod
    def from_dict(cls, data: dict) -> "DeployConfig":
        return cls(cpu_cores=float(data.get("cpu_cores", 1.0)), memory_gb=float(data.get("memory_gb", 1.0)),
                   tags=dict(data.get("tags", {})), description=str(data.get("description", "")))


@dataclass(frozen=True)
class DeploymentSpec:
    """Everything a runtime needs to start a deployment; files already checked and staged."""

    name: str
    model: Model
    config: DeployConfig
    model_dir: Path
    script_path: Path


@dataclass(frozen=True)
class Deployment:
    """A deployment as its runtime sees it now."""

    name: str
    runtime: str
    model_name: str
    model_version: int
    state: DeploymentState
    scoring_uri: str | None
    config: DeployConfig
    created_at: str
    detail: str = ""
    exit_code: int | None = None
    entry_script: str = ""

    @property
    def model_id(self) -> str:
        return f"{self.model_name}:{self.model_version}"

    @property
    def base_uri(self) -> str | None:
        return self.scoring_uri.rsplit("/score", 1)[0] if self.scoring_uri else None


def worker_plan(cpu_cores: float) -> tuple[int, int]:
    """(worker processes, BLAS threads per worker) for a CPU limit: one single-threaded worker per
    core, so workers x threads matches the limit and nothing oversubscribes it."""
    return max(1, round(cpu_cores)), 1


def serving_environment(cpu_cores: float, model_dir: str) -> dict[str, str]:
    """Environment of a scoring server: the tutorial's model folder variables and BLAS thread counts."""
    _, threads = worker_plan(cpu_cores)
    return {"AZUREML_MODEL_DIR": model_dir, "MODEL_DIR": model_dir, "OMP_NUM_THREADS": str(threads),
            "OPENBLAS_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads)}


def validate_name(name: str) -> str:
    """Checks a deployment name: 3-63 lowercase letters, digits and '-', not starting or ending with '-'.

    Raises:
        InvalidDeploymentNameError: with the rule and the offending name.
    """
    if not NAME_PATTERN.match(name or ""):
        raise InvalidDeploymentNameError(
            f"deployment name {name!r} is not valid: use 3 to 63 lowercase letters, digits and '-', "
            "starting and ending with a letter or digit (for example 'mnist-demo')")
    return name


class Runtime(Protocol):
    """One engine that runs deployments. Implementations: runtimes.local, runtimes.docker."""

    name: str

    def describe(self) -> str:
        """A line for people: which engine, which version."""

    def environment_versions(self, model: Model) -> dict[str, str]:
        """The library versions `model` would be served with."""

    def create(self, spec: DeploymentSpec, progress: Progress) -> Deployment:
        """Starts the deployment and returns without waiting for it to be healthy.

        Raises:
            DeploymentExistsError: the name is taken.
            DeploymentError: it cannot be started; nothing is left behind.
        """

    def get(self, name: str) -> Deployment:
        """The deployment now. Raises DeploymentNotFoundError."""

    def list(self) -> list[Deployment]:
        """Every deployment of this runtime, found again from the runtime's own state."""

    def logs(self, name: str, tail: int | None = None) -> str:
        """The server's log (last `tail` lines). Raises DeploymentNotFoundError."""

    def stop(self, name: str) -> None:
        """Stops the server for good (no restarts) but keeps its logs. Raises DeploymentNotFoundError."""

    def remove(self, name: str) -> None:
        """Stops the deployment and removes all it left. Raises DeploymentNotFoundError."""
