"""The Docker runtime: each deployment is a hardened container running the scoring server.

The engine is the source of truth: a container's labels carry its deployment record (name, home,
model, config, tags and description) and its port, so `list` rebuilds every deployment from the
engine alone. Each home sees its own deployments; containers are named `modeldeck-<home id>-<name>`,
so two homes on one engine never take each other's names.

A container has no network (`--network none`: no interface but loopback, no route, no DNS, no other
container to reach). Its server listens on a unix socket in a folder of the home bind-mounted into
it (`<home>/docker/<uid>/run`), and the home's front (front.py) serves that socket on the
deployment's port of 127.0.0.1: no docker-proxy in the way, and nothing but the front reaches it. The
model, the script and the keys are bind-mounted read-only from the same folder.
"""

from __future__ import annotations

import functools
import io
import os
import shutil
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
from ..files import atomic_write
from ..process_token import creator_gone, creator_token
from ..progress import Progress, step
from ..registry import Model, current_library_versions
from .base import (
    LABEL_PREFIX,
    LEGACY_NAME_LABEL,
    SCORING_PORT,
    Deployment,
    DeploymentRecord,
    DeploymentSpec,
    Keys,
    server_options,
    serving_environment,
)
from .environment_images import MODEL_LIBRARIES, ImageBuilder
from .front import Front, PortTaken, Route
from .probe import free_port, readiness
from .state import Phase, ServerView, deployment_state

LABEL = LABEL_PREFIX + "name"  # every ModelDeck deployment container has it
HOME_LABEL = LABEL_PREFIX + "home_id"
CONTAINER_PREFIX = "modeldeck-"
DATA_DIR = "/var/modeldeck"  # model/, app/, keys/ (read-only) and run/ are bind-mounted here
KEYS_FILE = f"{DATA_DIR}/keys/keys.json"
SOCKET_FILE = f"{DATA_DIR}/run/server.sock"
CREATOR_LABEL = LABEL_PREFIX + "creator"
PORT_LABEL = LABEL_PREFIX + "port"  # the front's port on 127.0.0.1, chosen once at create
SERVER_UID = 10001
ISOLATED = ("container: no network, read-only files but its run/ folder, uid 10001 without capabilities, "
            "{memory:g} GiB of memory in all")
BRIDGED = ("container on Docker's default bridge (made before ModelDeck took the network away: it can reach "
           "the internet; deploy it again), uid 10001 without capabilities, {memory:g} GiB of memory in all")
LOG_CONFIG = {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}  # at most ~30 MB of logs
# The server replaces its own crashed workers; the engine restarts the whole server when it dies
# (killed, out of memory), from the start. A failing init() is stopped by wait_for_deployment at
# its first exit; the retry limit ends a failing server whose waiter is gone.
RESTART_POLICY = {"Name": "on-failure", "MaximumRetryCount": 5}
STOP_TIMEOUT_SECONDS = 5
PING_TIMEOUT_SECONDS = 3
API_TIMEOUT_SECONDS = 120
PORT_ATTEMPTS = 3  # a free port can be taken by another process before the container binds it


def container_name(home_id: str, deployment: str) -> str:
    return f"{CONTAINER_PREFIX}{home_id}-{deployment}"


def volume_name(record: DeploymentRecord) -> str:
    """The volume of a deployment made before the front (model, script and keys were copied into it)."""
    return f"{CONTAINER_PREFIX}{record.home_id}-{record.uid}"


def server_user() -> tuple[int, int]:
    """Who the server runs as: uid 10001 when ModelDeck runs as root (it hands the deployment's
    folder to that user), else ModelDeck's own user, who owns the folder already."""
    return (SERVER_UID, SERVER_UID) if os.geteuid() == 0 else (os.getuid(), os.getgid())


def container_create_args(spec: DeploymentSpec, image: str, port: int, creator: str, folder: Path,
                          user: tuple[int, int] = (SERVER_UID, SERVER_UID)) -> dict[str, Any]:
    """The engine's create arguments for a deployment: limits, hardening, no network, the folder's
    mounts and the labels. The front's port is chosen here, once, and kept in a label, so the scoring
    URI stays the same across restarts of the container.

    Pure: unit-tested without an engine.
    """
    config = spec.config
    memory = f"{max(6, int(round(config.memory_gb * 1024)))}m"
    script = f"{DATA_DIR}/app/{spec.script_path.name}"

    def bind(sub: str, read_only: bool) -> dict[str, Any]:
        return {"Type": "bind", "Source": str(folder / sub), "Target": f"{DATA_DIR}/{sub}", "ReadOnly": read_only}

    mounts = [bind("model", True), bind("app", True), bind("run", False)]
    if spec.keys is not None or config.auth_enabled:
        mounts.append(bind("keys", True))
    return {
        "image": image,
        "name": container_name(spec.record.home_id, spec.name),
        "command": ["python", "-m", "serving", "--script", script, "--model-dir", f"{DATA_DIR}/model",
                    "--uds", SOCKET_FILE, *server_options(spec, KEYS_FILE)],
        "environment": serving_environment(config.cpu_cores, f"{DATA_DIR}/model"),
        "network_mode": "none",
        "nano_cpus": int(config.cpu_cores * 1e9),
        "mem_limit": memory,
        "memswap_limit": memory,  # no swap: the limit is the limit
        "pids_limit": 256,
        "user": f"{user[0]}:{user[1]}",
        "read_only": True,
        "tmpfs": {"/tmp": "rw,nosuid,nodev,size=64m"},
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        "mounts": mounts,
        "log_config": LOG_CONFIG,
        "restart_policy": dict(RESTART_POLICY),
        "labels": {**spec.record.to_labels(), CREATOR_LABEL: creator, PORT_LABEL: str(port)},
        "detach": True,
    }


def _port_taken(error: Any) -> bool:
    text = str(getattr(error, "explanation", "") or error).lower()
    return "port is already allocated" in text or "address already in use" in text


def keys_tar(keys: Keys) -> bytes:
    """keys/keys.json as a tar, readable by the server's user only."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:  # PAX: sub-second mtime
        _add_keys(tar, keys)
    return buffer.getvalue()


def _add_keys(tar: tarfile.TarFile, keys: Keys) -> None:
    folder = tarfile.TarInfo("keys")
    folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o700, SERVER_UID, SERVER_UID
    tar.addfile(folder)
    data = keys.to_json().encode()
    info = tarfile.TarInfo("keys/keys.json")
    info.size, info.mode, info.uid, info.gid, info.mtime = len(data), 0o400, SERVER_UID, SERVER_UID, time.time()
    tar.addfile(info, io.BytesIO(data))


def prepare_folder(folder: Path, spec: DeploymentSpec, user: tuple[int, int]) -> None:
    """The deployment's folder on this machine: model/ and app/ readable by the server's user, keys/
    (0700, the file 0400) and run/ (its socket) owned by it. The container mounts all but run/ read-only."""
    folder.mkdir(mode=0o755)
    shutil.copytree(spec.model_dir, folder / "model")
    (folder / "app").mkdir()
    shutil.copyfile(spec.script_path, folder / "app" / spec.script_path.name)
    for path in [folder / "model", *(folder / "model").rglob("*"), folder / "app", *(folder / "app").iterdir()]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    (folder / "run").mkdir(mode=0o755)
    os.chown(folder / "run", *user)
    if spec.keys is not None:
        (folder / "keys").mkdir(mode=0o700)
        os.chown(folder / "keys", *user)
        write_keys(folder / "keys", spec.keys, user)


def write_keys(keys_dir: Path, keys: Keys, user: tuple[int, int]) -> None:
    """keys.json, replaced whole (the server re-reads it when it changes), readable by `user` only."""
    with atomic_write(keys_dir / "keys.json", mode=0o400) as handle:
        handle.write(keys.to_json().encode())
        os.fchown(handle.fileno(), *user)


def container_view(attrs: dict[str, Any], ready: bool, creator_gone: bool = False,
                   init_failed: str | None = None) -> ServerView:
    """What a container's inspect data says of its server, with whether /ready answered (and, when the
    server said so, why it failed: its init(), or workers that keep dying; see probe.readiness) and
    whether the process that created it is gone. Pure."""
    state = attrs.get("State", {})
    status = state.get("Status", "")
    exit_code = state.get("ExitCode")
    limit = attrs.get("HostConfig", {}).get("Memory") or 0
    cause = ""
    if state.get("OOMKilled"):
        exit_code = exit_code or 137  # restarted after the kill: the engine shows 0 by then
        cause = ("killed for going over its memory limit" + (f" of {limit // 2**20} MiB" if limit else "")
                 + ": deploy with more memory")
    phase = {"created": Phase.CREATED, "running": Phase.RUNNING, "restarting": Phase.RESTARTING,
             "exited": Phase.ENDED, "dead": Phase.ENDED}.get(status, Phase.OTHER)
    stopped = status == "exited" and exit_code in (0, 143) and not cause
    return ServerView(server="the container", phase=phase, status=status, ready=ready,
                      init_failed=init_failed, started_at=_parse_time(state.get("StartedAt", "")),
                      restarts=int(attrs.get("RestartCount", 0)), exit_code=exit_code, cause=cause,
                      stopped_by="docker stop" if stopped else "", creator_gone=creator_gone)


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
        self.front = Front(home.path / "front")
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
        self._sweep()
        folder, user = self._folder(spec.record), server_user()
        try:
            folder.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
            (folder.parent / f"{spec.record.uid}.creator").write_text(creator_token())
            prepare_folder(folder, spec, user)
        except OSError as e:
            shutil.rmtree(folder, ignore_errors=True)
            (folder.parent / f"{spec.record.uid}.creator").unlink(missing_ok=True)
            raise DeploymentError(f"cannot prepare deployment {spec.name!r}'s folder {folder}: {e}") from e
        step(progress, "model files and scoring script ready")
        container = None
        try:
            for attempt in range(1, PORT_ATTEMPTS + 1):
                port = free_port()
                args = container_create_args(spec, image, port, creator_token(), folder, user)
                step(progress, f"creating container {args['name']} (cpu {spec.config.cpu_cores:g}, "
                               f"memory {args['mem_limit']}, no network; the front serves it on 127.0.0.1:{port})")
                try:
                    container = self.client.containers.create(**args)
                except docker.errors.APIError as e:
                    if e.status_code == 409:
                        raise DeploymentExistsError(
                            f"a container named {args['name']} exists already: delete deployment {spec.name!r} first"
                        ) from e
                    raise
                (folder.parent / f"{spec.record.uid}.creator").unlink(missing_ok=True)  # the container names it now
                try:
                    self.front.publish(Route(key=_route_key(spec.name), deployment=spec.name, port=port,
                                             socket=folder / "run" / "server.sock",
                                             max_body_mb=spec.config.body_limit_mb))
                except PortTaken:
                    container.remove(force=True)
                    container = None
                    if attempt == PORT_ATTEMPTS:
                        raise
                    step(progress, "that port was taken meanwhile: choosing another")
                    continue
                step(progress, "starting the container")
                container.start()
                return self.get(spec.name)
        except BaseException:
            if container is not None:
                self._remove_container(container)
            else:
                shutil.rmtree(folder, ignore_errors=True)
                (folder.parent / f"{spec.record.uid}.creator").unlink(missing_ok=True)
            raise
        raise AssertionError("unreachable: the last attempt returns or raises")

    def _folder(self, record: DeploymentRecord) -> Path:
        return self.home.path / "docker" / record.uid

    def _remove_container(self, container: Any) -> None:
        """Removes a container, its route on the front and its folder (or, made before the front, its volume)."""
        import docker.errors

        record = DeploymentRecord.from_labels(container.labels)
        if PORT_LABEL in container.labels:
            self.front.withdraw(_route_key(record.name))
        container.remove(force=True, v=True)
        if record.uid:
            shutil.rmtree(self._folder(record), ignore_errors=True)
        try:
            self.client.volumes.get(volume_name(record)).remove(force=True)
        except docker.errors.NotFound:
            pass

    def _sweep(self) -> None:
        """What containers removed behind ModelDeck's back left: their folders, routes and volumes
        (a folder still being made, whose maker runs, is kept)."""
        import docker.errors

        containers = self.client.containers.list(all=True, filters={"label": f"{HOME_LABEL}={self.home.id}"},
                                                 ignore_removed=True)
        uids = {c.labels.get(LABEL_PREFIX + "uid") for c in containers}
        names = {c.labels.get(LABEL) for c in containers}
        for route in self.front.routes():
            if route.key.startswith("docker-") and route.deployment not in names:
                self.front.withdraw(route.key)
        root = self.home.path / "docker"
        for folder in root.iterdir() if root.is_dir() else []:
            if not folder.is_dir() or folder.name in uids:
                continue
            maker = folder.parent / f"{folder.name}.creator"  # there until the folder's container exists
            try:
                gone = creator_gone(maker.read_text(), time.time() - folder.stat().st_mtime)
            except OSError:
                gone = True
            if gone:
                shutil.rmtree(folder, ignore_errors=True)
                maker.unlink(missing_ok=True)
        for volume in self.client.volumes.list(filters={"label": f"{HOME_LABEL}={self.home.id}", "dangling": True}):
            try:
                volume.remove()
            except docker.errors.APIError:
                continue  # in use again, or removed meanwhile

    def _to_deployment(self, container: Any) -> Deployment:
        attrs = container.attrs
        record = DeploymentRecord.from_labels(attrs["Config"]["Labels"])
        # The port chosen at create: there even while the container is stopped or restarting.
        port = int(attrs["Config"]["Labels"][PORT_LABEL]) if PORT_LABEL in attrs["Config"]["Labels"] else None
        bindings = (attrs.get("HostConfig", {}).get("PortBindings") or {}).get(f"{SCORING_PORT}/tcp") or []
        for binding in bindings if port is None else []:  # published by the engine (made before the front)
            if binding.get("HostIp") in ("127.0.0.1", "") and binding.get("HostPort"):
                port = int(binding["HostPort"])
                break
        status = attrs["State"].get("Status")
        creator = attrs["Config"]["Labels"].get(CREATOR_LABEL, "")
        age = time.time() - (_parse_time(attrs.get("Created", "")) or time.time())
        ready, init_failed = readiness(port) if status == "running" and port else (False, None)
        view = container_view(attrs, ready, init_failed=init_failed,
                              creator_gone=status == "created" and creator_gone(creator, age))
        state, detail, exit_code = deployment_state(view, time.time())
        if not record.home_id:
            detail = (f"made by ModelDeck before homes existed: remove it with `docker rm -f {container.name}`"
                      + (f"; {detail}" if detail else ""))
        isolation = (ISOLATED if PORT_LABEL in attrs["Config"]["Labels"] else BRIDGED).format(
            memory=record.config.memory_gb)
        return Deployment(record=record, runtime=self.name, state=state,
                          scoring_uri=f"http://127.0.0.1:{port}/score" if port else None,
                          detail=detail, exit_code=exit_code, owned=record.home_id == self.home.id,
                          isolation=isolation)

    @_engine_errors
    def get(self, name: str) -> Deployment:
        self.front.ensure_running()
        return self._to_deployment(self._container(name))

    @_engine_errors
    def list(self, *, all_homes: bool = False) -> list[Deployment]:
        import docker.errors

        labels = [LABEL, LEGACY_NAME_LABEL] if all_homes else [f"{HOME_LABEL}={self.home.id}"]
        self.front.ensure_running()
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
    def keys(self, name: str) -> Keys:
        import docker.errors

        container = self._container(name)
        record = DeploymentRecord.from_labels(container.labels)
        if not record.config.auth_enabled:
            raise DeploymentError(f"deployment {name!r} has no keys: it was deployed without key auth")
        if PORT_LABEL in container.labels:
            try:
                return Keys.from_json((self._folder(record) / "keys" / "keys.json").read_text())
            except (OSError, ValueError, KeyError) as e:
                raise DeploymentError(f"deployment {name!r} has lost its keys file: deploy it again") from e
        try:
            stream, _ = container.get_archive(KEYS_FILE)
        except docker.errors.NotFound as e:
            raise DeploymentError(f"deployment {name!r} has lost its keys file: deploy it again") from e
        with tarfile.open(fileobj=io.BytesIO(b"".join(stream))) as tar:
            member = tar.extractfile("keys.json")
            if member is None:
                raise DeploymentError(f"deployment {name!r} has no readable keys file")
            return Keys.from_json(member.read())

    @_engine_errors
    def set_keys(self, name: str, keys: Keys) -> None:
        container = self._container(name)
        if PORT_LABEL in container.labels:
            write_keys(self._folder(DeploymentRecord.from_labels(container.labels)) / "keys", keys, server_user())
        else:  # made before the front: the keys live in its volume
            container.put_archive(DATA_DIR, keys_tar(keys))

    @_engine_errors
    def stop(self, name: str) -> None:
        container = self._container(name)
        container.update(restart_policy={"Name": "no"})
        container.stop(timeout=STOP_TIMEOUT_SECONDS)

    @_engine_errors
    def remove(self, name: str) -> None:
        self._remove_container(self._container(name))
        self._sweep()


def _route_key(name: str) -> str:
    return f"docker-{name}"
