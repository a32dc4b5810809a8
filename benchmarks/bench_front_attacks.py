"""The connection attacks of issue 21: 1,500 connections that send nothing, 1,500 sending their headers a byte a
second (slowloris), held against one deployment's port for 15 s; and, through the front, 4,200 idle connections
against a neighbour deployment of the same home (more than the whole front holds). Through the front for a
Docker deployment (1 core, 512 MiB), straight to the server's port for a local one. For each: the peak memory
of the server (the container's cgroup; the local server's processes) and of the front (HAProxy's processes),
and the p50/p99 of ordinary single-row requests, each on a new connection as a new client sends it (with
/health between them), during the attack. Numbers only, no assertions.

Run: .venv/bin/python -m benchmarks.bench_front_attacks [--rounds 1]   (BENCH_ONLY=slowloris: those scenarios only)
"""

from __future__ import annotations

import json
import os
import resource
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from backend.data.builtin import load_mnist_test
from backend.runtimes import DeployConfig
from backend.runtimes.docker import container_name

from . import attacks
from .bench_body_attacks import PeakMemory, peak_rss, percentiles
from .common import bench_main, family, group_pids, scratch_deck

NAME = "bench-front-attacks"
NEIGHBOUR = "bench-front-neighbour"
CONFIG = DeployConfig(cpu_cores=1, memory_gb=0.5)
HELD_SECONDS = 15.0


def front_pids(folder: Path) -> list[int]:
    """HAProxy's master and workers serving the front of `folder`."""
    try:
        return group_pids(os.getpgid(int((folder / "haproxy.pid").read_text())))
    except (OSError, ValueError):
        return []


def held_for(opened: Callable[[], attacks.Held], seconds: float = HELD_SECONDS) -> dict[str, int]:
    """Opens an attack's connections, holds them `seconds`, then says how many the other side had cut."""
    held = opened()
    try:
        time.sleep(seconds)
        return {"held": len(held.conns), "refused": held.refused, "cut": attacks.closed_by_peer(held)}
    finally:
        held.close()


def scenarios(uri: str, neighbour: str | None) -> dict[str, Callable[[], object]]:
    found: dict[str, Callable[[], object]] = {
        "no attack": lambda: time.sleep(8),
        "1500 idle connections": lambda: held_for(lambda: attacks.hold_idle(uri)),
        "1500 slowloris connections": lambda: held_for(lambda: attacks.hold_slowloris(uri, seconds=HELD_SECONDS)),
    }
    if neighbour is not None:
        found["4200 idle on a neighbour"] = lambda: held_for(
            lambda: attacks.open_held(neighbour, 4200, connect_timeout=0.3, give_up_after=3))
    only = os.environ.get("BENCH_ONLY", "")  # a part of scenario names: run just those (and "no attack")
    return {name: attack for name, attack in found.items() if not only or only in name or name == "no attack"}


def measure(uri: str, row: list[float], attack: Callable[[], object], server: Any, front: Path | None) -> dict[str, Any]:
    probe = attacks.Probe(uri, row, fresh=True)
    with server as memory, peak_rss(lambda: front_pids(front) if front else []) as front_memory:
        outcome = attacks.during(attack, probe)
    p50, p99 = percentiles(probe.latencies)
    return {"peak_mib": memory.peak / 2**20, "front_mib": front_memory.peak / 2**20, "p50_ms": p50, "p99_ms": p99,
            "requests": len(probe.statuses), "statuses": dict(Counter(probe.statuses)),
            "health": dict(Counter(probe.health)), "outcome": outcome}


def run(rounds: int = 1) -> dict[str, Any]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(hard, 10000)), hard))
    row = load_mnist_test().X[0].tolist()
    results: dict[str, dict[str, list[dict[str, Any]]]] = {}
    docker = scratch_deck("docker")
    model = docker.registry.get("sklearn_mnist", 1)
    try:
        uri = docker.deployments.deploy_and_wait(model, NAME, CONFIG, runtime="docker").scoring_uri
        neighbour = docker.deployments.deploy_and_wait(model, NEIGHBOUR, CONFIG, runtime="docker").scoring_uri
        engine = docker.runtimes.open("docker").client  # type: ignore[attr-defined]
        container = engine.containers.get(container_name(docker.home.id, NAME))
        front = docker.home.path / "front"
        for _ in range(rounds):
            for name, attack in scenarios(uri, neighbour).items():
                results.setdefault("docker, through the front", {}).setdefault(name, []).append(
                    measure(uri, row, attack, PeakMemory(container), front))
                time.sleep(2)
    finally:
        docker.deployments.delete(NAME)
        docker.deployments.delete(NEIGHBOUR)
    local = scratch_deck("local")
    try:
        uri = local.deployments.deploy_and_wait(local.registry.get("sklearn_mnist", 1), NAME, CONFIG,
                                                runtime="local").scoring_uri
        process = next(local.home.path.rglob(f"{NAME}/process.json"))
        root = int(json.loads(process.read_text())["pid"])
        for _ in range(rounds):
            for name, attack in scenarios(uri, None).items():
                results.setdefault("local, straight to its port", {}).setdefault(name, []).append(
                    measure(uri, row, attack, peak_rss(lambda: family(root)), None))
                time.sleep(2)
    finally:
        local.deployments.delete(NAME)
    return {"results": results, "load": os.getloadavg()}


def report(measured: dict[str, Any]) -> str:
    load = ", ".join(f"{value:.2f}" for value in measured["load"])
    lines = [f"1 core, 512 MiB; each ordinary request on a new connection; load average at the end {load}"]
    for target, found in measured["results"].items():
        lines += ["", target,
                  f"{'scenario':28} {'server MiB':>10} {'front MiB':>9} {'p50 ms':>8} {'p99 ms':>8} {'rows':>5}  answers"]
        for name, runs in found.items():
            for one in runs:
                lines.append(f"{name:28} {one['peak_mib']:10.0f} {one['front_mib']:9.0f} {one['p50_ms']:8.1f} "
                             f"{one['p99_ms']:8.1f} {one['requests']:5d}  rows {one['statuses']} "
                             f"health {one['health']} attack {one['outcome']}")
    return "\n".join(lines)


if __name__ == "__main__":
    bench_main(__doc__ or "", run, report)
