"""The front's cost: one MNIST row through ModelDeck's front (HAProxy) to a scoring server on a unix socket,
against the same server reached directly on TCP (how deployments were served before the front) and
through nginx with the equivalent configuration (the other proxy Debian ships; ModelDeck's first front).
Each server and proxy runs on core 0, wrk on core 1, the three routes alternating within each round. Also
prints each proxy's CPU time per request, read from /proc (less sensitive to a noisy machine than req/s).

Run: .venv/bin/python -m benchmarks.bench_front [--rounds 5]
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from backend.data.builtin import load_mnist_test
from backend.deployments import DEFAULT_SCRIPT
from backend.runtimes.front import Front, Route

from . import peers
from .bench_requests import BareServer, wrk_run
from .common import SERVER_CPU, bench_main, free_port, group_pids, pin_group, require_wrk, scratch_deck

NGINX_CONF = """{user}daemon on;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/body;
    proxy_temp_path {folder}/proxy;
    client_body_buffer_size 64k;
    client_body_timeout 60s;
    keepalive_requests 100000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    upstream server {{ server unix:{socket}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{port};
        client_max_body_size 64m;
        add_header X-ModelDeck-Deployment bench always;
        location / {{ proxy_pass http://server; }}
    }}
}}
"""


class UdsServer(peers.PinnedServer):
    """The scoring server on a unix socket, as a deployment's is (ready once the socket answers /ready)."""

    def __init__(self, model_dir: Path, socket: Path, log: Path) -> None:
        from backend.runtimes.base import serving_environment

        env = {**os.environ, **serving_environment(1, str(model_dir)), "PYTHONPATH": str(peers.REPO / "backend")}
        self.proc = subprocess.Popen(
            ["taskset", "-c", SERVER_CPU, sys.executable, "-m", "serving", "--script", str(DEFAULT_SCRIPT),
             "--model-dir", str(model_dir), "--uds", str(socket)],
            env=env, stdin=subprocess.DEVNULL, stdout=open(log, "wb"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.monotonic() + 120
        while not socket.exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        self._log = open(log, "ab")


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of processes `pids` (all their threads), in seconds."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for pid in pids:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])
    return total / tick


def run(rounds: int = 5) -> dict:
    require_wrk()
    nginx = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)
    if nginx is None:
        raise SystemExit("nginx is missing (the compared proxy): apt-get install nginx-light")
    deck = scratch_deck("local")
    model = deck.registry.get("sklearn_mnist", 1)
    work = Path(tempfile.mkdtemp(prefix="modeldeck-bench-front-"))
    model_dir = deck.registry.materialize(model, work / "model")
    body = json.dumps({"data": [load_mnist_test().X[0].tolist()]}).encode()
    socket_path = work / "run" / "server.sock"
    socket_path.parent.mkdir()
    front = Front(work / "front")
    servers: list[peers.PinnedServer] = []
    nginx_folder = work / "nginx"
    nginx_folder.mkdir()
    try:
        servers.append(UdsServer(model_dir, socket_path, work / "uds.log"))
        servers.append(bare := BareServer(model_dir, free_port(), work / "bare.log"))
        route = Route(key="local-bench", deployment="bench", port=free_port(), socket=socket_path, max_body_mb=64)
        front.publish(route)
        haproxy_group = os.getpgid(int((front.folder / "haproxy.pid").read_text()))
        pin_group(haproxy_group, SERVER_CPU)
        nginx_port = free_port()
        user = "user root;\n" if os.geteuid() == 0 else ""  # its workers reach the socket as the server's owner
        (nginx_folder / "nginx.conf").write_text(NGINX_CONF.format(user=user, folder=nginx_folder, socket=socket_path,
                                                                    port=nginx_port))
        subprocess.run(["taskset", "-c", SERVER_CPU, nginx, "-p", str(nginx_folder), "-c",
                        str(nginx_folder / "nginx.conf"), "-e", str(nginx_folder / "error.log")], check=True)
        time.sleep(0.5)
        nginx_group = os.getpgid(int((nginx_folder / "nginx.pid").read_text()))
        routes = {"direct (the server on TCP, no front)": (bare.url, []),
                  "through ModelDeck's front (HAProxy)": (f"http://127.0.0.1:{route.port}/score", group_pids(haproxy_group)),
                  "through nginx (the same job)": (f"http://127.0.0.1:{nginx_port}/score", group_pids(nginx_group))}
        throughput: dict[str, list[float]] = {name: [] for name in routes}
        p99: dict[str, list[float]] = {name: [] for name in routes}
        front_cpu_us: dict[str, list[float]] = {name: [] for name in routes}
        for _ in range(rounds):
            for name, (url, proxy_pids) in routes.items():
                before = cpu_seconds(proxy_pids)
                started = time.perf_counter()
                rps, latency = wrk_run(url, body, work)
                requests_made = rps * (time.perf_counter() - started)
                throughput[name].append(rps)
                p99[name].append(latency)
                if proxy_pids:
                    front_cpu_us[name].append(1e6 * (cpu_seconds(proxy_pids) - before) / max(1.0, requests_made))
    finally:
        for server in servers:
            server.close()
        for route_ in front.routes():
            front.withdraw(route_.key)
        try:
            os.killpg(os.getpgid(int((nginx_folder / "nginx.pid").read_text())), signal.SIGQUIT)
        except (OSError, ValueError):
            pass
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(deck.settings.home, ignore_errors=True)
    return {"rounds": rounds, "results": {name: {
        "rps_median": statistics.median(throughput[name]), "rps_min": min(throughput[name]),
        "rps_max": max(throughput[name]), "p99_ms": statistics.median(p99[name]),
        "proxy_cpu_us": statistics.median(front_cpu_us[name]) if front_cpu_us[name] else None} for name in routes}}


def report(results: dict) -> str:
    rows = results["results"]
    direct = next(iter(rows.values()))["rps_median"]
    nginx = rows["through nginx (the same job)"]["rps_median"]
    lines = ["### The front's cost (one MNIST row, JSON, 8 connections)", "",
             f"wrk, 1 thread, 8 connections, 5 s a round, {results['rounds']} rounds alternating; the server (1 "
             f"worker), HAProxy and nginx on core {SERVER_CPU}, wrk on the other. The proxy's CPU per request "
             "is its processes' user+system time over the round divided by the requests.", "",
             "| route | throughput median (min–max) | p99 under load | proxy CPU per request | vs direct | vs nginx |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        cpu = f"{r['proxy_cpu_us']:.0f} µs" if r["proxy_cpu_us"] is not None else "—"
        lines.append(f"| {name} | {r['rps_median']:.0f} req/s ({r['rps_min']:.0f}–{r['rps_max']:.0f}) "
                     f"| {r['p99_ms']:.2f} ms | {cpu} | {r['rps_median'] / direct:.2f}x | {r['rps_median'] / nginx:.2f}x |")
    return "\n".join(lines)


def main() -> None:
    bench_main(__doc__, run, report)


if __name__ == "__main__":
    main()
