"""Prometheus metrics of a scoring server (`GET /metrics`), summed over its worker processes.

Each worker writes its numbers to memory-mapped files in one folder (prometheus-client's multiprocess
mode); /metrics, answered by any worker, adds up every file. The parent makes that folder fresh at
each start, before prometheus_client is imported (`use_fresh_folder`), under $TMPDIR or /tmp: the
tmpfs in a hardened container, whose root is read-only; it is removed when the server stops, or by the
next server to start when this one was killed. Counters of a worker that died stay counted;
its in-flight gauge is dropped (`worker_ended`). A worker adds to plain numbers per request and
writes them to its files every FLUSH_SECONDS (so another worker's /metrics may be that much behind).

    modeldeck_requests_total{endpoint, status}        requests answered, by path and HTTP status
    modeldeck_request_duration_seconds{endpoint}      latency histogram, 0.5 ms ... 10 s
    modeldeck_rows_scored_total                       rows answered by /score with 200
    modeldeck_requests_in_flight                      requests being served now (/metrics itself not)

Without that folder (an app made in-process, as the tests' client does) the numbers are this
process's own.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from bisect import bisect_left
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from .access import AccessLog, ASGIApp, Message, Scope, Send

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
FOLDER_PREFIX = "modeldeck-metrics-"  # then the server's pid: a folder whose server is gone is removed
METRICS_PATH = "/metrics"
# Paths counted by their name; anything else (a typo, a scanner) is counted as "other", so a flood of
# odd paths cannot grow the metric files without bound.
ENDPOINTS = frozenset({"/score", "/info", "/health", "/ready", METRICS_PATH, "/openapi.json", "/docs",
                       "/docs/oauth2-redirect", "/redoc"})
# The Open Inference Protocol's paths carry the model's name: counted by kind, so the labels stay few.
V2_ENDPOINTS = ("/v2/health", "/v2/metadata", "/v2/ready", "/v2/infer")


def endpoint_label(path: str) -> str:
    """The `endpoint` label of a request path: the path itself when listed, a V2 path by its kind
    ("/v2/infer", "/v2/metadata", "/v2/ready", "/v2/health"), anything else "other"."""
    if path in ENDPOINTS:
        return path
    if path.startswith("/v2"):
        if path in ("/v2/health/live", "/v2/health/ready"):
            return "/v2/health"
        if path == "/v2":
            return "/v2/metadata"
        if path.startswith("/v2/models/"):
            tail = path.split("/")[4:]  # after "", "v2", "models", name: [versions, version,] [ready | infer]
            if tail[:1] == ["versions"] and len(tail) >= 2:
                tail = tail[2:]
            if not tail:
                return "/v2/metadata"
            if tail in (["infer"], ["ready"]):
                return f"/v2/{tail[0]}"
    return "other"


FLUSH_SECONDS = 0.05  # a worker's counts reach the shared files this soon (at once when it answers /metrics)
LATENCY_BUCKETS = (0.0005, 0.00075, 0.001, 0.0015, 0.002, 0.003, 0.005, 0.0075, 0.01, 0.025, 0.05, 0.1,
                   0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


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
    """Rows a 200 answer scored: the length of its predictions (a list or an array, or the `predictions`
    of an object answer: with probabilities), 1 for any other answer."""
    if isinstance(payload, dict):
        payload = payload.get("predictions")
    if isinstance(payload, list | tuple):
        return len(payload)
    shape = getattr(payload, "shape", None)
    return int(shape[0]) if shape else 1


class ServerMetrics:
    """The server's metrics. The request path only adds to plain numbers of this worker (about a
    microsecond); they are written to the shared files at most FLUSH_SECONDS later, and at once before
    this worker answers /metrics. Call everything but `worker_ended` on the worker's event loop."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.folder = os.environ.get(MULTIPROC_ENV) or None
        self.registry = CollectorRegistry()
        self._requests = Counter("modeldeck_requests", "Requests answered, by endpoint and HTTP status",
                                 ["endpoint", "status"], registry=self.registry)
        self._latency = Histogram("modeldeck_request_duration_seconds", "Time from request to the end of "
                                  "the answer, by endpoint", ["endpoint"], buckets=LATENCY_BUCKETS,
                                  registry=self.registry)
        self._rows = Counter("modeldeck_rows_scored", "Rows answered by /score with status 200",
                             registry=self.registry)
        self._in_flight = Gauge("modeldeck_requests_in_flight", "Requests being served (the scrape asking not)",
                                multiprocess_mode="livesum", registry=self.registry)
        self.in_flight = 0
        self._written_in_flight = 0
        self._counts: dict[tuple[str, int], int] = {}
        self._buckets: dict[str, list[int]] = {}  # per endpoint: requests per latency bucket (+inf last)
        self._seconds: dict[str, float] = {}
        self._rows_scored = 0
        self._flush_due = False

    def started(self) -> None:
        self.in_flight += 1
        self._soon()

    def finished(self, endpoint: str, status: int, seconds: float, was_in_flight: bool = True) -> None:
        self.in_flight -= was_in_flight
        self._counts[(endpoint, status)] = self._counts.get((endpoint, status), 0) + 1
        counts = self._buckets.get(endpoint)
        if counts is None:
            counts = self._buckets[endpoint] = [0] * (len(LATENCY_BUCKETS) + 1)
        counts[bisect_left(LATENCY_BUCKETS, seconds)] += 1  # the first bucket whose bound is >= seconds
        self._seconds[endpoint] = self._seconds.get(endpoint, 0.0) + seconds
        self._soon()

    def scored(self, rows: int) -> None:
        self._rows_scored += rows
        self._soon()

    def _soon(self) -> None:
        if not self._flush_due:
            self._flush_due = True
            asyncio.get_running_loop().call_later(FLUSH_SECONDS, self.flush)

    def flush(self) -> None:
        """Writes what this worker counted since the last flush to the metrics (and their files)."""
        self._flush_due = False
        counts, self._counts = self._counts, {}
        buckets, self._buckets = self._buckets, {}
        seconds, self._seconds = self._seconds, {}
        for (endpoint, status), n in counts.items():
            self._requests.labels(endpoint, str(status)).inc(n)
        for endpoint, per_bucket in buckets.items():
            child = self._latency.labels(endpoint)
            # prometheus-client (pinned) keeps one value per bucket, +inf last, and the sum: add to them
            # directly, once per flush, instead of one observe() per request.
            for i, n in enumerate(per_bucket):
                if n:
                    child._buckets[i].inc(n)
            child._sum.inc(seconds[endpoint])
        if self._rows_scored:
            self._rows.inc(self._rows_scored)
            self._rows_scored = 0
        if self.in_flight != self._written_in_flight:
            self._in_flight.set(self.in_flight)
            self._written_in_flight = self.in_flight

    def exposition(self) -> tuple[bytes, str]:
        """The text format of every worker's numbers summed (this process's alone without a folder);
        this worker's own are flushed first."""
        from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
        from prometheus_client.multiprocess import MultiProcessCollector

        self.flush()
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
    """Pure ASGI: counts and times every HTTP request (a perf_counter pair and a few additions)."""

    def __init__(self, app: ASGIApp, metrics: ServerMetrics, access_log: AccessLog | None = None) -> None:
        self.app = app
        self.metrics = metrics
        self.access_log = access_log  # given: each request's access line too, once answered

    async def __call__(self, scope: Scope, receive: Callable[[], Awaitable[Message]],
                       send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        endpoint = endpoint_label(path)
        status = 500  # what the client sees when the app fails before it answers

        def watch(message: Message) -> Awaitable[None]:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            return send(message)

        counted = endpoint != METRICS_PATH  # a scrape does not count itself in flight
        started = time.perf_counter()
        if counted:
            self.metrics.started()
        try:
            await self.app(scope, receive, watch)
        finally:
            self.metrics.finished(endpoint, status, time.perf_counter() - started, counted)
            if self.access_log is not None:
                self.access_log.write(scope, status)
