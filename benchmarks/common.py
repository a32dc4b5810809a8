"""Helpers shared by the benchmarks: a scratch ModelDeck home with the sample model, and statistics."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import tempfile
from pathlib import Path

from backend.config import Settings
from backend.context import ModelDeck, open_modeldeck
from backend.training import train_sample


def scratch_deck(runtime: str) -> ModelDeck:
    """A ModelDeck over a fresh temporary home with sklearn_mnist:1 registered (the tutorial's
    LogisticRegression, which every benchmark so far measured)."""
    home = Path(tempfile.mkdtemp(prefix="modeldeck-bench-"))
    deck = open_modeldeck(Settings(home=home, runtime=runtime, auto_train=False))  # new deployments go there
    train_sample(deck.registry, "mnist", "logistic")
    return deck


SERVER_CPU = "0"  # every server under test (and its children) runs on this core ...
CLIENT_CPU = "1"  # ... and the load generator on this one, so they never take turns on one core


def pinned(command: list[str], cpu: str) -> list[str]:
    """`command` run under `taskset -c cpu` (children inherit the affinity)."""
    return ["taskset", "-c", cpu, *command]


def group_pids(pgid: int) -> list[int]:
    """The running processes (no zombies) of process group `pgid`, in pid order."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid and fields[0] not in ("Z", "X"):
            found.append(int(stat.parent.name))
    return sorted(found)


def rss(pids: list[int]) -> int:
    """The summed resident memory of `pids`, in bytes."""
    total = 0
    for pid in pids:
        try:
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
        except OSError:
            pass
    return total


def family(root: int) -> list[int]:
    """`root` and all its descendants (a sandboxed server's workers sit in namespaces of their own)."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
        except (OSError, IndexError, ValueError):
            continue
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo += children.get(pid, [])
    return found


def pin_group(pgid: int, cpu: str) -> None:
    """Pins every thread of every process in process group `pgid` to `cpu` (a server started elsewhere).

    Raises:
        RuntimeError: no process of that group was found.
    """
    found = group_pids(pgid)
    if not found:
        raise RuntimeError(f"no process in group {pgid} to pin")
    for pid in found:
        subprocess.run(["taskset", "-a", "-p", "-c", cpu, str(pid)], check=True, capture_output=True)


def require_wrk() -> None:
    """Raises SystemExit when wrk or taskset (the pinned load generator) is missing."""
    import shutil

    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("wrk or taskset is missing: apt-get install wrk util-linux (scripts/setup.sh installs wrk)")


def summary(values: list[float]) -> dict[str, float]:
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values)}


def fmt(stats: dict[str, float], unit: str = "s", digits: int = 2) -> str:
    return (f"{stats['median']:.{digits}f} {unit} (min {stats['min']:.{digits}f}, max {stats['max']:.{digits}f}, "
            f"n={stats['n']})")


def machine() -> str:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    try:
        engine = subprocess.run(["docker", "version", "-f", "{{.Server.Version}}"], capture_output=True, text=True,
                                timeout=10).stdout.strip()
    except (OSError, subprocess.TimeoutExpired):
        engine = "none"
    return (f"{platform.node()}: {os.cpu_count()} cores ({cpu}), "
            f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, "
            f"Python {platform.python_version()}, Docker engine {engine or 'none'}")


def userland_proxy_enabled() -> bool:
    """Whether the local engine forwards published ports through docker-proxy (its default), read from
    dockerd's command line and /etc/docker/daemon.json."""
    import json

    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        if args and args[0].endswith("dockerd"):
            for arg in args:
                if arg.startswith("--userland-proxy"):
                    return not arg.endswith("=false")
    try:
        return bool(json.loads(Path("/etc/docker/daemon.json").read_text()).get("userland-proxy", True))
    except (OSError, ValueError):
        return True


def bench_main(doc: str, run, report) -> None:
    """The command line of a benchmark: --rounds, then the machine and the report."""
    import argparse

    parser = argparse.ArgumentParser(description=doc)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    print(report(run(args.rounds)))


CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def streamlit_server(app: Path, env: dict[str, str], port: int, cwd: Path | None = None) -> subprocess.Popen:
    """`streamlit run app` headless on 127.0.0.1:port (no file watcher, in `cwd`: default this checkout),
    returned once it answers.

    Raises:
        RuntimeError: it did not answer within 60 s.
    """
    import sys
    import time
    import urllib.request

    root = cwd or Path(__file__).resolve().parent.parent
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
                             "--server.address", "127.0.0.1", "--server.port", str(port),
                             "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
                            env={**os.environ, **env}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=root)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=1)
            return proc
        except OSError:
            time.sleep(0.2)
    proc.terminate()
    raise RuntimeError(f"streamlit run {app} did not answer on port {port} within 60 s")
