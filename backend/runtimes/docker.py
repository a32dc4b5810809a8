"""The Docker runtime: each deployment is a hardened container running the scoring server.

The engine is the source of truth: a container's labels carry its deployment record (name, home,
model, config, tags and description), so `list` rebuilds every deployment from the engine alone.
Each home sees its own deployments; containers are named `modeldeck-<home id>-<name>`, so two homes
on one engine never take each other's names. Containers publish the scoring port on 127.0.0.1
only; ModelDeck reaches them nowhere else.
"""

from __future__ import annotations

import functools
import io
import os
import tarfile
import time
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any, TypeVar, cast

from ..config import Home, Settings
from ..errors import (
    DeploymentError,
    DeploymentExistsError,
    DeploymentNotFoundError,
    ModelDeckError,
    RuntimeUnavailableError,
)
from ..images import MODEL_LIBRARIES, ImageBuilder
from ..progress import Progress, step
from ..registry import Model, current_library_versions
from .base import (
    LABEL_PREFIX,
    LEGACY_NAME_LABEL,
    SCORING_PORT,
    Deployment,
    DeploymentRecord,
    DeploymentSpec,
    DeploymentState,
    server_options,
    serving_environment,
)
from .probe import free_port, is_ready

LABEL = LABEL_PREFIX + "name"  # every ModelDeck deployment container has it
HOME_LABEL = LABEL_PREFIX + "home_id"
CONTAINER_PREFIX = "modeldeck-"
DATA_DIR = "/var/modeldeck"  # a volume in the image: model/ and app/ arrive here per deployment
RESTART_POLICY = {"Name": "on-failure", "MaximumRetryCount": 3}
STARTUP_GRACE_SECONDS = 300
STOP_TIMEOUT_SECONDS = 5
PING_TIMEOUT_SECONDS = 3
API_TIMEOUT_SECONDS = 120
PORT_ATTEMPTS = 3  # a free port can be taken by another process before the container binds it


def container_name(home_id: str, deployment: str) -> str:
    return f"{CONTAINER_PREFIX}{home_id}-{deployment}"


def container_create_args(spec: DeploymentSpec, image: str, port: int) -> dict[str, Any]:
    """The engine's create arguments for a deployment: limits, hardening, port and labels. The host
    port is chosen here, once, so the scoring URI stays the same across restarts of the container.

    Pure: unit-tested without an engine.
    """
    config = spec.config
    memory = f"{max(6, int(round(config.memory_gb * 1024)))}m"
    script = f"{DATA_DIR}/app/{spec.script_path.name}"
    return {
        "image": image,
        "name": container_name(spec.record.home_id, spec.name),
        "command": ["python", "-m", "serving", "--script", script, "--model-dir", f"{DATA_DIR}/model",
                    "--host", "0.0.0.0", "--port", str(SCORING_PORT), *server_options(spec)],
        "environment": serving_environment(config.cpu_cores, f"{DATA_DIR}/model"),
        "ports": {f"{SCORING_PORT}/tcp": ("127.0.0.1", port)},
        "nano_cpus": int(config.cpu_cores * 1e9),
        "mem_limit": memory,
        "memswap_limit": memory,  # no swap: the limit is the limit
        "pids_limit": 256,
        "user": "10001:10001",
        "read_only": True,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        # No restarts until the server has been ready once (wait_for_deployment calls mark_ready on
        # Healthy): a failing init() then ends the container with its own exit code, not a restart loop.
        "restart_policy": {"Name": "no"},
        "labels": spec.record.to_labels(),
        "detach": True,
    }


def _port_taken(error: Any) -> bool:
    text = str(getattr(error, "explanation", "") or error).lower()
    return "port is already allocated" in text or "address already in use" in text


def deployment_tar(model_dir: Path, script_path: Path) -> bytes:
    """model/<files> and app/<script> as a tar, readable by the container's non-root user."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        def add_dir(name: str) -> None:
            info = tarfile.TarInfo(name)
            info.type, info.mode = tarfile.DIRTYPE, 0o755
            tar.addfile(info)

        def add_file(name: str, path: Path) -> None:
            info = tarfile.TarInfo(name)
            info.size, info.mode = path.stat().st_size, 0o644
            with open(path, "rb") as handle:
                tar.addfile(info, handle)

        add_dir("model")
        for path in sorted(Path(model_dir).iterdir()):
            add_file(f"model/{path.name}", path)
        add_dir("app")
        add_file(f"app/{script_path.name}", script_path)
    return buffer.getvalue()


def state_of(attrs: dict[str, Any], ready: bool, now: float) -> tuple[DeploymentState, str, int | None]:
    """(state, detail, exit code) from a container's inspect data and whether /ready answered. Pure."""
    state = attrs.get("State", {})
    status = state.get("Status", "")
    restarts = int(attrs.get("RestartCount", 0))
    exit_code = state.get("ExitCode")
    limit = attrs.get("HostConfig", {}).get("Memory") or 0
    if state.get("OOMKilled"):
        oom = (" — killed for going over its memory limit" + (f" of {limit // 2**20} MiB" if limit else "")
               + ": deploy with more memory")
    else:
        oom = " — killed (SIGKILL)" if exit_code == 137 else ""
    if status == "running" and ready:
        return DeploymentState.HEALTHY, "", None
    if status in ("exited", "dead"):
        return DeploymentState.FAILED, f"the container exited with code {exit_code}{oom}", exit_code
    if status == "restarting" or (status == "running" and restarts > 0):
        return (DeploymentState.UNHEALTHY,
                f"the server crashed and restarted {restarts} time(s), last exit code {exit_code}{oom}", exit_code)
    if status == "running":
        started = _parse_time(state.get("StartedAt", ""))
        if started and now - started > STARTUP_GRACE_SECONDS:
            return DeploymentState.UNHEALTHY, "the container runs but its server does not answer", None
        return DeploymentState.TRANSITIONING, "", None
    if status == "created":
        return DeploymentState.TRANSITIONING, "created, not started yet", None
    return DeploymentState.UNHEALTHY, f"container status {status!r}", exit_code


def _parse_time(value: str) -> float | None:
    try:
        return datetime.fromisoformat(value[:26].rstrip("Z") + "+00:00").timestamp()
    except ValueError:
        return None


F = TypeVar("F", bound=Callable[..., Any])


def _engine_errors(method: F) -> F:
    """Turns the engine's errors into ModelDeck errors at the edge, with what to do next."""

    @functools.wraps(method)
    def wrapper(self: "DockerRuntime", *args: Any, **kwargs: Any) -> Any:
        import docker.errors
        import requests

        try:
            return method(self, *args, **kwargs)
        except ModelDeckError:
            raise
        except docker.errors.NotFound as e:
            name = args[0] if args and isinstance(args[0], str) else "?"
            raise DeploymentNotFoundError(f"no deployment named {name!r} on the Docker engine") from e
        except (requests.ConnectionError, docker.errors.DockerException) as e:
            if isinstance(e, docker.errors.APIError):
                raise DeploymentError(f"the Docker engine refused: {e.explanation or e}") from e
            raise RuntimeUnavailableError(
                f"the Docker engine at {self.endpoint} stopped answering ({type(e).__name__}): "
                "start it again (scripts/setup.sh or `sudo systemctl start docker`)") from e

    return cast(F, wrapper)


class DockerRuntime:
    """Deployments as containers on a Docker engine (DOCKER_HOST honoured)."""

    name = "docker"

    def __init__(self, client: Any, settings: Settings, home: Home) -> None:
        self.client = client
        self.home = home
        self.endpoint = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        self.images = ImageBuilder(client, settings.cache_dir, settings.base_image, built_by=str(home.path))
        self._version: str | None = None

    @classmethod
    def connect(cls, settings: Settings, home: Home) -> "DockerRuntime":
        """Connects to the engine from the environment and checks that it answers.

        Raises:
            RuntimeUnavailableError: no engine answers, with where it looked and what to do.
        """
        endpoint = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
        try:
            import docker

            client = docker.from_env(timeout=PING_TIMEOUT_SECONDS)  # a silent remote host fails fast
            client.ping()
            client.api.timeout = API_TIMEOUT_SECONDS
        except Exception as e:  # docker raises several kinds when nothing listens
            raise RuntimeUnavailableError(
                f"no Docker engine answers at {endpoint} ({type(e).__name__}): start one (scripts/setup.sh "
                "installs and starts it), set DOCKER_HOST, or use the local runtime (--runtime local)") from e
        return cls(client, settings, home)

    def describe(self) -> str:
        if self._version is None:
            try:
                self._version = self.client.version().get("Version", "?")
            except Exception:
                self._version = "?"
        return f"Docker engine {self._version} at {self.endpoint}"

    def environment_versions(self, model: Model) -> dict[str, str]:
        host = current_library_versions()
        return {lib: model.library_versions.get(lib) or host[lib] for lib in MODEL_LIBRARIES if lib in host}

    def _container(self, name: str) -> Any:
        """This home's container of deployment `name`."""
        import docker.errors

        try:
            container = self.client.containers.get(container_name(self.home.id, name))
        except docker.errors.NotFound:
            raise DeploymentNotFoundError(f"no deployment named {name!r} on the Docker engine") from None
        if container.labels.get(LABEL) != name or container.labels.get(HOME_LABEL) != self.home.id:
            raise DeploymentNotFoundError(f"container {container.name} is not a deployment of this ModelDeck home")
        return container

    @_engine_errors
    def create(self, spec: DeploymentSpec, progress: Progress) -> Deployment:
        import docker.errors

        image = self.images.ensure(spec.model, current_library_versions(), progress)
        for attempt in range(1, PORT_ATTEMPTS + 1):
            args = container_create_args(spec, image, free_port())
            step(progress, f"creating container {args['name']} (cpu {spec.config.cpu_cores:g}, "
                           f"memory {args['mem_limit']}, 127.0.0.1:{args['ports'][f'{SCORING_PORT}/tcp'][1]})")
            try:
                container = self.client.containers.create(**args)
            except docker.errors.APIError as e:
                if e.status_code == 409:
                    raise DeploymentExistsError(
                        f"a container named {args['name']} exists already: delete deployment {spec.name!r} first"
                    ) from e
                raise
            try:
                container.put_archive(DATA_DIR, deployment_tar(spec.model_dir, spec.script_path))
                step(progress, "model files and scoring script copied in; starting the container")
                container.start()
            except docker.errors.APIError as e:
                container.remove(force=True, v=True)
                if attempt < PORT_ATTEMPTS and _port_taken(e):
                    step(progress, "that port was taken meanwhile: choosing another")
                    continue
                raise
            except Exception:
                container.remove(force=True, v=True)
                raise
            return self.get(spec.name)
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _to_deployment(self, container: Any) -> Deployment:
        attrs = container.attrs
        record = DeploymentRecord.from_labels(attrs["Config"]["Labels"])
        port = None
        # The port chosen at create, as configured: there even while the container is stopped or restarting.
        bindings = (attrs.get("HostConfig", {}).get("PortBindings") or {}).get(f"{SCORING_PORT}/tcp") or []
        for binding in bindings:
            if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
                port = int(binding["HostPort"])
                break
        running = attrs["State"].get("Status") == "running"
        state, detail, exit_code = state_of(attrs, bool(running and port and is_ready(port)), time.time())
        if not record.home_id:
            detail = (f"made by ModelDeck before homes existed: remove it with `docker rm -f {container.name}`"
                      + (f"; {detail}" if detail else ""))
        return Deployment(record=record, runtime=self.name, state=state,
                          scoring_uri=f"http://127.0.0.1:{port}/score" if port else None,
                          detail=detail, exit_code=exit_code, owned=record.home_id == self.home.id)

    @_engine_errors
    def get(self, name: str) -> Deployment:
        return self._to_deployment(self._container(name))

    @_engine_errors
    def list(self, *, all_homes: bool = False) -> list[Deployment]:
        import docker.errors

        labels = [LABEL, LEGACY_NAME_LABEL] if all_homes else [f"{HOME_LABEL}={self.home.id}"]
        found = []
        for label in labels:
            for container in self.client.containers.list(all=True, filters={"label": label}, ignore_removed=True):
                try:
                    found.append(self._to_deployment(container))
                except (docker.errors.NotFound, KeyError, ValueError):
                    continue  # removed while we looked, or labels that are not a deployment record
        return sorted(found, key=lambda d: (not d.owned, d.record.home, d.name))

    @_engine_errors
    def logs(self, name: str, tail: int | None = None) -> str:
        raw = self._container(name).logs(stdout=True, stderr=True, tail=tail if tail is not None else "all")
        return str(raw.decode("utf-8", errors="replace"))

    @_engine_errors
    def mark_ready(self, name: str) -> None:
        """Once ready, a crash (say, out of memory on a huge request) restarts the server."""
        container = self._container(name)
        if container.attrs["HostConfig"].get("RestartPolicy", {}).get("Name") == "no":
            container.update(restart_policy=RESTART_POLICY)

    @_engine_errors
    def stop(self, name: str) -> None:
        container = self._container(name)
        container.update(restart_policy={"Name": "no"})
        container.stop(timeout=STOP_TIMEOUT_SECONDS)

    @_engine_errors
    def remove(self, name: str) -> None:
        self._container(name).remove(force=True, v=True)
