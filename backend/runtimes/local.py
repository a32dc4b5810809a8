"""The local runtime: each deployment is a scoring-server process on a port of 127.0.0.1.

The runtime binds the port itself (127.0.0.1, a free one) and hands the bound socket to the server,
which listens on it once its init() is done: a sandboxed server has a network of its own with only
loopback, and reaches the machine's network through nothing but that one socket. No proxy stands in
the request path (a Docker deployment's server, which cannot inherit a socket, is reached through the
home's front instead; front.py). State lives on disk in `<home>/deployments/<name>/` (record.json:
the deployment record, written first; creator: who is making it, until it started; process.json:
port, process group and sandbox; keys/keys.json (0600) with key auth; model/, app/<script>, run/,
server.log, exit_code), so any later process finds running deployments again. The server runs in a
process group of its own: it is alive while any process of that group is, and stopping it ends the
whole group. Where bubblewrap works the server runs in its sandbox (sandbox.py: no network, read-only
files, no rights, memory_gb as each process's address space); elsewhere a deployment needs
`trust_model`. cpu_cores sets the worker and BLAS thread counts.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..config import Home, Settings
from ..errors import DeploymentError, DeploymentExistsError, DeploymentNotFoundError, UntrustedModelError
from ..files import atomic_write
from ..process_token import creator_gone, creator_token
from ..progress import Progress, step
from ..registry import Model, current_library_versions
from ..serving.environment import MEMORY_ENV
from .base import (
    Deployment,
    DeploymentRecord,
    DeploymentSpec,
    Keys,
    server_options,
    serving_environment,
    worker_plan,
)
from .front import Front
from .probe import readiness
from .sandbox import NOT_SANDBOXED, REFUSED, SANDBOXED, bwrap_command, deployment_view, sandbox_status
from .state import Phase, ServerView, deployment_state

SERVING_PARENT = Path(__file__).resolve().parent.parent  # the folder holding the `serving` package
SERVER = "the server process"  # how a deployment's state names its server
LEGACY_META = "meta.json"  # one file per deployment, before records and process facts were apart
CREATOR_FILE = "creator"
KEYS_FILE = "keys/keys.json"  # in a folder of its own: the sandbox shows the folder read-only (a new file replaces it)
LEGACY_KEYS_FILE = "keys.json"
# A shell in front of the server records its exit code, so a later process can tell why it ended. It
# ignores SIGTERM (sent to the whole group on stop) so that it outlives the server and writes the code;
# the server sets its own handler, so the ignored disposition it inherits does not stay. The shell closes
# its copy of the server's socket ({fd}) at once: a server that ended leaves its port refusing connections,
# not holding them unanswered. bash, not sh: dash redirects only file descriptors 0-9.
_WRAPPER = ('trap "" TERM; "$@" & server=$!; exec {fd}<&-; wait $server; code=$?; '
            'echo $code > "$MODELDECK_EXIT_FILE"; exit $code')


# The servers' wrappers this process started, by pid: kept per process, not per runtime object, so a runtime
# opened again (or a second one for the same home) still reaps them and a zombie never reads as running.
_CHILDREN: dict[int, subprocess.Popen[bytes]] = {}


class LocalRuntime:
    """Deployments as local processes (the embedded default where no Docker engine answers)."""

    name = "local"

    def __init__(self, root: Path, front: Front | None = None) -> None:
        self.root = Path(root)
        self.front = front or Front(self.root.parent / "front")  # only deployments made before serve through it

    @classmethod
    def for_home(cls, settings: Settings, home: Home) -> "LocalRuntime":
        """The local runtime of a home (always there: it needs no engine)."""
        return cls(settings.local_deployments_dir)

    def describe(self) -> str:
        sandbox = sandbox_status()
        return (f"local processes (Python {sys.version.split()[0]}) on 127.0.0.1, "
                + ("sandboxed (bubblewrap)" if sandbox.available else f"not sandboxed: {sandbox.reason}"))

    def environment_versions(self, model: Model) -> dict[str, str]:
        return current_library_versions()

    def _dir(self, name: str) -> Path:
        return self.root / name

    def create(self, spec: DeploymentSpec, progress: Progress) -> Deployment:
        target = self._dir(spec.name)
        sandbox = sandbox_status()
        if not sandbox.available and not spec.config.trust_model:
            own_script = [] if spec.script_path.parent == SERVING_PARENT / "serving" else [spec.script_path.name]
            raise UntrustedModelError(REFUSED.format(model=spec.model.id, reason=sandbox.reason, code=", ".join(
                sorted({*(f.name for f in spec.model.files), *own_script}))))
        self.root.mkdir(parents=True, exist_ok=True)
        if self._abandoned(target):
            shutil.rmtree(target, ignore_errors=True)
        try:
            target.mkdir(mode=0o700)
        except FileExistsError:
            raise DeploymentExistsError(
                f"a deployment named {spec.name!r} exists already (local runtime): delete it or pick another name"
            ) from None
        proc: subprocess.Popen[bytes] | None = None
        listener = _reserve_port()
        port = listener.getsockname()[1]
        try:
            # The record first: from here on the name is listed (as interrupted, should this process die).
            _write_private(target / CREATOR_FILE, creator_token())
            _write_private(target / "record.json", spec.record.to_json())
            shutil.copytree(spec.model_dir, target / "model")
            (target / "app").mkdir()
            script = target / "app" / spec.script_path.name
            shutil.copyfile(spec.script_path, script)
            if spec.keys is not None:
                (target / KEYS_FILE).parent.mkdir(mode=0o700)
                _write_private(target / KEYS_FILE, spec.keys.to_json())
            (target / "run").mkdir()
            # Nothing of this process's environment (its secrets) reaches the server: only what serving reads.
            env = {**serving_environment(spec.config.cpu_cores, str(target / "model")),
                   "PYTHONPATH": str(SERVING_PARENT), "PYTHONUNBUFFERED": "1",
                   # not enforced by rlimits as a sum, but the server budgets request bodies by it, as a
                   # container does by its limit
                   MEMORY_ENV: f"{spec.config.memory_gb * 1024:g}"}
            server = [sys.executable, "-m", "serving", "--script", str(script), "--model-dir", str(target / "model"),
                      "--fd", str(listener.fileno()), *server_options(spec, str(target / KEYS_FILE))]
            if sandbox.bwrap and sandbox.available:
                server = bwrap_command(sandbox.bwrap, deployment_view(target, env, spec.config.memory_gb,
                                                                      worker_plan(spec.config.cpu_cores)[0]), server)
            command = ["/bin/bash", "-c", _WRAPPER.format(fd=listener.fileno()), "modeldeck-serve", *server]
            env.update({"MODELDECK_EXIT_FILE": str(target / "exit_code"), "PATH": os.defpath})
            step(progress, f"starting the scoring server on 127.0.0.1:{port}")
            with open(target / "server.log", "ab") as log:
                proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, cwd=target, start_new_session=True, pass_fds=(listener.fileno(),))
            _CHILDREN[proc.pid] = proc
            _write_private(target / "process.json", json.dumps({"port": port, "pid": proc.pid,
                                                                "sandbox": "bubblewrap" if sandbox.available
                                                                else "none"}))
            (target / CREATOR_FILE).unlink()
        except BaseException as e:
            if proc is not None:
                self._stop(proc.pid, target)
            shutil.rmtree(target, ignore_errors=True)
            if isinstance(e, OSError):
                raise DeploymentError(f"cannot start local deployment {spec.name!r}: {e}") from e
            raise
        finally:
            listener.close()  # the server holds the port now (or nothing does)
        return self._read(target)

    def _abandoned(self, target: Path) -> bool:
        """A folder a deploy killed before it wrote the record left: no record, and its maker gone."""
        if not target.is_dir() or (target / "record.json").exists() or self._state_file(target).exists():
            return False
        try:
            creator = (target / CREATOR_FILE).read_text()
        except OSError:
            creator = ""
        age = time.time() - target.stat().st_mtime
        return creator_gone(creator, age) if creator else age > 60

    def _alive(self, pgid: int, target: Path) -> bool:
        """True while a process of the server's group runs (the wrapper may be gone, the server not)."""
        child = _CHILDREN.get(pgid)
        if child is not None:
            child.poll()  # reap the wrapper if it ended, so it does not count as running
        return _group_alive(pgid, marker=str(target).encode())

    def _files(self, target: Path) -> tuple[DeploymentRecord, dict[str, Any]]:
        """The record and the process facts of a deployment folder (also one made before records
        existed, whose meta.json holds both)."""
        try:
            if not (target / "process.json").exists() and (target / LEGACY_META).exists():
                meta = json.loads((target / LEGACY_META).read_text())
                return DeploymentRecord.from_dict(meta), {"port": meta["port"], "pid": meta["pid"]}
            record = DeploymentRecord.from_json((target / "record.json").read_text())
            process = json.loads((target / "process.json").read_text())
        except (OSError, ValueError, KeyError):
            raise DeploymentNotFoundError(f"no deployment named {target.name!r} (local runtime)") from None
        return record, process

    def _state_file(self, target: Path) -> Path:
        return target / "process.json" if (target / "process.json").exists() else target / LEGACY_META

    def _read(self, target: Path) -> Deployment:
        if not self._state_file(target).exists() and (target / "record.json").exists():
            return self._read_unstarted(target)
        record, process = self._files(target)
        if process.get("socket"):
            self.front.ensure_running()
        if self._alive(process["pid"], target):
            ready, init_failed = readiness(process["port"])
            view = ServerView(SERVER, Phase.RUNNING, ready=ready, init_failed=init_failed,
                              started_at=self._state_file(target).stat().st_mtime)
        else:
            try:
                exit_code: int | None = int((target / "exit_code").read_text().strip())
            except (OSError, ValueError):
                exit_code = None
            view = ServerView(SERVER, Phase.ENDED, exit_code=exit_code)
        state, detail, code = deployment_state(view, time.time())
        return Deployment(record=record, runtime=self.name, state=state,
                          scoring_uri=f"http://127.0.0.1:{process['port']}/score", detail=detail,
                          exit_code=code, isolation=_isolation(process.get("sandbox"), record.config.memory_gb))

    def _read_unstarted(self, target: Path) -> Deployment:
        """A deployment whose server was never started: still being made, or its maker was killed."""
        try:
            record = DeploymentRecord.from_json((target / "record.json").read_text())
            creator = (target / CREATOR_FILE).read_text()
        except (OSError, ValueError, KeyError):
            record, creator = None, ""
        if record is None:  # half-written: only the maker, while it lives, could know more
            raise DeploymentNotFoundError(f"no deployment named {target.name!r} (local runtime)")
        age = time.time() - (target / "record.json").stat().st_mtime
        view = ServerView(SERVER, Phase.CREATED, creator_gone=not creator or creator_gone(creator, age))
        state, detail, _ = deployment_state(view, time.time())
        return Deployment(record=record, runtime=self.name, state=state, scoring_uri=None, detail=detail)

    def get(self, name: str) -> Deployment:
        return self._read(self._dir(name))

    def list(self, *, all_homes: bool = False) -> list[Deployment]:
        """This home's local deployments (other homes' processes are not visible from here)."""
        found: list[Deployment] = []
        if not self.root.is_dir():
            return found
        for target in sorted(self.root.iterdir()):
            if self._state_file(target).is_file() or (target / "record.json").is_file():
                try:
                    found.append(self._read(target))
                except DeploymentNotFoundError:
                    continue  # removed while we looked
        return found

    def logs(self, name: str, tail: int | None = None) -> str:
        target = self._dir(name)
        self.get(name)  # raises DeploymentNotFoundError
        try:
            text = (target / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    def keys(self, name: str) -> Keys:
        deployment = self.get(name)
        if not deployment.config.auth_enabled:
            raise DeploymentError(f"deployment {name!r} has no keys: it was deployed without key auth")
        try:
            return Keys.from_json(_keys_path(self._dir(name)).read_text())
        except (OSError, ValueError, KeyError) as e:
            raise DeploymentError(f"deployment {name!r} has lost its keys file: deploy it again") from e

    def set_keys(self, name: str, keys: Keys) -> None:
        self.keys(name)  # raises for a deployment without key auth
        _write_private(_keys_path(self._dir(name)), keys.to_json())

    def stop(self, name: str) -> None:
        target = self._dir(name)
        if self._state_file(target).exists():
            self._stop(self._files(target)[1]["pid"], target)
        else:
            self.get(name)  # raises DeploymentNotFoundError

    def remove(self, name: str) -> None:
        """Ends the server's whole process group, whatever state it reads, then removes the folder."""
        target = self._dir(name)
        if not target.is_dir() or not (self._state_file(target).exists() or (target / "record.json").exists()):
            raise DeploymentNotFoundError(f"no deployment named {name!r} (local runtime)")
        process: dict[str, Any] = {}
        if self._state_file(target).exists():
            process = self._files(target)[1]
            pid = process["pid"]
            self._stop(pid, target)
            child = _CHILDREN.pop(pid, None)
            if child is not None:
                child.wait(timeout=10)
        else:  # a deploy killed between starting the server and writing process.json: find it by its folder
            for pgid in _groups_working_in(target):
                self._stop(pgid, target)
            _end_mentioning(target)  # the sandbox's own session outlives its bwrap for a moment
        if process.get("socket"):  # served through the front
            self.front.withdraw(_route_key(name))
        shutil.rmtree(target, ignore_errors=True)

    def _stop(self, pgid: int, target: Path) -> None:
        """SIGTERM to the process group, SIGKILL after 10 s; none to a group that is no longer the server's. Group
        ids are reused (pid_max is 32768 on many machines): a server that died long ago may have left its number
        to another process group, which a delete without that check signalled."""
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            if not self._alive(pgid, target):
                return
            try:
                os.killpg(pgid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self._alive(pgid, target):
                    return
                time.sleep(0.05)


def _isolation(sandbox: str | None, memory_gb: float) -> str:
    if sandbox == "bubblewrap":
        return SANDBOXED.format(memory=memory_gb)
    return NOT_SANDBOXED if sandbox == "none" else "not sandboxed (started before ModelDeck had a sandbox)"


def _keys_path(target: Path) -> Path:
    """Where a deployment's keys are (at the top of its folder when made before the sandbox)."""
    legacy = target / LEGACY_KEYS_FILE
    return legacy if legacy.exists() else target / KEYS_FILE


def _reserve_port() -> socket.socket:
    """A TCP socket bound to a free port of the machine's 127.0.0.1, not listening (its server listens
    once its init() is done, from inside its sandbox)."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.bind(("127.0.0.1", 0))
    except OSError as e:
        sock.close()
        raise DeploymentError(f"cannot reserve a port on 127.0.0.1 for the server: {e}") from e
    return sock


def _route_key(name: str) -> str:
    """The front's route of a local deployment made while local deployments were served through it."""
    return f"local-{name}"


def _write_private(path: Path, text: str) -> None:
    """Writes `path` whole (a reader sees the old file or the new one), readable by its owner only."""
    with atomic_write(path) as handle:
        handle.write(text.encode())


def _group_alive(pgid: int, marker: bytes) -> bool:
    """True while a process of group `pgid` whose command line names `marker` runs (zombies waiting to
    be reaped do not count; the marker tells a reused group id apart)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[2]) == pgid and fields[0] not in ("Z", "X") \
                    and marker in (stat.parent / "cmdline").read_bytes():
                return True
        except (OSError, IndexError, ValueError):
            continue
    return False


def _end_mentioning(folder: Path, seconds: float = 5.0) -> None:
    """SIGKILL to this user's live processes whose command line names `folder` (a half-started server's, which
    no process group of ours holds: bubblewrap starts its sandbox in a session of its own), until none is left or
    `seconds` have passed."""
    wanted = str(folder.resolve()).encode()

    def names_it(argument: bytes) -> bool:  # the folder or a path in it: never "demo" for "demo-2"
        return argument == wanted or argument.startswith(wanted + b"/") or argument.endswith(b"=" + wanted)

    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        found = []
        for proc in Path("/proc").glob("[0-9]*"):
            try:
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state not in ("Z", "X") and any(map(names_it, (proc / "cmdline").read_bytes().split(b"\0"))):
                    found.append(int(proc.name))
            except (OSError, IndexError):  # gone meanwhile, or not ours to read
                continue
        found = [pid for pid in found if pid != os.getpid()]
        if not found:
            return
        for pid in found:
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:  # gone, or not ours
                continue
        time.sleep(0.05)


def _groups_working_in(folder: Path) -> set[int]:
    """The process groups of this user's processes whose working directory is `folder` (a server is
    started there, in a group of its own)."""
    wanted, groups = str(folder.resolve()), set()
    for cwd in Path("/proc").glob("[0-9]*/cwd"):
        try:
            if os.readlink(cwd) == wanted:
                groups.add(os.getpgid(int(cwd.parent.name)))
        except OSError:  # gone, or not ours to read
            continue
    return groups - {os.getpgrp()}  # never our own
