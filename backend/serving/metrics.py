"""Prometheus metrics of a scoring server (`GET /metrics`), summed over its worker processes.

Each worker writes its numbers to memory-mapped files in one folder (prometheus-client's multiprocess
mode); /metrics, answered by any worker, adds up every file. The parent makes that folder fresh at
each start, before prometheus_client is imported (`use_fresh_folder`), under $TMPDIR or /tmp: the
tmpfs in a hardened container, whose root is read-only; it is removed when the server stops, or by the
next server to start when this one was killed. Counters of a worker that died stay counted;
its in-flight gauge is dropped (`worker_ended`).

    modeldeck_requests_total{endpoint, status}        requests answered, by path and HTTP status
    modeldeck_request_duration_seconds{endpoint}      latency histogram, 0.5 ms ... 10 s
    modeldeck_rows_scored_total                       rows answered by /score with 200
    modeldeck_requests_in_flight                      requests being served now (/metrics itself not)

Without that folder (an app made in-process, as the tests' client does) the numbers are this
process's own.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FOLDER_PREFIX = "modeldeck-metrics-"  # then the server's pid: a folder whose server is gone is removed
METRICS_PATH = "/metrics"
# Paths counted by their name; anything else (a typo, a scanner) is counted as "other", so a flood of
# odd paths cannot grow the metric files without bound.
ENDPOINTS = frozenset({"/score", "/info", "/health", "/ready", METRICS_PATH, "/openapi.json", "/docs",
                       "/docs/oauth2-redirect", "/redoc"})
LATENCY_BUCKETS = (0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Message = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[MutableMapping[str, Any], Callable[[], Awaitable[Message]], Send], Awaitable[None]]


def use_fresh_folder() -> str:
    """Makes a new, empty folder for the workers' metric files and names it in PROMETHEUS_MULTIPROC_DIR
    (and removes the folders of servers that were killed before they could). Call before anything
    imports prometheus_client (it picks its mode on import)."""
    for stale in Path(tempfile.gettempdir()).glob(f"{FOLDER_PREFIX}*-*"):
        owner = stale.name[len(FOLDER_PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not _alive(int(owner)):
            shutil.rmtree(stale, ignore_errors=True)
    path = tempfile.mkdtemp(prefix=f"{FOLDER_PREFIX}{os.getpid()}-")
    os.environ[MULTIPROC_ENV] = path
    return path


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's
        return True
    return True


def remove_folder(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def rows_in(payload: Any) -> int:
    """Rows a 200 answer scored: the length of its list of predictions (`predictions` of an object
    answer), 1 for any other answer."""
    if isinstance(payload, dict) and isinstance(payload.get("predictions"), list | tuple):
        return len(payload["predictions"])
    if isinstance(payload, list | tuple):
        return len(payload)
    shape = getattr(payload, "shape", None)
    return int(shape[0]) if shape else 1


class ServerMetrics:
    """The server's metrics; cheap on the request path (label children cached per worker)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.folder = os.environ.get(MULTIPROC_ENV) or None
        self.registry = CollectorRegistry()
        self._requests = Counter("modeldeck_requests", "Requests answered, by endpoint and HTTP status",
                                 ["endpoint", "status"], registry=self.registry)
        self._latency = Histogram("modeldeck_request_duration_seconds", "Time from request to the end of "
                                  "the answer, by endpoint", ["endpoint"], buckets=LATENCY_BUCKETS,
                                  registry=self.registry)
        self.rows = Counter("modeldeck_rows_scored", "Rows answered by /score with status 200",
                            registry=self.registry)
        self.in_flight = Gauge("modeldeck_requests_in_flight", "Requests being served (the scrape asking not)",
                               multiprocess_mode="livesum", registry=self.registry)
        self._counted: dict[tuple[str, int], Any] = {}
        self._timed: dict[str, Any] = {}

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        counter = self._counted.get((endpoint, status))
        if counter is None:
            counter = self._counted[(endpoint, status)] = self._requests.labels(endpoint, str(status))
        timer = self._timed.get(endpoint)
        if timer is None:
            timer = self._timed[endpoint] = self._latency.labels(endpoint)
        counter.inc()
        timer.observe(seconds)

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every worker's numbers summed (this process's alone without a folder)."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        if self.folder is None:
            return generate_latest(self.registry), CONTENT_TYPE_LATEST
        registry = CollectorRegistry()
        MultiProcessCollector(registry, path=self.folder)
        return generate_latest(registry), CONTENT_TYPE_LATEST

    def worker_ended(self, pid: int) -> None:
        """Drops a dead worker's in-flight gauge; its counters and histogram stay counted."""
        if self.folder is not None:
            from prometheus_client.multiprocess import mark_process_dead

            mark_process_dead(pid, self.folder)


class MetricsMiddleware:
    """Pure ASGI: counts and times every HTTP request (one perf_counter pair, a few mmap writes)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: MutableMapping[str, Any], receive: Callable[[], Awaitable[Message]],
                       send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = path if path in ENDPOINTS else "other"
        status = 500  # what the client sees when the app fails before it answers

        def watch(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        counted = endpoint != METRICS_PATH
        started = time.perf_counter()
        if counted:
            self.metrics.in_flight.inc()
        try:
            await self.app(scope, receive, watch)
        finally:
            if counted:
                self.metrics.in_flight.dec()
            self.metrics.observe(endpoint, status, time.perf_counter() - started)
