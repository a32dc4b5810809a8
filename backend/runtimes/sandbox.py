"""The local runtime's sandbox: a deployment's server runs in bubblewrap (`bwrap`, Debian's `bubblewrap`).

What the model's code gets there: its own network namespace (only its own loopback; the listening
socket the runtime bound on the machine's 127.0.0.1 and handed to the server is its only way out: it
can accept connections on it, not make any), its own pid, ipc, uts
and user namespaces (uid and gid 65534 inside, no capabilities), an empty root filesystem holding
read-only only the interpreter it runs on, the serving package, its model/ and app/ folders and its keys
folder; its run/ folder writable; its own small tmpfs on /tmp; a new /proc and a minimal /dev; an
environment of only what the server needs; and resource limits (address space, processes, open files)
set inside by `prlimit`. Paths keep their host names, so the server's command line is the same inside.

Not `--die-with-parent`: the server outlives the command that deployed it. Not `--new-session`: the
server stays in the process group the local runtime stops (it has no terminal to misuse: stdin is
/dev/null and its output a file).
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

SANDBOX_UID = 65534  # nobody / nogroup, inside the sandbox's user namespace
HOSTNAME = "modeldeck-sandbox"
PRLIMIT = "/usr/bin/prlimit"
OPEN_FILES = 4096  # a worker holds at most 3,584 connections (serving.workers.MAX_CONCURRENCY)
THREADS_PER_WORKER = 64  # uvicorn's loop, anyio's thread pool for run() (40), BLAS: one RLIMIT_NPROC covers them
MIN_TMP_BYTES = 64 * 2**20
SHM_BYTES = 64 * 2**20
ADDRESS_SPACE_HEADROOM = 2**30
SYSTEM_READ_ONLY = ("/usr", "/etc/ld.so.cache", "/etc/localtime")  # shared libraries and the time zone
MERGED_USR = ("/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")  # links into /usr, or folders of their own
NO_BWRAP = "bubblewrap is not installed (`sudo apt-get install bubblewrap`; scripts/setup.sh installs it)"
BUILT_IN_ENVIRONMENT = {"PATH": "/usr/local/bin:/usr/bin:/bin", "HOME": "/tmp", "TMPDIR": "/tmp",
                        "LANG": "C.UTF-8"}


@dataclass(frozen=True)
class Limits:
    """Resource limits of every process in the sandbox (rlimits: each process on its own, not their sum).

    Attributes:
        memory_bytes: RLIMIT_DATA, the private writable memory of each process (the deployment's
            memory_gb): what a process can allocate and write, its thread stacks included.
        address_space_bytes: RLIMIT_AS, what it can map at all, so shared mappings (which RLIMIT_DATA
            does not count) stay bounded too; memory_gb + 1 GiB, as a worker maps ~0.55 GiB it never writes
            (numpy, scikit-learn, OpenBLAS loaded), which RLIMIT_AS at memory_gb alone would take from it.
        processes: RLIMIT_NPROC, processes and threads of the sandbox's user together.
        open_files: RLIMIT_NOFILE.
    """

    memory_bytes: int
    processes: int
    open_files: int = OPEN_FILES
    address_space_bytes: int | None = None

    @classmethod
    def for_deployment(cls, memory_gb: float, workers: int) -> "Limits":
        """The limits of a deployment with `memory_gb` and `workers` worker processes."""
        memory = int(memory_gb * 2**30)
        return cls(memory_bytes=memory, address_space_bytes=memory + ADDRESS_SPACE_HEADROOM,
                   processes=THREADS_PER_WORKER * (max(1, workers) + 1))

    def prlimit_args(self) -> list[str]:
        space = self.address_space_bytes or self.memory_bytes + ADDRESS_SPACE_HEADROOM
        return [f"--data={self.memory_bytes}", f"--as={space}", f"--nproc={self.processes}",
                f"--nofile={self.open_files}"]


@dataclass(frozen=True)
class SandboxView:
    """What one sandbox shows: host paths at their own place, read-only or writable, and its environment.

    Attributes:
        read_only: files and folders shown read-only (the interpreter, the serving package, the model...).
        writable: folders shown writable (the deployment's run/ folder).
        links: (target, path) symbolic links to make (/bin -> usr/bin on a merged-/usr system).
        environment: the whole environment of the server (nothing else is inherited).
        workdir: the server's working folder.
        limits: its resource limits.
        tmp_bytes: the size of its own /tmp.
    """

    read_only: tuple[Path, ...]
    writable: tuple[Path, ...]
    environment: Mapping[str, str]
    workdir: Path
    limits: Limits
    links: tuple[tuple[str, Path], ...] = ()
    tmp_bytes: int = MIN_TMP_BYTES
    uid: int = SANDBOX_UID


def bwrap_command(bwrap: str, view: SandboxView, command: Sequence[str]) -> list[str]:
    """The command line that runs `command` in the sandbox `view` describes. Pure.

    The order matters to bwrap: /tmp is mounted before the binds, so a deployment folder under /tmp is
    shown on top of the sandbox's own /tmp.
    """
    args = [bwrap, "--unshare-user", "--unshare-ipc", "--unshare-pid", "--unshare-net", "--unshare-uts",
            "--unshare-cgroup-try", "--uid", str(view.uid), "--gid", str(view.uid), "--hostname", HOSTNAME,
            "--cap-drop", "ALL", "--clearenv"]
    for target, path in view.links:
        args += ["--symlink", target, str(path)]
    for path in view.read_only:
        if not _under_tmp(path):
            args += ["--ro-bind", str(path), str(path)]
    args += ["--proc", "/proc", "--dev", "/dev", "--size", str(SHM_BYTES), "--tmpfs", "/dev/shm",
             "--size", str(view.tmp_bytes), "--tmpfs", "/tmp"]
    for path in view.read_only:
        if _under_tmp(path):
            args += ["--ro-bind", str(path), str(path)]
    for path in view.writable:
        args += ["--bind", str(path), str(path)]
    for name, value in sorted(view.environment.items()):
        args += ["--setenv", name, value]
    args += ["--remount-ro", "/dev", "--remount-ro", "/", "--chdir", str(view.workdir),
             "--", PRLIMIT, *view.limits.prlimit_args(), "--", *command]
    return args


def _under_tmp(path: Path) -> bool:
    return path == Path("/tmp") or Path("/tmp") in path.parents


def interpreter_paths() -> tuple[Path, ...]:
    """The folders the running Python needs: its venv and its base installation (each as named and as
    resolved, so symbolic links between them lead somewhere in the sandbox too)."""
    found: list[Path] = []
    for prefix in (sys.prefix, sys.exec_prefix, sys.base_prefix, sys.base_exec_prefix):
        for path in (Path(prefix), Path(prefix).resolve()):
            if path not in found and not any(p in path.parents for p in found):
                found.append(path)
    return tuple(found)


def system_view() -> tuple[tuple[Path, ...], tuple[tuple[str, Path], ...]]:
    """(read-only paths, links) of the system: /usr and the shared-library cache; /bin, /lib... as the
    links they are on a merged-/usr system, or read-only folders where they are folders."""
    read_only = [Path(p) for p in SYSTEM_READ_ONLY if Path(p).exists()]
    links: list[tuple[str, Path]] = []
    for name in MERGED_USR:
        path = Path(name)
        if path.is_symlink():
            links.append((str(path.readlink()), path))
        elif path.is_dir():
            read_only.append(path)
    return tuple(read_only), tuple(links)


@dataclass(frozen=True)
class SandboxStatus:
    """Whether this machine can sandbox local deployments, and why not."""

    available: bool
    bwrap: str | None
    reason: str = ""


def sandbox_status() -> SandboxStatus:
    """Whether `bwrap` (looked up on PATH) is installed and can make the namespaces the sandbox needs
    (asked once per process and bwrap path: it runs `true` in such a sandbox)."""
    found = shutil.which("bwrap")
    if found is None:
        return SandboxStatus(False, None, NO_BWRAP)
    return _try(found)


@functools.cache
def _try(bwrap: str) -> SandboxStatus:
    read_only, links = system_view()
    view = SandboxView(read_only=read_only, writable=(), environment={}, workdir=Path("/"),
                       limits=Limits(memory_bytes=2**30, processes=64), links=links)
    try:
        done = subprocess.run(bwrap_command(bwrap, view, ["/bin/true"]), capture_output=True, text=True, timeout=30,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.SubprocessError) as e:
        return SandboxStatus(False, bwrap, f"{bwrap} does not run: {e}")
    if done.returncode != 0:
        said = (done.stderr or done.stdout).strip().splitlines()
        return SandboxStatus(False, bwrap, f"{bwrap} cannot make its namespaces here: "
                                           f"{said[-1] if said else f'exit code {done.returncode}'}")
    return SandboxStatus(True, bwrap)


SERVING_PACKAGE = Path(__file__).resolve().parent.parent / "serving"
SANDBOXED = ("sandboxed (bubblewrap): no network, read-only files but its run/ folder, user nobody without "
             "capabilities, {memory:g} GiB of memory a process")
NOT_SANDBOXED = "not sandboxed (--trust-model): the model's code runs with your user's rights, network and files"
REFUSED = ("the local runtime cannot sandbox {model} on this machine: {reason}. Loading it runs its code "
           "({code}) with your user's full rights, network and files. Install bubblewrap or deploy to Docker; "
           "or, if you trust this model's code, deploy it with --trust-model (on the Deploy page: \"Trust the "
           "model's code\")")


def deployment_view(folder: Path, environment: Mapping[str, str], memory_gb: float, workers: int) -> SandboxView:
    """The sandbox of the local deployment in `folder`: the interpreter, the serving package, the
    deployment's model/, app/ and keys/ read-only, its run/ writable, `environment` and nothing else."""
    system, links = system_view()
    own = tuple(folder / name for name in ("model", "app", "keys") if (folder / name).exists())
    limits = Limits.for_deployment(memory_gb, workers)
    read_only = tuple(dict.fromkeys((*system, *interpreter_paths(), SERVING_PACKAGE, *own)))  # /usr may be both
    return SandboxView(read_only=read_only, writable=(folder / "run",),
                       environment={**BUILT_IN_ENVIRONMENT, **environment}, workdir=folder, limits=limits,
                       links=links, tmp_bytes=max(MIN_TMP_BYTES, limits.memory_bytes // 4))
