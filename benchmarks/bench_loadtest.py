"""How close ModelDeck's built-in load generator gets to wrk, on the same local deployment in one run.

The deployment (one worker) is pinned to core 0; each load generator in turn runs on core 1 alone:
wrk with 1 thread and 8 kept-alive connections, ModelDeck's `run_load_test` with 8 clients (this
process pinned to core 1), both sending single-row JSON bodies; the sides alternate round by round.
Against a one-core scoring server both should be limited by the server; so the same is done against
the bare-ASGI floor (benchmarks/floor_app.py, ~10x faster than scoring), where the generators' own
ceilings show. Then a typical load test as a user runs it (`loadtest NAME`, 10 s, 8 clients, the CLI not
pinned, the server still on core 0) is timed end to end.

Run: .venv/bin/python -m benchmarks.bench_loadtest [--rounds 5] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backend.data.builtin import load_mnist_test
from backend.runtimes import DeployConfig
from backend.runtimes.probe import free_port
from backend.traffic.loadtest import request_bodies, run_load_test

from .bench_ab import spread
from .bench_requests import wrk_throughput
from .common import CLIENT_CPU, SERVER_CPU, machine, pin_group, require_wrk, scratch_deck
from .peers import FloorServer

NAME = "bench-loadtest"
CONNECTIONS = 8  # as wrk_throughput's


def ours_once(url: str, bodies: tuple[bytes, ...], seconds: int, everywhere: set[int]) -> float:
    """Requests per second of one ModelDeck load test, this process pinned to the client core."""
    os.sched_setaffinity(0, {int(CLIENT_CPU)})
    try:
        result = run_load_test(url, bodies, seconds=seconds, concurrency=CONNECTIONS)
    finally:
        os.sched_setaffinity(0, everywhere)
    if result.errors:
        raise SystemExit(f"the load test saw errors: {result.errors_by_kind}")
    return result.requests_per_second


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5, help="per side per round")
    args = parser.parse_args()
    require_wrk()
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="modeldeck-bench-loadtest-"))
    deck = scratch_deck("local")
    everywhere = os.sched_getaffinity(0)
    results: dict[str, tuple[list[float], list[float]]] = {}
    try:
        model = deck.registry.get("sklearn_mnist")
        deployment = deck.deployments.deploy_and_wait(model, NAME, DeployConfig(cpu_cores=1.0), runtime="local")
        uri = deployment.scoring_uri or ""
        pin_group(json.loads((deck.settings.local_deployments_dir / NAME / "process.json").read_text())["pid"],
                  SERVER_CPU)
        bodies = request_bodies(load_mnist_test(), seed=0)
        floor = FloorServer(free_port(), work / "floor.log")
        try:
            for target, url in (("scoring server", uri), ("floor", floor.url)):
                ours, theirs = [], []
                for round_no in range(args.rounds):
                    for side in ("modeldeck", "wrk") if round_no % 2 == 0 else ("wrk", "modeldeck"):
                        value = (wrk_throughput(url, bodies[0], work, args.seconds) if side == "wrk"
                                 else ours_once(url, bodies, args.seconds, everywhere))
                        (theirs if side == "wrk" else ours).append(value)
                        print(f"round {round_no + 1}, {target}: {side}: {value:.0f} req/s", flush=True)
                results[target] = (ours, theirs)
        finally:
            floor.close()
        env = {**os.environ, "MODELDECK_HOME": str(deck.settings.home), "PYTHONPATH": str(Path.cwd())}
        started = time.perf_counter()
        typical = subprocess.run([sys.executable, "-m", "backend", "loadtest", NAME, "--seconds", "10", "--json"],
                                 env=env, capture_output=True, text=True, check=True, timeout=120)
        wall = time.perf_counter() - started
        result_json = json.loads(typical.stdout)
    finally:
        try:
            deck.deployments.delete(NAME)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(deck.settings.home, ignore_errors=True)
    print(f"\nsingle-row JSON, {CONNECTIONS} connections, {args.seconds} s, {args.rounds} rounds, server on core "
          f"{SERVER_CPU}, load generator on core {CLIENT_CPU}; median (min–max):")
    for target, (ours, theirs) in results.items():
        ratios = [o / t for o, t in zip(ours, theirs, strict=True)]
        print(f"  {target}: wrk (1 thread) {spread(theirs)} req/s; ModelDeck load test {spread(ours)} req/s; "
              f"ModelDeck / wrk {statistics.median(ours) / statistics.median(theirs):.3f} (ratio of medians), "
              f"per round {spread(ratios, 3)}")
    print(f"typical `modeldeck loadtest {NAME} --seconds 10` (8 clients; the CLI not pinned, the server on core {SERVER_CPU}): {wall:.1f} s wall "
          f"(process start, deployment lookup, test set, 10 s of load, save), {result_json['requests_per_second']:.0f} "
          f"req/s, p50 {result_json['p50_ms']:.2f} ms, p99 {result_json['p99_ms']:.2f} ms, "
          f"{result_json['errors']} errors")


if __name__ == "__main__":
    main()
