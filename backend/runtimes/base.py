"""What every runtime implements, and the plain types that cross that line."""

from __future__ import annotations

import json
import math
import re
import secrets
from dataclasses import dataclass, field, replace
from enum import StrEnum
from pathlib import Path
from typing import Any, Protocol

from ..errors import InvalidDeployConfigError, InvalidDeploymentNameError
from ..progress import Progress
from ..registry import Model

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$")
SCORING_PORT = 8000
CPU_CORES_RANGE = (0.1, 64.0)
MEMORY_GB_RANGE = (0.03125, 1024.0)  # 32 MiB to 1 TiB
MAX_BODY_MB_RANGE = (1.0, 4096.0)
RUN_TIMEOUT_RANGE = (1.0, 3600.0)  # seconds a request may wait for and run in the script's run()
DEFAULT_RUN_TIMEOUT_SECONDS = 60.0
# A JSON body of floats takes about 5 times its size in memory while it is parsed into rows, and each
# worker may parse one at a time; 64 MiB still takes the tutorial's whole-test-set request (58 MiB).
BODY_MEMORY_FACTOR = 5
MIN_DEFAULT_BODY_MB = 64
LABEL_PREFIX = "modeldeck."
LEGACY_NAME_LABEL = "modeldeck.deployment"  # ModelDeck before homes


class DeploymentState(StrEnum):
    """The tutorial's deployment states."""

    TRANSITIONING = "Transitioning"
    HEALTHY = "Healthy"
    UNHEALTHY = "Unhealthy"
    FAILED = "Failed"


def _check_range(what: str, value: float, bounds: tuple[float, float], unit: str = "") -> float:
    low, high = bounds
    if not isinstance(value, (int, float)) or isinstance(value, bool) or math.isnan(value) \
            or not low <= value <= high:
        shown = f"{value:g}" if isinstance(value, (int, float)) and not isinstance(value, bool) else repr(value)
        raise InvalidDeployConfigError(f"{what} must be between {low:g} and {high:g}{unit}, got {shown}")
    return float(value)


@dataclass(frozen=True)
class DeployConfig:
    """How to run a deployment (the tutorial's deploy configuration).

    Attributes:
        cpu_cores: CPU limit (cores, fractions allowed); also sets the worker count.
        memory_gb: memory limit in GiB.
        tags: free key/value labels.
        description: free text.
        max_body_mb: the largest request body the endpoint reads, in MiB (None: a default the memory
            limit can hold, see `body_limit_mb`).
        auth_enabled: key auth (the tutorial's ACI `auth_enabled`): /score and /info want one of the
            deployment's two keys as `Authorization: Bearer <key>`.
        trust_model: run the model's code (its pickle, its scoring script) even where the local runtime
            cannot sandbox it, with the deploying user's full rights, network and files.
        run_timeout_s: seconds a scoring request may wait for and run in the script's run(): 504 past
            it, and a worker whose run() overran is replaced.

    Raises:
        InvalidDeployConfigError: cpu_cores, memory_gb, max_body_mb or run_timeout_s outside their
            ranges (the one rule the CLI and the dashboard both apply).
    """

    cpu_cores: float = 1.0
    memory_gb: float = 1.0
    tags: dict[str, str] = field(default_factory=dict)
    description: str = ""
    max_body_mb: float | None = None
    auth_enabled: bool = False
    trust_model: bool = False
    run_timeout_s: float = DEFAULT_RUN_TIMEOUT_SECONDS

    def __post_init__(self) -> None:
        _check_range("CPU cores", self.cpu_cores, CPU_CORES_RANGE)
        _check_range("memory", self.memory_gb, MEMORY_GB_RANGE, " GB")
        if self.max_body_mb is not None:
            _check_range("the request body limit", self.max_body_mb, MAX_BODY_MB_RANGE, " MB")
        _check_range("the run() time limit", self.run_timeout_s, RUN_TIMEOUT_RANGE, " s")

    @property
    def body_limit_mb(self) -> float:
        """The request body limit in MiB: as configured, else what the memory limit holds with every
        worker parsing a JSON body at once (at least 64 MiB)."""
        if self.max_body_mb is not None:
            return self.max_body_mb
        workers, _ = worker_plan(self.cpu_cores)
        return float(max(MIN_DEFAULT_BODY_MB, int(self.memory_gb * 1024 / (BODY_MEMORY_FACTOR * workers + 3))))

    def to_dict(self) -> dict[str, Any]:
        return {"cpu_cores": self.cpu_cores, "memory_gb": self.memory_gb, "tags": dict(self.tags),
                "description": self.description, "max_body_mb": self.max_body_mb, "auth_enabled": self.auth_enabled,
                "trust_model": self.trust_model, "run_timeout_s": self.run_timeout_s}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DeployConfig":
        """A config as a runtime recorded it: read back as it is, not checked against today's ranges
        (a deployment made under other rules, or by another home, must still be listed)."""
        config = cls.__new__(cls)
        for name, value in (("cpu_cores", _number(data.get("cpu_cores"), 1.0)),
                            ("memory_gb", _number(data.get("memory_gb"), 1.0)),
                            ("tags", {str(k): str(v) for k, v in dict(data.get("tags") or {}).items()}),
                            ("description", str(data.get("description", ""))),
                            ("max_body_mb", None if data.get("max_body_mb") is None
                             else _number(data.get("max_body_mb"), MIN_DEFAULT_BODY_MB)),
                            ("auth_enabled", data.get("auth_enabled") in (True, "true", "True")),
                            ("trust_model", data.get("trust_model") in (True, "true", "True")),
                            ("run_timeout_s", _number(data.get("run_timeout_s"), DEFAULT_RUN_TIMEOUT_SECONDS))):
            object.__setattr__(config, name, value)
        return config


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


@dataclass(frozen=True)
class DeploymentRecord:
    """What a deployment is, as ModelDeck made it: the one type every runtime stores and reads back
    (Docker as container labels, the local runtime as a JSON file).

    Attributes:
        name: the deployment's name (unique within a home, across runtimes).
        uid: a random id of this deployment, so results of a deleted deployment never show under
            a new one of the same name.
        home_id, home: the id and path of the ModelDeck home that made it.
        model_name, model_version, model_sha256: what it serves.
        config: its deploy configuration.
        entry_script: the scoring script's file name.
        created_at: ISO 8601, UTC.
    """

    name: str
    uid: str
    home_id: str
    home: str
    model_name: str
    model_version: int
    model_sha256: str
    config: DeployConfig
    entry_script: str
    created_at: str

    @property
    def model_id(self) -> str:
        return f"{self.model_name}:{self.model_version}"

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "uid": self.uid, "home_id": self.home_id, "home": self.home,
                "model_name": self.model_name, "model_version": self.model_version,
                "model_sha256": self.model_sha256, "config": self.config.to_dict(),
                "entry_script": self.entry_script, "created_at": self.created_at}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "DeploymentRecord":
        return cls(name=str(data["name"]), uid=str(data.get("uid", "")), home_id=str(data.get("home_id", "")),
                   home=str(data.get("home", "")), model_name=str(data.get("model_name", "?")),
                   model_version=int(_number(data.get("model_version"), 0)),
                   model_sha256=str(data.get("model_sha256", "")),
                   config=DeployConfig.from_dict(data.get("config") or {}),
                   entry_script=str(data.get("entry_script", "")), created_at=str(data.get("created_at", "")))

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "DeploymentRecord":
        return cls.from_dict(json.loads(text))

    def to_labels(self) -> dict[str, str]:
        """Container labels: `modeldeck.<field>`, the config as JSON."""
        data = self.to_dict()
        labels = {LABEL_PREFIX + key: str(value) for key, value in data.items() if key != "config"}
        labels[LABEL_PREFIX + "config"] = json.dumps(data["config"], sort_keys=True)
        return labels

    @classmethod
    def from_labels(cls, labels: dict[str, str]) -> "DeploymentRecord":
        """The record from container labels; also reads the labels of ModelDeck before homes existed
        (`modeldeck.deployment`, `modeldeck.model.name`, ...), whose record has no home."""
        data: dict[str, Any] = {key[len(LABEL_PREFIX):]: value for key, value in labels.items()
                                if key.startswith(LABEL_PREFIX)}
        for legacy, key in (("deployment", "name"), ("model.name", "model_name"),
                            ("model.version", "model_version"), ("model.sha256", "model_sha256")):
            if legacy in data and key not in data:
                data[key] = data[legacy]
        try:
            data["config"] = json.loads(data.get("config") or "{}")
        except ValueError:
            data["config"] = {}
        return cls.from_dict(data)


KEY_NAMES = ("primary", "secondary")


@dataclass(frozen=True)
class Keys:
    """A deployment's two keys (either one is accepted, so one can be rotated while the other is in use)."""

    primary: str
    secondary: str

    @classmethod
    def generate(cls) -> "Keys":
        return cls(secrets.token_urlsafe(32), secrets.token_urlsafe(32))

    def rotated(self, which: str) -> "Keys":
        """These keys with `which` ("primary" or "secondary") replaced by a new one."""
        if which not in KEY_NAMES:
            raise ValueError(f"which key: primary or secondary, not {which!r}")
        return replace(self, **{which: secrets.token_urlsafe(32)})

    def to_json(self) -> str:
        return json.dumps({"primary": self.primary, "secondary": self.secondary})

    @classmethod
    def from_json(cls, text: str | bytes) -> "Keys":
        data = json.loads(text)
        return cls(str(data["primary"]), str(data["secondary"]))


@dataclass(frozen=True)
class DeploymentSpec:
    """Everything a runtime needs to start a deployment; files already checked and staged."""

    record: DeploymentRecord
    model: Model
    model_dir: Path
    script_path: Path
    keys: Keys | None = None

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def config(self) -> DeployConfig:
        return self.record.config


@dataclass(frozen=True)
class Deployment:
    """A deployment as its runtime sees it now: its record and its live state.

    Attributes:
        owned: False for a deployment of another ModelDeck home on the same engine (read-only here).
        isolation: what the model's code may do there, in a few words ("" where the runtime does not say).
    """

    record: DeploymentRecord
    runtime: str
    state: DeploymentState
    scoring_uri: str | None
    detail: str = ""
    exit_code: int | None = None
    owned: bool = True
    isolation: str = ""

    @property
    def name(self) -> str:
        return self.record.name

    @property
    def model_id(self) -> str:
        return self.record.model_id

    @property
    def config(self) -> DeployConfig:
        return self.record.config

    @property
    def created_at(self) -> str:
        return self.record.created_at

    @property
    def entry_script(self) -> str:
        return self.record.entry_script

    @property
    def status(self) -> str:
        """Its state and why, as the deployment list and its pages say it: "x is Failed: the server process
        exited with code 1"."""
        return f"{self.name} is {self.state}" + (f": {self.detail}" if self.detail else "")

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of `deployments list --json`."""
        return {"name": self.name, "state": str(self.state), "model": self.model_id, "runtime": self.runtime,
                "scoring_uri": self.scoring_uri, "config": self.config.to_dict(), "created_at": self.created_at,
                "detail": self.detail, "exit_code": self.exit_code, "entry_script": self.entry_script,
                "home": self.record.home, "owned": self.owned,
                "isolation": self.isolation}


def worker_plan(cpu_cores: float) -> tuple[int, int]:
    """(worker processes, BLAS threads per worker) for a CPU limit: one single-threaded worker per
    core, so workers x threads matches the limit and nothing oversubscribes it."""
    return max(1, round(cpu_cores)), 1


def server_options(spec: "DeploymentSpec", keys_file: str) -> list[str]:
    """The scoring server's options every runtime passes (after --script/--model-dir/--host/--port);
    `keys_file` is where that runtime puts the keys, used when auth is on."""
    workers, _ = worker_plan(spec.config.cpu_cores)
    return ["--name", spec.name, "--model", spec.model.id, "--workers", str(workers),
            "--max-body-mb", f"{spec.config.body_limit_mb:g}", "--run-timeout", f"{spec.config.run_timeout_s:g}",
            *(["--keys-file", keys_file] if spec.config.auth_enabled else [])]


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
    """One engine that runs deployments; each kind is registered in runtimes/kinds.py (docker, local), and
states its deployments with runtimes/state.py's one rule.

    Reads (`get`, `list`, `logs`) never change anything.
    """

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
        """This home's deployment `name` now. Raises DeploymentNotFoundError."""

    def list(self, *, all_homes: bool = False) -> list[Deployment]:
        """This home's deployments (with `all_homes`, also other homes' on the same engine, not owned)."""

    def logs(self, name: str, tail: int | None = None) -> str:
        """The server's log (last `tail` lines). Raises DeploymentNotFoundError."""

    def keys(self, name: str) -> Keys:
        """The deployment's keys, read where its server reads them.

        Raises:
            DeploymentNotFoundError; DeploymentError when it has no keys (auth is off).
        """

    def set_keys(self, name: str, keys: Keys) -> None:
        """Puts new keys where the running server reads them (it takes them without a restart)."""

    def stop(self, name: str) -> None:
        """Stops the server for good (no restarts) but keeps its logs. Raises DeploymentNotFoundError."""

    def remove(self, name: str) -> None:
        """Stops the deployment and removes all it left. Raises DeploymentNotFoundError."""
