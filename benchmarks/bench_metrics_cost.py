"""What counting a request costs the scoring server, in process: GET /health through the whole app
(middleware stack, routing, answer) with and without the metrics middleware, alternating, median of
rounds. No network and no scoring: the difference is the middleware and its bookkeeping alone.

Run: .venv/bin/python -m benchmarks.bench_metrics_cost [--rounds 7] [--requests 20000]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import tempfile
import time
import types
from typing import Any


async def _drive(app: Any, n: int) -> float:
    """Microseconds per GET /health, after a warm-up."""
    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "GET", "scheme": "http",
             "path": "/health", "raw_path": b"/health", "query_string": b"", "root_path": "", "headers": [],
             "client": ("127.0.0.1", 1), "server": ("127.0.0.1", 2)}

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        pass

    for _ in range(500):
        await app(scope, receive, send)
    started = time.perf_counter()
    for _ in range(n):
        await app(scope, receive, send)
    return (time.perf_counter() - started) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--requests", type=int, default=20000)
    args = parser.parse_args()
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="modeldeck-bench-metrics-")  # as a server
    from backend.serving.routes import create_app
    from backend.serving.script import ScoringScript

    script = types.ModuleType("score")
    script.run = lambda raw: [0]  # type: ignore[attr-defined]

    def build(counted: bool) -> Any:
        app = create_app(ScoringScript.of(script), {})
        if not counted:
            app.user_middleware = []  # the metrics middleware is the only one added
            app.middleware_stack = None
        return app

    times: dict[bool, list[float]] = {True: [], False: []}
    for round_no in range(args.rounds):
        for counted in (True, False) if round_no % 2 else (False, True):
            times[counted].append(asyncio.run(_drive(build(counted), args.requests)))
    with_, without = statistics.median(times[True]), statistics.median(times[False])
    print(f"GET /health in process, {args.requests} requests x {args.rounds} rounds, median µs per request: "
          f"with metrics {with_:.1f}, without {without:.1f}: the metrics cost {with_ - without:.1f} µs")


if __name__ == "__main__":
    main()
