"""Single-row requests: sequential latency (p50/p99) and throughput under 8 concurrent clients (wrk),
ModelDeck's local process (sandboxed, on the port its runtime bound for it) and container (through the
home's front, HAProxy), the same server started by hand on a TCP port (no sandbox, no runtime),
`mlflow models serve`, Seldon's MLServer and a bare-ASGI floor on the same model file. Every server (and
the front) runs on CPU core 0, the clients on core 1; the servers alternate within each round.

Run: .venv/bin/python -m benchmarks.bench_requests [--rounds 5]
"""

from __future__ import annotations

import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import requests

from backend.data.builtin import load_mnist_test
from backend.deployments import DEFAULT_SCRIPT
from backend.runtimes import DeployConfig
from backend.runtimes.base import serving_environment
from backend.runtimes.docker import container_name
from backend.runtimes.probe import free_port

from . import peers
from .common import CLIENT_CPU, SERVER_CPU, bench_main, pin_group, pinned, scratch_deck

SEQUENTIAL_PER_ROUND = 300
WRK_SECONDS = 5
WRK_CONNECTIONS = 8
REQUEST_TIMEOUT = 10.0
LOCAL, DOCKER = "bench-req-local", "bench-req-docker"


@dataclass(frozen=True)
class Contestant:
    """One server: what the table calls it, its kind (modeldeck, mlflow, mlserver, floor), where to POST
    what, and how to read labels from its answer (None: a constant answer, not checked)."""

    name: str
    kind: str
    url: str
    payload: dict[str, Any]
    labels: Callable[[Any], list] | None


def sequential_latencies(url: str, body: bytes, n: int) -> list[float]:
    """Seconds per request for `n` requests, one after another on one keep-alive connection."""
    session = requests.Session()
    headers = {"Content-Type": "application/json"}
    for _ in range(20):  # warm up the connection and the server
        session.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT).raise_for_status()
    times = []
    for _ in range(n):
        started = time.perf_counter()
        response = session.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT)
        times.append(time.perf_counter() - started)
        response.raise_for_status()
    return times


def wrk_run(url: str, body: bytes, workdir: Path, seconds: int = WRK_SECONDS,
            headers: dict[str, str] | None = None) -> tuple[float, float]:
    """(requests per second, p99 latency in ms) from wrk (one thread on CLIENT_CPU, 8 connections);
    non-2xx answers abort the run."""
    extra = "".join(f'wrk.headers["{name}"] = "{value}"\n' for name, value in (headers or {}).items())
    body_file = workdir / f"body-{abs(hash(url))}.json"
    body_file.write_bytes(body)
    script = workdir / f"post-{abs(hash(url))}.lua"
    script.write_text(
        'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n' + extra
        + f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
        "done = function(summary, latency, requests)\n"
        '  io.write(string.format("non2xx %d\\n", summary.errors.status))\n'
        '  io.write(string.format("p99us %d\\n", latency:percentile(99)))\nend\n')
    out = subprocess.run(pinned(["wrk", "-t1", f"-c{WRK_CONNECTIONS}", f"-d{seconds}s", "-s", str(script), url],
                                CLIENT_CPU), capture_output=True, text=True, check=True, timeout=seconds + 60).stdout
    if int(re.search(r"non2xx (\d+)", out).group(1)):
        raise RuntimeError(f"wrk saw non-2xx answers from {url}:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1)), int(re.search(r"p99us (\d+)", out).group(1)) / 1000


def wrk_throughput(url: str, body: bytes, workdir: Path, seconds: int = WRK_SECONDS,
                   headers: dict[str, str] | None = None) -> float:
    """Requests per second from wrk (see wrk_run)."""
    return wrk_run(url, body, workdir, seconds, headers)[0]


MODEL_WORK = """
import os, statistics, sys, time
import joblib, orjson
import numpy as np
from backend.serving.script import load_script
pickle_path, body_path, script_path = sys.argv[1:4]
body = open(body_path, "rb").read()
model = joblib.load(pickle_path)
os.environ["AZUREML_MODEL_DIR"] = os.path.dirname(pickle_path)
script = load_script(script_path)
script.init()
def by_default():
    model.predict(np.asarray(orjson.loads(body)["data"], dtype=np.float32))
def by_script():
    script.run(body)
def per_call(once):
    for _ in range(300):
        once()
    per_row = []
    for _ in range(15):
        started = time.perf_counter()
        for _ in range(200):
            once()
        per_row.append((time.perf_counter() - started) / 200)
    return statistics.median(per_row)
print(per_call(by_default), per_call(by_script))
"""


def model_work_seconds(pickle_path: Path, body: bytes, workdir: Path) -> tuple[float, float]:
    """The model's own work for one row on SERVER_CPU, the median of 15 batches of 200, two ways: as issue
    13 defines the floor (orjson parse, numpy conversion, `predict` with scikit-learn's default checks), and
    as ModelDeck's built-in script does it in its `run(body)` (the parse, its checks and its predict)."""
    body_file = workdir / "model-work-body.json"
    body_file.write_bytes(body)
    out = subprocess.run(pinned([sys.executable, "-c", MODEL_WORK, str(pickle_path), str(body_file),
                                 str(DEFAULT_SCRIPT)], SERVER_CPU),
                         capture_output=True, text=True, check=True, timeout=300, cwd=peers.REPO).stdout
    by_default, by_script = out.strip().splitlines()[-1].split()
    return float(by_default), float(by_script)


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q / 100 * (len(ordered) - 1))))]


class BareServer(peers.PinnedServer):
    """ModelDeck's scoring server on a TCP port of its own, started by hand: no runtime, sandbox or front."""

    def __init__(self, model_dir: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}/score"
        env = {**os.environ, **serving_environment(1, str(model_dir)), "PYTHONPATH": str(peers.REPO / "backend")}
        super().__init__("the bare scoring server", [sys.executable, "-m", "serving", "--script", str(DEFAULT_SCRIPT),
                                                     "--model-dir", str(model_dir), "--port", str(port)],
                         self.url.replace("/score", "/ready"), log, env=env)


def modeldeck_labels(answer: Any) -> list:
    return list(answer["predictions"] if isinstance(answer, dict) else answer)


def run(rounds: int = 5) -> dict:
    if shutil.which("wrk") is None or shutil.which("taskset") is None:
        raise SystemExit("wrk or taskset is missing: apt-get install wrk util-linux (scripts/setup.sh installs wrk)")
    if len(os.sched_getaffinity(0)) < 2:
        raise SystemExit("needs 2 CPU cores: the servers run on core 0, the load generator on core 1")
    row = load_mnist_test().X[0].tolist()
    deck = scratch_deck("docker")
    model = deck.registry.get("sklearn_mnist", 1)
    work = Path(tempfile.mkdtemp(prefix="modeldeck-bench-req-"))
    mlflow_python, mlserver_python = peers.ensure_mlflow(model), peers.ensure_mlserver(model)
    pickle_path = deck.registry.materialize(model, work / "model") / model.files[0].name
    mlflow_dir = peers.mlflow_model_dir(mlflow_python, pickle_path, work / "mlflow-model")
    one_core = DeployConfig(cpu_cores=1, memory_gb=1)
    client_affinity = os.sched_getaffinity(0)
    servers: list[peers.PinnedServer] = []
    deployed: list[tuple[str, str]] = []
    try:
        local = deck.deployments.deploy_and_wait(model, LOCAL, one_core, runtime="local")
        deployed.append((LOCAL, "local"))
        pin_group(json.loads((deck.settings.local_deployments_dir / LOCAL / "process.json").read_text())["pid"],
                  SERVER_CPU)
        container = deck.deployments.deploy_and_wait(model, DOCKER, one_core, runtime="docker")
        deployed.append((DOCKER, "docker"))
        engine = deck.runtimes.open("docker").client  # type: ignore[attr-defined]
        engine.containers.get(container_name(deck.home.id, DOCKER)).update(cpuset_cpus=SERVER_CPU)
        pin_group(os.getpgid(int((deck.home.path / "front" / "haproxy.pid").read_text())), SERVER_CPU)  # the front
        servers.append(bare := BareServer(pickle_path.parent, free_port(), work / "bare.log"))
        servers.append(mlflow := peers.MlflowServer(mlflow_python, mlflow_dir, free_port(), work / "mlflow.log"))
        servers.append(mlserver := peers.MlserverServer(mlserver_python, pickle_path, work / "mlserver",
                                                        free_port(), free_port(), work / "mlserver.log"))
        servers.append(floor := peers.FloorServer(free_port(), work / "floor.log"))
        contestants = [
            Contestant("ModelDeck local process (1 worker, sandboxed, on its own port)", "modeldeck", local.scoring_uri,
                       {"data": [row]}, modeldeck_labels),
            Contestant(f"ModelDeck container (Docker, 1 CPU, cpuset {SERVER_CPU}, no network, through the front)",
                       "modeldeck", container.scoring_uri, {"data": [row]}, modeldeck_labels),
            Contestant("ModelDeck's server started by hand (1 worker, TCP, no sandbox)",
                       "bare", bare.url, {"data": [row]}, modeldeck_labels),
            Contestant(f"mlflow models serve {peers.MLFLOW_VERSION} (1 worker)", "mlflow", mlflow.url,
                       {"inputs": [row]}, modeldeck_labels),
            Contestant(f"MLServer {peers.MLSERVER_VERSION} + mlserver-sklearn (V2 JSON tensor, parallel_workers 0)",
                       "mlserver", mlserver.url, peers.v2_request(row), peers.v2_labels),
            Contestant("floor: bare ASGI app on uvicorn + httptools + uvloop (reads the body, constant answer)",
                       "floor", floor.url, {"data": [row]}, None),
        ]
        os.sched_setaffinity(0, {int(CLIENT_CPU)})  # the sequential client runs here, beside wrk
        answers = {c.name: c.labels(requests.post(c.url, json=c.payload, timeout=REQUEST_TIMEOUT).json())
                   for c in contestants if c.labels is not None}
        if len({json.dumps(labels) for labels in answers.values()}) != 1:
            raise RuntimeError(f"the servers disagree on the label of the same row: {answers}")
        label = next(iter(answers.values()))
        latencies: dict[str, list[float]] = {c.name: [] for c in contestants}
        throughput: dict[str, list[float]] = {c.name: [] for c in contestants}
        loaded_p99: dict[str, list[float]] = {c.name: [] for c in contestants}
        model_work, script_work = model_work_seconds(pickle_path, json.dumps({"data": [row]}).encode(), work)
        for _ in range(rounds):
            for c in contestants:
                body = json.dumps(c.payload).encode()
                latencies[c.name] += sequential_latencies(c.url, body, SEQUENTIAL_PER_ROUND)
                rps, p99 = wrk_run(c.url, body, work)
                throughput[c.name].append(rps)
                loaded_p99[c.name].append(p99)
    finally:
        os.sched_setaffinity(0, client_affinity)
        for peer in servers:
            peer.close()
        for name, runtime in deployed:
            try:
                deck.deployments.delete(name, runtime=runtime)
            except Exception as e:  # keep cleaning up; say what is left behind
                print(f"could not delete deployment {name} ({runtime}): {e}", flush=True)
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(deck.settings.home, ignore_errors=True)
    return {"rounds": rounds, "label": label, "model_work_s": model_work, "script_work_s": script_work, "results": {
        c.name: {"kind": c.kind, "p50_ms": 1000 * statistics.median(latencies[c.name]),
                 "p99_ms": 1000 * percentile(latencies[c.name], 99), "n": len(latencies[c.name]),
                 "loaded_p99_ms": statistics.median(loaded_p99[c.name]),
                 "rps_median": statistics.median(throughput[c.name]), "rps_min": min(throughput[c.name]),
                 "rps_max": max(throughput[c.name])} for c in contestants}}


def report(results: dict) -> str:
    rows = results["results"]
    base = {kind: next(r["rps_median"] for r in rows.values() if r["kind"] == kind)
            for kind in ("mlflow", "mlserver", "floor")}
    lines = ["### Single-row requests (one MNIST row, JSON)", "",
             f"Sequential: {SEQUENTIAL_PER_ROUND} requests per round on one keep-alive connection; throughput: "
             f"wrk (1 thread), {WRK_CONNECTIONS} connections, {WRK_SECONDS} s per round; {results['rounds']} rounds, "
             "the servers alternating within each round. Every server process (and its children) runs on CPU "
             f"core {SERVER_CPU}, the clients on core {CLIENT_CPU}. Each server answers the same model file; "
             f"all agree on the row's label ({results['label']}). MLflow and MLServer run in their own "
             "virtualenvs with the model's library versions; MLServer gets the Open Inference Protocol's JSON "
             "tensor, MLflow `{\"inputs\": [row]}`, ModelDeck `{\"data\": [row]}`. The container's cpuset is "
             "set with `docker update` once it is healthy (ModelDeck's create path sets a CPU quota, not a "
             "cpuset); the front (HAProxy, one thread) is pinned to the servers' core too. MLServer runs as shipped otherwise: its uvicorn parses HTTP with h11 (mlserver does not "
             "install httptools); it logs each request, as ModelDeck and MLflow do. The floor logs nothing.", "",
             "| server | latency p50 | latency p99 | p99 under 8 clients (wrk) | throughput median (min–max) "
             "| vs MLflow | vs MLServer | of the floor | of the combined floor | of the strict floor |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    work, script_work = results["model_work_s"], results["script_work_s"]
    combined = 1 / (1 / base["floor"] + work)  # the framework's floor and the model's own work, one after the other
    strict = 1 / (1 / base["floor"] + script_work)  # the same with what ModelDeck's own script does per row
    for name, r in rows.items():
        lines.append(f"| {name} | {r['p50_ms']:.2f} ms | {r['p99_ms']:.2f} ms | {r['loaded_p99_ms']:.2f} ms "
                     f"| {r['rps_median']:.0f} req/s ({r['rps_min']:.0f}–{r['rps_max']:.0f}) "
                     f"| {r['rps_median'] / base['mlflow']:.2f}x | {r['rps_median'] / base['mlserver']:.2f}x "
                     f"| {r['rps_median'] / base['floor']:.0%} | {r['rps_median'] / combined:.0%} "
                     f"| {r['rps_median'] / strict:.0%} |")
    lines += ["", f"The model's own work per row on the server core (orjson parse, numpy conversion and `predict` with "
              f"scikit-learn's default checks, median of 15 x 200): {work * 1e6:.0f} µs. The combined floor, the "
              f"bare-ASGI floor and that work one after the other: {combined:,.0f} req/s. The strict floor puts "
              f"ModelDeck's built-in script's own `run(body)` in place of that work (its parse, checks and direct "
              f"predict of linear classifiers): {script_work * 1e6:.0f} µs per row, {strict:,.0f} req/s."]
    return "\n".join(lines)


def main() -> None:
    bench_main(__doc__, run, report)


if __name__ == "__main__":
    main()
