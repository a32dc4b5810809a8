"""Single-row requests: sequential latency (p50/p99) and throughput under 8 concurrent clients (wrk),
ModelDeck's container and local process against `mlflow models serve` on the same model, alternating.

Run: .venv/bin/python -m benchmarks.bench_requests [--rounds 5]
"""

from __future__ import annotations

import json
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from backend.datasets import load_mnist_test
from backend.runtimes import DeployConfig
from backend.runtimes.probe import free_port

from .common import bench_main, scratch_deck, userland_proxy_enabled
from .peers import MlflowServer, ensure_mlflow, mlflow_model_dir

SEQUENTIAL_PER_ROUND = 300
WRK_SECONDS = 5
WRK_CONNECTIONS = 8


def sequential_latencies(url: str, body: bytes, n: int) -> list[float]:
    session = requests.Session()
    headers = {"Content-Type": "application/json"}
    for _ in range(20):  # warm up the connection and the server
        session.post(url, data=body, headers=headers).raise_for_status()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = session.post(url, data=body, headers=headers)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return times


def wrk_throughput(url: str, body: bytes, workdir: Path) -> float:
    """Requests per second from wrk with 8 connections on 2 threads (non-2xx answers abort the run)."""
    body_file = workdir / f"body-{abs(hash(url))}.json"
    body_file.write_bytes(body)
    script = workdir / f"post-{abs(hash(url))}.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
        f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("non2xx %d\\n", summary.errors.status))\nend\n')
    out = subprocess.run(["wrk", "-t2", f"-c{WRK_CONNECTIONS}", f"-d{WRK_SECONDS}s", "-s", str(script), url],
                         capture_output=True, text=True, check=True).stdout
    if int(re.search(r"non2xx (\d+)", out).group(1)):
        raise RuntimeError(f"wrk saw non-2xx answers from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


def run(rounds: int = 5) -> dict:
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is missing: apt-get install wrk (scripts/setup.sh installs it)")
    row = load_mnist_test().X[0].tolist()
    docker_deck = scratch_deck("docker")
    model = docker_deck.registry.get("sklearn_mnist")
    local_deck = scratch_deck("local")
    local_model = local_deck.registry.get("sklearn_mnist")
    work = Path(tempfile.mkdtemp(prefix="modeldeck-bench-req-"))
    python = ensure_mlflow(model)
    pickle_path = docker_deck.registry.materialize(model, work / "model") / model.files[0].name
    mlflow_dir = mlflow_model_dir(python, pickle_path, work / "mlflow-model")
    one_core = DeployConfig(cpu_cores=1, memory_gb=1)
    mlflow = None
    try:
        container = docker_deck.deployments.deploy_and_wait(model, "bench-requests", one_core).scoring_uri
        local = local_deck.deployments.deploy_and_wait(local_model, "bench-requests", one_core).scoring_uri
        mlflow = MlflowServer(python, mlflow_dir, free_port(), work / "mlflow.log")
        route = "via docker-proxy" if userland_proxy_enabled() else "via iptables, no userland proxy"
        contestants = {
            f"ModelDeck container (Docker, 1 CPU, {route})": (container, {"data": [row]}),
            "ModelDeck local process": (local, {"data": [row]}),
            "mlflow models serve (local, 1 worker)": (mlflow.url, {"inputs": [row]}),
        }
        answers = {name: requests.post(url, json=payload, timeout=10).json() for name, (url, payload) in
                   contestants.items()}
        assert len({json.dumps(a.get("predictions", a) if isinstance(a, dict) else a) for a in answers.values()}) == 1, \
            answers
        latencies = {name: [] for name in contestants}
        throughput = {name: [] for name in contestants}
        for _ in range(rounds):
            for name, (url, payload) in contestants.items():
                body = json.dumps(payload).encode()
                latencies[name] += sequential_latencies(url, body, SEQUENTIAL_PER_ROUND)
                throughput[name].append(wrk_throughput(url, body, work))
    finally:
        if mlflow is not None:
            mlflow.close()
        for deck in (docker_deck, local_deck):
            if deck.deployments.list():
                deck.deployments.delete("bench-requests")
        shutil.rmtree(work, ignore_errors=True)
    return {"rounds": rounds, "results": {
        name: {"p50_ms": 1000 * statistics.median(latencies[name]), "p99_ms": 1000 * percentile(latencies[name], 99),
               "n": len(latencies[name]), "rps_median": statistics.median(throughput[name]),
               "rps_min": min(throughput[name]), "rps_max": max(throughput[name])} for name in contestants}}


def report(results: dict) -> str:
    rows = results["results"]
    mlflow = next(v for k, v in rows.items() if k.startswith("mlflow"))
    lines = ["### Single-row requests (one MNIST row, JSON)", "",
             f"Sequential: {SEQUENTIAL_PER_ROUND} requests per round on one keep-alive connection; throughput: "
             f"wrk, {WRK_CONNECTIONS} connections, {WRK_SECONDS} s per round; {results['rounds']} rounds, "
             "the servers alternating within each round.", "",
             "| server | latency p50 | latency p99 | throughput median (min–max) | throughput vs MLflow |",
             "|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['rps_median']:.0f} req/s "
                     f"({r['rps_min']:.0f}–{r['rps_max']:.0f}) | {r['rps_median'] / mlflow['rps_median']:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    bench_main(__doc__, run, report)


if __name__ == "__main__":
    main()
