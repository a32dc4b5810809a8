"""A bounded load test of a deployment on this machine: single-row /score requests from C clients for N s.

Each client is an asyncio protocol on one kept-alive connection (uvloop when installed, on a thread
of its own) sending pre-built HTTP/1.1 requests — the cheapest way to make many requests from one Python process, so the
load generator takes as little of the machine's CPU from the server as it can. Bodies are the
tutorial's JSON (`{"data": [[...]]}`) of random test-set rows. Latency is counted for every request
the server answered (any status); non-2xx answers and connection failures are errors, by kind.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import numpy as np
import orjson

from ..datasets import TestSet
from ..errors import LoadTestRefusedError

SECONDS_RANGE = (1, 300)
CONCURRENCY_RANGE = (1, 64)
MAX_REQUESTS = 1_000_000  # a hard cap, whatever the seconds: the test stops there
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DRAIN_SECONDS = 10.0  # requests still unanswered this long after the end count as timeouts
RECONNECT_PAUSE = 0.05  # after a failed connection, so a dead server is not hammered in a tight loop
BODIES = 256


@dataclass(frozen=True)
class LoadTestTick:
    """One second of a load test: requests answered in it (so also its req/s), errors, latency."""

    second: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class LoadTestResult:
    """What a load test measured. Latency is over the requests the server answered (any status), in ms;
    `seconds` is the time it ran; `errors_by_kind` names each kind ("HTTP 500", "connection refused")."""

    deployment: str
    deployment_uid: str
    seconds: float
    concurrency: int
    requests: int
    errors: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    started_at: str
    timeline: tuple[LoadTestTick, ...]
    errors_by_kind: tuple[tuple[str, int], ...] = ()
    asked_seconds: int = 0
    capped: bool = False  # stopped at MAX_REQUESTS before its seconds were up

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["timeline"] = [asdict(tick) for tick in self.timeline]
        data["errors_by_kind"] = dict(self.errors_by_kind)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadTestResult:
        fields = {**data, "timeline": tuple(LoadTestTick(**tick) for tick in data.get("timeline", ())),
                  "errors_by_kind": tuple((str(k), int(n)) for k, n in dict(data.get("errors_by_kind", {})).items())}
        return cls(**{k: v for k, v in fields.items() if k in cls.__dataclass_fields__})


Progress = Callable[[LoadTestTick], None]


def percentiles(values: Sequence[float] | np.ndarray, qs: Sequence[float]) -> tuple[float, ...]:
    """The qs-th percentiles (0..100) of `values`, linear between closest ranks; 0.0 each when empty."""
    if len(values) == 0:
        return tuple(0.0 for _ in qs)
    return tuple(float(v) for v in np.percentile(np.asarray(values, dtype=np.float64), list(qs)))


def check_bounds(seconds: int, concurrency: int) -> None:
    """Raises LoadTestRefusedError when seconds or concurrency are out of range."""
    for what, value, (low, high) in (("seconds", seconds, SECONDS_RANGE),
                                     ("concurrency", concurrency, CONCURRENCY_RANGE)):
        if not low <= value <= high or int(value) != value:
            raise LoadTestRefusedError(f"a load test's {what} must be a whole number from {low} to {high}, got {value}")


def local_target(scoring_uri: str) -> tuple[str, int, str]:
    """(host to connect to, port, path) of a scoring URI on this machine.

    Raises:
        LoadTestRefusedError: the URI's host is not 127.0.0.1, localhost or ::1.
    """
    parts = urlsplit(scoring_uri)
    if parts.scheme != "http" or parts.hostname not in LOCAL_HOSTS:
        raise LoadTestRefusedError(f"a load test only targets this machine (http://127.0.0.1 or localhost); "
                                   f"{scoring_uri!r} is elsewhere: refused")
    host = "::1" if parts.hostname == "::1" else "127.0.0.1"
    return host, parts.port or 80, parts.path or "/"


def request_bodies(testset: TestSet, n: int = BODIES, seed: int | None = None) -> tuple[bytes, ...]:
    """`n` single-row JSON bodies of random test-set rows (the tutorial's contract)."""
    rng = np.random.default_rng(seed)
    rows = rng.integers(0, len(testset), size=n)
    return tuple(orjson.dumps({"data": testset.X[i:i + 1]}, option=orjson.OPT_SERIALIZE_NUMPY) for i in rows)


@dataclass
class Tallies:
    """Per-second tallies while a test runs (only the event loop's thread writes them)."""

    latencies: list[array] = field(default_factory=list)  # ms of each answered request, per second
    errors: list[int] = field(default_factory=list)  # non-2xx answers and connection failures, per second
    failures: list[int] = field(default_factory=list)  # connection failures alone (they have no latency)
    kinds: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def _slot(self, second: int) -> None:
        while len(self.errors) <= second:
            self.latencies.append(array("d"))
            self.errors.append(0)
            self.failures.append(0)

    def answered(self, second: int, latency_ms: float, status: int) -> None:
        self._slot(second)
        self.latencies[second].append(latency_ms)
        self.total += 1
        if not 200 <= status < 300:
            self.errors[second] += 1
            self.kinds[f"HTTP {status}"] += 1

    def failed(self, second: int, kind: str) -> None:
        self._slot(second)
        self.errors[second] += 1
        self.failures[second] += 1
        self.kinds[kind] += 1
        self.total += 1

    def tick(self, second: int) -> LoadTestTick:
        self._slot(second)
        p50, p99 = percentiles(self.latencies[second], (50, 99))
        return LoadTestTick(second, len(self.latencies[second]) + self.failures[second], self.errors[second],
                            p50, p99)


def summarize(tallies: Tallies, *, deployment: str, deployment_uid: str, started_at: str, seconds: float,
              asked_seconds: int, concurrency: int, capped: bool) -> LoadTestResult:
    """The result from per-second tallies (pure)."""
    timeline = tuple(tallies.tick(s) for s in range(len(tallies.errors)))
    everything = np.concatenate([np.frombuffer(a, dtype=np.float64) for a in tallies.latencies]) \
        if tallies.latencies else np.zeros(0)
    p50, p90, p99 = percentiles(everything, (50, 90, 99))
    return LoadTestResult(
        deployment=deployment, deployment_uid=deployment_uid, seconds=round(seconds, 3), concurrency=concurrency,
        requests=tallies.total, errors=sum(tallies.kinds.values()),
        requests_per_second=tallies.total / seconds if seconds > 0 else 0.0,
        p50_ms=p50, p90_ms=p90, p99_ms=p99, max_ms=float(everything.max()) if everything.size else 0.0,
        started_at=started_at, timeline=timeline, errors_by_kind=tuple(sorted(tallies.kinds.items())),
        asked_seconds=asked_seconds, capped=capped)


class _Connection(asyncio.Protocol):
    """One kept-alive HTTP/1.1 connection: `send` a whole request, await its (status, closes) answer."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.answer: asyncio.Future[tuple[int, bool]] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes) -> asyncio.Future[tuple[int, bool]]:
        self.answer = self.loop.create_future()
        assert self.transport is not None
        self.transport.write(request)
        return self.answer

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        end = self.buffer.find(b"\r\n\r\n")
        if end < 0 or self.answer is None or self.answer.done():
            return
        head = bytes(self.buffer[:end]).lower()
        at = head.find(b"\r\ncontent-length:")
        if at < 0:  # the scoring server always sends a length; anything else is not ours to parse
            self.answer.set_exception(ConnectionError("an answer without Content-Length"))
            return
        stop = head.find(b"\r\n", at + 2)
        total = end + 4 + int(head[at + 17:stop if stop > 0 else len(head)])
        if len(self.buffer) < total:
            return
        del self.buffer[:total]
        self.answer.set_result((int(head[9:12]), b"\r\nconnection: close" in head))

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self.answer is not None and not self.answer.done():
            self.answer.set_exception(exc or ConnectionResetError("the server closed the connection"))


def _kind(error: BaseException) -> str:
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    if isinstance(error, ConnectionResetError | BrokenPipeError):
        return "connection reset"
    return type(error).__name__


@dataclass
class _Run:
    host: str
    port: int
    requests: tuple[bytes, ...]
    seconds: int
    concurrency: int
    max_requests: int
    tallies: Tallies = field(default_factory=Tallies)
    running: bool = True
    capped: bool = False
    started: float = 0.0
    last_answer: float = 0.0

    def second(self, now: float) -> int:
        return min(int(now - self.started), self.seconds - 1)  # answers after the end count in the last second

    async def client(self, n: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = self.started + self.seconds
        connection: _Connection | None = None
        i = n
        try:
            while self.running and time.perf_counter() < deadline:
                if connection is None or connection.transport is None:
                    try:
                        _, connection = await loop.create_connection(lambda: _Connection(loop), self.host, self.port)
                    except OSError as e:
                        self.tallies.failed(self.second(time.perf_counter()), _kind(e))
                        connection = None
                        await asyncio.sleep(RECONNECT_PAUSE)
                        continue
                sent = time.perf_counter()
                try:
                    status, closes = await connection.send(self.requests[i % len(self.requests)])
                except OSError as e:
                    self.tallies.failed(self.second(time.perf_counter()), _kind(e))
                    connection = None
                    continue
                now = self.last_answer = time.perf_counter()
                i += self.concurrency
                self.tallies.answered(self.second(now), (now - sent) * 1000, status)
                if closes and connection.transport is not None:
                    connection.transport.close()
                    connection = None
                if self.tallies.total >= self.max_requests:
                    self.running, self.capped = False, True
        finally:
            if connection is not None and connection.transport is not None:
                connection.transport.close()

    async def run(self, progress: Progress) -> None:
        self.started = time.perf_counter()
        clients = [asyncio.ensure_future(self.client(n)) for n in range(self.concurrency)]
        try:
            for k in range(1, self.seconds):
                await asyncio.sleep(max(0.0, self.started + k - time.perf_counter()))
                if not self.running:
                    break
                progress(self.tallies.tick(k - 1))
            drain = max(0.0, self.started + self.seconds - time.perf_counter()) + DRAIN_SECONDS
            _, pending = await asyncio.wait(clients, timeout=drain)
            for _ in pending:
                self.tallies.failed(self.seconds - 1, "timeout")
        finally:
            self.running = False
            for task in clients:
                task.cancel()
            await asyncio.gather(*clients, return_exceptions=True)


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop

        return uvloop.new_event_loop()
    except ImportError:
        return asyncio.new_event_loop()


def http_request(host: str, port: int, path: str, body: bytes, key: str | None) -> bytes:
    """A whole HTTP/1.1 POST of a JSON body, kept alive, with the key when there is one."""
    auth = f"Authorization: Bearer {key}\r\n" if key else ""
    host_header = f"[{host}]" if ":" in host else host
    return (f"POST {path} HTTP/1.1\r\nHost: {host_header}:{port}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n{auth}\r\n").encode() + body


def run_load_test(scoring_uri: str, bodies: Sequence[bytes], *, seconds: int, concurrency: int,
                  key: str | None = None, deployment: str = "", deployment_uid: str = "",
                  progress: Progress | None = None, max_requests: int = MAX_REQUESTS) -> LoadTestResult:
    """Sends `bodies` (in turn) to `scoring_uri` from `concurrency` clients for `seconds`.

    Args:
        key: sent as `Authorization: Bearer <key>` (deployments with key auth).
        progress: called with each second's tick while it runs, the last one at the end.

    Raises:
        LoadTestRefusedError: out of bounds, no bodies, or a URI that is not on this machine.
    """
    check_bounds(seconds, concurrency)
    host, port, path = local_target(scoring_uri)
    if not bodies:
        raise LoadTestRefusedError("a load test needs at least one request body")
    run = _Run(host, port, tuple(http_request(host, port, path, body, key) for body in bodies), int(seconds),
               int(concurrency), max(1, min(max_requests, MAX_REQUESTS)))
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    # The load runs on a thread of its own, so however long `progress` takes (a dashboard redraw), no
    # request waits for it; the ticks come back here through a queue, on the caller's thread.
    ticks: queue.SimpleQueue[LoadTestTick | None] = queue.SimpleQueue()
    failed: list[BaseException] = []

    def load() -> None:
        try:
            with asyncio.Runner(loop_factory=_new_loop) as runner:
                runner.run(run.run(ticks.put))
        except BaseException as e:
            failed.append(e)
        finally:
            ticks.put(None)

    thread = threading.Thread(target=load, name="modeldeck-loadtest", daemon=True)
    thread.start()
    try:
        while (tick := ticks.get()) is not None:
            if progress is not None:
                progress(tick)
    finally:
        run.running = False  # stops the load early when `progress` raised (say, the page was left)
        thread.join()
    if failed:
        raise failed[0]
    ran = max(run.last_answer, run.started + (run.seconds if not run.capped else 0.0)) - run.started
    result = summarize(run.tallies, deployment=deployment, deployment_uid=deployment_uid, started_at=started_at,
                       seconds=ran, asked_seconds=int(seconds), concurrency=int(concurrency), capped=run.capped)
    if progress is not None and result.timeline:
        progress(result.timeline[-1])
    return result
