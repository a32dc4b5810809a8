"""An endpoint's cost per request, and its switch under load (issue 25).

1. Cost: single-row requests to sklearn_mnist:1 on the local runtime, straight to the deployment and through an
   endpoint in front of it (nginx), alternating within each round: sequential latency (one client, p50) and
   throughput under 8 connections (wrk). The server and the proxy share core 0 (the proxy's work comes out of the
   server's core: the honest case on a 2-core machine), the client runs on core 1; MODELDECK_BENCH_PROXY_CPU=1
   puts the proxy on the client's core instead.
2. Switch: wrk through the endpoint (8 connections) while the split changes 10 times between two deployments and a
   third replaces the first; every answer counted: non-2xx and socket errors must be 0.

Run: .venv/bin/python -m benchmarks.bench_endpoint [--rounds 5]
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import orjson

from backend.data.builtin import load_mnist_test
from backend.services import endpoints, managing

from .bench_requests import sequential_latencies, wrk_run
from .common import CLIENT_CPU, SERVER_CPU, bench_main, pin_group, pinned, require_wrk, scratch_deck

SEQUENTIAL = 300
SWITCH_SECONDS = 20


PROXY_CPU = os.environ.get("MODELDECK_BENCH_PROXY_CPU", SERVER_CPU)  # the client's core: "1"


def _pin_proxy(deck) -> None:  # type: ignore[no-untyped-def]
    from backend.routing.nginx import Proxy

    pid = Proxy(deck.home.path / "endpoints").pid()
    assert pid is not None
    pin_group(pid, PROXY_CPU)


def run(rounds: int) -> dict[str, object]:
    require_wrk()
    deck = scratch_deck("local")
    from backend.training import train_sample

    train_sample(deck.registry, "mnist", "svc")
    body = orjson.dumps({"data": load_mnist_test().X[:1].tolist()})
    made = []
    try:
        for version, name in ((1, "bench-one"), (2, "bench-two"), (1, "bench-three")):
            deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", version), name,
                                                          runtime="local", timeout=300)
            made.append(name)
            pin_group(_pgid(deck, name), SERVER_CPU)
        direct = deck.deployments.get("bench-one").scoring_uri or ""
        via = endpoints.create_endpoint(deck, "bench", "bench-one").scoring_uri
        _pin_proxy(deck)
        results: dict[str, list[float]] = {k: [] for k in ("direct_p50", "endpoint_p50", "direct_rps", "endpoint_rps")}
        with tempfile.TemporaryDirectory() as scratch:
            for _ in range(rounds):
                for label, url in (("direct", direct), ("endpoint", via)):
                    results[f"{label}_p50"].append(statistics.median(sequential_latencies(url, body, SEQUENTIAL)))
                    results[f"{label}_rps"].append(wrk_run(url, body, Path(scratch))[0])
            switch = _switch(deck, via, body, Path(scratch))
        return {"results": results, "switch": switch}
    finally:
        for view in endpoints.list_endpoints(deck):
            endpoints.delete_endpoint(deck, view.record.name)
        for name in made:
            if name in {d.name for d in deck.deployments.list()}:
                deck.deployments.delete(name)


def _pgid(deck, name: str) -> int:  # type: ignore[no-untyped-def]
    """The process group of a local deployment's server (its pid leads it)."""
    return int(json.loads((deck.settings.local_deployments_dir / name / "process.json").read_text())["pid"])


def _switch(deck, url: str, body: bytes, scratch: Path) -> dict[str, object]:  # type: ignore[no-untyped-def]
    """wrk through the endpoint while the split changes 10 times and bench-three replaces bench-one."""
    body_file, script = scratch / "switch.json", scratch / "switch.lua"
    body_file.write_bytes(body)
    script.write_text('wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\n'
                      f'local f = io.open("{body_file}", "rb")\nwrk.body = f:read("*a")\nf:close()\n'
                      "done = function(summary, latency, requests)\n"
                      '  io.write(string.format("requests %d\\nnon2xx %d\\nconnect %d\\nread %d\\nwrite %d\\n'
                      'timeout %d\\n", summary.requests, summary.errors.status, summary.errors.connect, '
                      "summary.errors.read, summary.errors.write, summary.errors.timeout))\nend\n")
    changes: list[float] = []

    def change() -> None:
        time.sleep(2)
        for k in range(10):
            started = time.perf_counter()
            endpoints.set_traffic(deck, "bench", {"bench-one": 100 - 10 * k, "bench-two": 10 * k})
            changes.append(time.perf_counter() - started)
            time.sleep(0.5)
        endpoints.set_traffic(deck, "bench", {"bench-one": 0, "bench-two": 50, "bench-three": 50})
        managing.delete(deck, "bench-one")

    changer = threading.Thread(target=change)
    changer.start()
    out = subprocess.run(pinned(["wrk", "-t1", "-c8", f"-d{SWITCH_SECONDS}s", "-s", str(script), url], CLIENT_CPU),
                         capture_output=True, text=True, check=True, timeout=SWITCH_SECONDS + 60).stdout
    changer.join(timeout=120)
    counts = {k: int(v) for k, v in re.findall(r"^(requests|non2xx|connect|read|write|timeout) (\d+)$", out, re.M)}
    return {**counts, "changes": len(changes) + 1, "reload_s_median": statistics.median(changes)}


def report(found: dict[str, object]) -> str:
    results = found["results"]
    switch = found["switch"]
    assert isinstance(results, dict) and isinstance(switch, dict)
    med = {k: statistics.median(v) for k, v in results.items()}
    lines = [f"(proxy on core {PROXY_CPU}, server on core {SERVER_CPU}, client on core {CLIENT_CPU})", "",
             f"| path | sequential p50, ms (median of {len(results['direct_p50'])} rounds) | wrk 8 connections, req/s |",
             "|---|---|---|",
             f"| straight to the deployment | {med['direct_p50'] * 1000:.2f} | {med['direct_rps']:.0f} |",
             f"| through the endpoint (nginx) | {med['endpoint_p50'] * 1000:.2f} | {med['endpoint_rps']:.0f} |",
             f"| ratio | {med['endpoint_p50'] / med['direct_p50']:.2f}x the latency | "
             f"{med['endpoint_rps'] / med['direct_rps']:.2f}x the throughput |",
             "",
             f"Switch under load: {switch['requests']:,} requests in {SWITCH_SECONDS} s through the endpoint while the "
             f"split changed {switch['changes']} times (median {switch['reload_s_median'] * 1000:.0f} ms a change, "
             "reload included) and bench-three replaced bench-one: "
             f"{switch['non2xx']} non-2xx answers, socket errors: {switch['connect']} connect, {switch['read']} read, "
             f"{switch['write']} write, {switch['timeout']} timeout."]
    return "\n".join(lines)


if __name__ == "__main__":
    bench_main(__doc__, run, report)
