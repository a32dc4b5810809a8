"""The local runtime: each deployment is a scoring-server process on 127.0.0.1.

State lives on disk in `<home>/deployments/<name>/` (record.json: the deployment record;
process.json: port and pid; model/, app/<script>, server.log, exit_code), so any later process
finds running deployments again. Limits are recorded, not
enforced: cpu_cores sets the BLAS thread count; memory is not limited (use Docker for that).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from ..errors import DeploymentError, DeploymentExistsError, DeploymentNotFoundError
from ..progress import Progress, step
from ..registry import Model, current_library_versions
from .base import Deployment, DeploymentRecord, DeploymentSpec, DeploymentState, server_options, serving_environment
from .probe import free_port, is_ready

SERVING_PARENT = Path(__file__).resolve().parent.parent  # the folder holding the `serving` package
STARTUP_GRACE_SECONDS = 300
LEGACY_META = "meta.json"  # one file per deployment, before records and process facts were apart
# A shell in front of the server records its exit code, so a later process can tell why it ended.
_WRAPPER = '"$@"; code=$?; echo $code > "$MODELDECK_EXIT_FILE"; exit $code'


class LocalRuntime:
    """Deployments as local processes (the embedded default where no Docker engine answers)."""

    name = "local"

    def __init__(self, root: Path) -> None:
        self.root = Path(root)
        self._children: dict[int, subprocess.Popen[bytes]] = {}

    def describe(self) -> str:
        return f"local processes (Python {sys.version.split()[0]}) on 127.0.0.1"

    def environment_versions(self, model: Model) -> dict[str, str]:
        return current_library_versions()

    def _dir(self, name: str) -> Path:
        return self.root / name

    def create(self, spec: DeploymentSpec, progress: Progress) -> Deployment:
        target = self._dir(spec.name)
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            target.mkdir()
        except FileExistsError:
            raise DeploymentExistsError(
                f"a deployment named {spec.name!r} exists already (local runtime): delete it or pick another name"
            ) from None
        try:
            shutil.copytree(spec.model_dir, target / "model")
            (target / "app").mkdir()
            script = target / "app" / spec.script_path.name
            shutil.copyfile(spec.script_path, script)
            port = free_port()
            (target / "record.json").write_text(spec.record.to_json())
            env = {**os.environ, **serving_environment(spec.config.cpu_cores, str(target / "model")),
                   "PYTHONPATH": str(SERVING_PARENT), "MODELDECK_EXIT_FILE": str(target / "exit_code"),
                   "PYTHONUNBUFFERED": "1"}
            command = ["/bin/sh", "-c", _WRAPPER, "modeldeck-serve", sys.executable, "-m", "serving",
                       "--script", str(script), "--model-dir", str(target / "model"), "--host", "127.0.0.1",
                       "--port", str(port), *server_options(spec)]
            step(progress, f"starting scoring server on 127.0.0.1:{port}")
            with open(target / "server.log", "ab") as log:
                proc = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                        env=env, cwd=target, start_new_session=True)
            self._children[proc.pid] = proc
            (target / "process.json").write_text(json.dumps({"port": port, "pid": proc.pid}))
        except OSError as e:
            shutil.rmtree(target, ignore_errors=True)
            raise DeploymentError(f"cannot start local deployment {spec.name!r}: {e}") from e
        return self._read(target)

    def _alive(self, pid: int, target: Path) -> bool:
        child = self._children.get(pid)
        if child is not None:
            return child.poll() is None
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return False
        state = stat.rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X") and str(target).encode() in cmdline

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
        record, process = self._files(target)
        exit_code = None
        detail = ""
        if self._alive(process["pid"], target):
            if is_ready(process["port"]):
                state = DeploymentState.HEALTHY
            else:
                age = time.time() - self._state_file(target).stat().st_mtime
                state = DeploymentState.TRANSITIONING if age < STARTUP_GRACE_SECONDS else DeploymentState.UNHEALTHY
                detail = "" if state is DeploymentState.TRANSITIONING else "the server process runs but does not answer"
        else:
            state = DeploymentState.FAILED
            try:
                exit_code = int((target / "exit_code").read_text().strip())
                detail = f"the server process exited with code {exit_code}"
            except (OSError, ValueError):
                detail = "the server process is gone (killed, or the machine restarted)"
        return Deployment(record=record, runtime=self.name, state=state,
                          scoring_uri=f"http://127.0.0.1:{process['port']}/score", detail=detail,
                          exit_code=exit_code)

    def get(self, name: str) -> Deployment:
        return self._read(self._dir(name))

    def list(self, *, all_homes: bool = False) -> list[Deployment]:
        """This home's local deployments (other homes' processes are not visible from here)."""
        found: list[Deployment] = []
        if not self.root.is_dir():
            return found
        for target in sorted(self.root.iterdir()):
            if self._state_file(target).is_file():
                try:
                    found.append(self._read(target))
                except DeploymentNotFoundError:
                    continue  # removed while we looked
        return found

    def logs(self, name: str, tail: int | None = None) -> str:
        target = self._dir(name)
        self._files(target)  # raises DeploymentNotFoundError
        try:
            text = (target / "server.log").read_text(errors="replace")
        except OSError:
            return ""
        if tail is not None:
            text = "\n".join(text.splitlines()[-tail:])
        return text

    def mark_ready(self, name: str) -> None:
        """Nothing to do: local processes are not restarted."""

    def stop(self, name: str) -> None:
        target = self._dir(name)
        _, process = self._files(target)
        self._stop(process["pid"], target)

    def remove(self, name: str) -> None:
        deployment = self.get(name)  # raises DeploymentNotFoundError
        target = self._dir(name)
        pid = self._files(target)[1]["pid"]
        if deployment.state is not DeploymentState.FAILED:
            self._stop(pid, target)
        child = self._children.pop(pid, None)
        if child is not None:
            child.wait(timeout=10)
        shutil.rmtree(target, ignore_errors=True)

    def _stop(self, pid: int, target: Path) -> None:
        """SIGTERM to the process group, SIGKILL after 10 s."""
        for sig, wait in ((signal.SIGTERM, 10.0), (signal.SIGKILL, 5.0)):
            try:
                os.killpg(pid, sig)
            except ProcessLookupError:
                return
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not self._alive(pid, target) and not _group_alive(pid):
                    return
                time.sleep(0.05)


def _group_alive(pgid: int) -> bool:
    """True while a process of group `pgid` still runs (zombies waiting to be reaped do not count)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            return True
    return False
