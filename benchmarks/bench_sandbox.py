"""The local runtime's sandbox and single-row speed: one sandboxed and one unsandboxed (--trust-model)
deployment of the sample model, both behind the front, measured in alternation as bench_requests measures
(sequential latency on one keep-alive connection; wrk with 8 connections). Servers on core 0, clients on 1.

Run: .venv/bin/python -m benchmarks.bench_sandbox [--rounds 3]
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import tempfile
from pathlib import Path

from backend.data.builtin import load_mnist_test
from backend.runtimes import DeployConfig

from .bench_requests import SEQUENTIAL_PER_ROUND, percentile, sequential_latencies, wrk_run
from .common import CLIENT_CPU, SERVER_CPU, bench_main, pin_group, require_wrk, scratch_deck

SANDBOXED, TRUSTED = "bench-sandboxed", "bench-unsandboxed"


def run(rounds: int = 3) -> dict:
    require_wrk()
    deck = scratch_deck("local")
    model = deck.registry.get("sklearn_mnist", 1)
    body = json.dumps({"data": [load_mnist_test().X[0].tolist()]}).encode()
    work = Path(tempfile.mkdtemp(prefix="modeldeck-bench-sandbox-"))
    affinity, path = os.sched_getaffinity(0), os.environ["PATH"]
    uris: dict[str, str] = {}
    try:
        for name in (SANDBOXED, TRUSTED):
            if name == TRUSTED:
                os.environ["PATH"] = "/nonexistent"  # no bwrap found: the deployment runs unsandboxed
            deployment = deck.deployments.deploy_and_wait(model, name, DeployConfig(cpu_cores=1, trust_model=True))
            os.environ["PATH"] = path
            uris[name] = deployment.scoring_uri or ""
            print(f"{name}: {deployment.isolation}", flush=True)
            pin_group(json.loads((deck.settings.local_deployments_dir / name / "process.json").read_text())["pid"],
                      SERVER_CPU)
        os.sched_setaffinity(0, {int(CLIENT_CPU)})
        latencies: dict[str, list[float]] = {name: [] for name in uris}
        throughput: dict[str, list[float]] = {name: [] for name in uris}
        for _ in range(rounds):
            for name, uri in uris.items():
                latencies[name] += sequential_latencies(uri, body, SEQUENTIAL_PER_ROUND)
                throughput[name].append(wrk_run(uri, body, work)[0])
    finally:
        os.environ["PATH"] = path
        os.sched_setaffinity(0, affinity)
        for name in uris:
            deck.deployments.delete(name)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(deck.settings.home, ignore_errors=True)
    return {"rounds": rounds, "load": Path("/proc/loadavg").read_text().split()[:3], "results": {
        name: {"p50_ms": 1000 * statistics.median(latencies[name]), "p99_ms": 1000 * percentile(latencies[name], 99),
               "rps": throughput[name]} for name in uris}}


def report(results: dict) -> str:
    rows = results["results"]
    lines = [f"{results['rounds']} rounds; load average at the end {' '.join(results['load'])}",
             "| server | latency p50 | latency p99 | wrk req/s median (all) |", "|---|---|---|---|"]
    for name, row in rows.items():
        lines.append(f"| {name} | {row['p50_ms']:.2f} ms | {row['p99_ms']:.2f} ms | "
                     f"{statistics.median(row['rps']):.0f} ({', '.join(f'{r:.0f}' for r in row['rps'])}) |")
    ratio = statistics.median(rows[SANDBOXED]["rps"]) / statistics.median(rows[TRUSTED]["rps"])
    lines.append(f"sandboxed / unsandboxed throughput: {ratio:.2f}; p50 latency: "
                 f"{rows[SANDBOXED]['p50_ms'] / rows[TRUSTED]['p50_ms']:.2f}")
    return "\n".join(lines)


if __name__ == "__main__":
    bench_main(__doc__, run, report)
