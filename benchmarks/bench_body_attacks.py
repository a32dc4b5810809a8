"""The body attacks of issue 21 against a real Docker deployment (through the front) and a local one (straight to
its port), each 1 core, 512 MiB, body limit 128 MiB:
64 MiB of `0,` (to /score and to V2 infer), nine 100 MiB bodies held unfinished, 256 connections trickling
their bodies. For each: the peak memory (the container's cgroup, the local server's processes; polled every
20 ms), the attack's answers, whether the worker survived, and the p50/p99 of ordinary single-row requests
(with /health between them) during the attack against the same without one. Numbers only, no assertions.

Run: .venv/bin/python -m benchmarks.bench_body_attacks [--rounds 1]
"""

from __future__ import annotations

import json
import os
import statistics
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import requests

from backend.data.builtin import load_mnist_test
from backend.runtimes import DeployConfig
from backend.runtimes.docker import container_name

from . import attacks
from .common import bench_main, family, rss, scratch_deck

NAME = "bench-body-attacks"
CONFIG = DeployConfig(cpu_cores=1, memory_gb=0.5, max_body_mb=128)
QUIET_SECONDS = 10.0


def cgroup_usage_file(container_id: str) -> Path | None:
    """The file holding the container's memory use: cgroup v1 memory.usage_in_bytes or v2 memory.current."""
    for pattern in (f"memory/docker/{container_id}/memory.usage_in_bytes",
                    f"memory/system.slice/docker-{container_id}.scope/memory.usage_in_bytes",
                    f"system.slice/docker-{container_id}.scope/memory.current", f"docker/{container_id}/memory.current"):
        path = Path("/sys/fs/cgroup") / pattern
        if path.exists():
            return path
    return None


class PeakMemory:
    """The highest value of a cgroup's memory use, polled every 20 ms in a thread (docker stats
    otherwise, about once a second); or of what `read` returns, when given instead of a container."""

    def __init__(self, container: Any = None, read: Callable[[], int] | None = None) -> None:
        self.container, self.read = container, read
        self.path = cgroup_usage_file(container.id) if container is not None else None
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _read(self) -> int:
        if self.read is not None:
            return self.read()
        if self.path is not None:
            try:
                return int(self.path.read_text())
            except (OSError, ValueError):
                return 0
        return int(self.container.stats(stream=False)["memory_stats"].get("usage", 0))

    def _poll(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self._read())
            self._stop.wait(0.02)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def peak_rss(pids: Callable[[], list[int]]) -> PeakMemory:
    """The highest summed RSS of the processes `pids()` names, polled every 20 ms."""
    return PeakMemory(read=lambda: rss(pids()))


def worker_pid(uri: str) -> int:
    return int(requests.get(uri.rsplit("/", 1)[0] + "/info", timeout=10).json()["worker_pid"])


def percentiles(latencies: list[float]) -> tuple[float, float]:
    if len(latencies) < 2:
        return (latencies[0] if latencies else float("nan"),) * 2  # type: ignore[return-value]
    cuts = statistics.quantiles(latencies, n=100, method="inclusive")  # never beyond the slowest
    return cuts[49] * 1000, cuts[98] * 1000


def measure(uri: str, row: list[float], attack: Callable[[], object], container: Any = None,
            server_root: int = 0) -> dict[str, Any]:
    """One attack against a container (its cgroup's memory) or a local server (its processes' summed RSS)."""
    pid = worker_pid(uri)
    probe = attacks.Probe(uri, row)
    with PeakMemory(container) if container is not None else peak_rss(lambda: family(server_root)) as memory:
        outcome = attacks.during(attack, probe)
    if container is not None:
        container.reload()
    p50, p99 = percentiles(probe.latencies)
    return {"peak_mib": memory.peak / 2**20, "p50_ms": p50, "p99_ms": p99, "requests": len(probe.statuses),
            "slowest_ms": [round(t * 1000) for t in sorted(probe.latencies)[-3:]],
            "statuses": dict(Counter(probe.statuses)), "health": dict(Counter(probe.health)), "outcome": outcome,
            "worker_survived": worker_pid(uri) == pid,
            "restarts": container.attrs["RestartCount"] if container is not None else 0,
            "oom_killed": container.attrs["State"]["OOMKilled"] if container is not None else False}


def scenarios(uri: str) -> dict[str, Callable[[], object]]:
    """The attacks on the deployment at `uri` (and "no attack"), or those BENCH_ONLY names a part of."""
    v2_uri = uri.rsplit("/", 1)[0] + "/v2/models/sklearn_mnist/infer"

    def unfinished() -> dict[str, int]:
        held = attacks.hold_unfinished(uri)
        try:
            return dict(Counter(held.statuses))
        finally:
            held.close()

    def slow() -> dict[str, int]:
        held = attacks.hold_slow(uri, seconds=20)
        try:
            held.threads[0].join()
            return dict(Counter(held.statuses))
        finally:
            held.close()

    found: dict[str, Callable[[], object]] = {
        "no attack": lambda: time.sleep(QUIET_SECONDS),
        "5 x 64 MiB of `0,` to /score": lambda: dict(Counter(attacks.send_zeros(uri) for _ in range(5))),
        "5 x 64 MiB of `0,` to V2 infer": lambda: dict(Counter(attacks.send_zeros(uri, v2_uri) for _ in range(5))),
        "9 x 100 MiB unfinished": unfinished,
        "256 slow connections (20 s)": slow,
    }
    only = os.environ.get("BENCH_ONLY", "")  # a part of scenario names: run just those (and "no attack")
    return {name: attack for name, attack in found.items() if not only or only in name or name == "no attack"}


def run(rounds: int = 1) -> dict[str, Any]:
    row = load_mnist_test().X[0].tolist()
    attacks.zeros_body(), attacks.zeros_body(v2=True)  # built before any probe runs
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    budgets: dict[str, float] = {}
    for runtime in ("docker", "local"):
        deck = scratch_deck(runtime)
        target = "Docker, through the front" if runtime == "docker" else "local, straight to its port"
        try:
            uri = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), NAME, CONFIG,
                                                   target=runtime).scoring_uri
            container, root = None, 0
            if runtime == "docker":
                engine = deck.runtimes.open("docker").client  # type: ignore[attr-defined]
                container = engine.containers.get(container_name(deck.home.id, NAME))
            else:
                root = int(json.loads((deck.settings.local_deployments_dir / NAME / "process.json").read_text())["pid"])
            budgets[target] = deck.client.info(uri).get("body_memory_bytes", 0) / 2**20
            for _ in range(rounds):
                for name, attack in scenarios(uri).items():
                    results.setdefault(target, {}).setdefault(name, []).append(
                        measure(uri, row, attack, container, root))
                    time.sleep(2)
        finally:
            deck.deployments.delete(NAME)
    return {"results": results, "budgets_mib": budgets, "load": os.getloadavg()}


def report(measured: dict[str, Any]) -> str:
    load = ", ".join(f"{value:.2f}" for value in measured["load"])
    lines = [f"1 core, 512 MiB, body limit 128 MiB; load average at the end {load}"]
    for target, found in measured["results"].items():
        lines += ["", f"{target} (the worker's body budget {measured['budgets_mib'][target]:.0f} MiB; peak: "
                  + ("the container's cgroup)" if target.startswith("Docker") else "the server's processes' RSS)"),
                  f"{'scenario':32} {'peak MiB':>9} {'p50 ms':>8} {'p99 ms':>8} {'rows':>6}  survived  answers"]
        for name, runs in found.items():
            for one in runs:
                survived = "yes" if one["worker_survived"] and not one["oom_killed"] else "NO"
                lines.append(f"{name:32} {one['peak_mib']:9.0f} {one['p50_ms']:8.1f} {one['p99_ms']:8.1f} "
                             f"{one['requests']:6d}  {survived:8}  rows {one['statuses']} health {one['health']} "
                             f"slowest {one['slowest_ms']} ms attack {one['outcome']}")
    return "\n".join(lines)


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report)
