"""A bounded load test of a deployment on this machine: single-row /score requests from C clients for N s.

The clients (backend/traffic/generator.py) run on an event loop of their own thread (uvloop when
installed), so a slow progress callback never delays a request. Bodies are the tutorial's JSON
(`{"data": [[...]]}`) of random test-set rows. Latency is counted for every request the server
answered (any status); non-2xx answers and connection failures are errors, by kind.
"""

from __future__ import annotations

import asyncio
import queue
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime
from urllib.parse import urlsplit

import numpy as np

from ..client import json_body
from ..data.testset import TestSet
from ..errors import LoadTestRefusedError
from .generator import LoadRun, http_request, new_loop
from .loadresult import Keep, LoadTestResult, LoadTestTick, Progress, Tallies, percentiles, summarize

__all__ = ["Keep", "LoadTestResult", "LoadTestTick", "Progress", "Tallies", "percentiles", "summarize", "check_bounds",
           "local_target", "request_bodies", "run_load_test"]

SECONDS_RANGE = (1, 300)
CONCURRENCY_RANGE = (1, 64)
MAX_REQUESTS = 1_000_000  # a hard cap, whatever the seconds: the test stops there
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
BODIES = 256


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
    return tuple(json_body(testset.as_sent(testset.X[i:i + 1])) for i in rows)


def run_load_test(scoring_uri: str, bodies: Sequence[bytes], *, seconds: int, concurrency: int,
                  key: str | None = None, deployment: str = "", deployment_uid: str = "",
                  progress: Progress | None = None, keep: Keep | None = None,
                  max_requests: int = MAX_REQUESTS) -> LoadTestResult:
    """Sends `bodies` (in turn) to `scoring_uri` from `concurrency` clients for `seconds`.

    Args:
        key: sent as `Authorization: Bearer <key>` (deployments with key auth).
        progress: called with each second's tick while it runs, the last one at the end.
        keep: called after each second with the result so far (`partial`), and with what ran when
            `progress` raised (the page was reloaded or left: the load stops, the exception goes on).

    Raises:
        LoadTestRefusedError: out of bounds, no bodies, or a URI that is not on this machine.
    """
    check_bounds(seconds, concurrency)
    host, port, path = local_target(scoring_uri)
    if not bodies:
        raise LoadTestRefusedError("a load test needs at least one request body")
    run = LoadRun(host, port, tuple(http_request(host, port, path, body, key) for body in bodies), int(seconds),
               int(concurrency), max(1, min(max_requests, MAX_REQUESTS)))
    started_at = datetime.now(UTC).isoformat(timespec="seconds")
    # The load runs on a thread of its own, so however long `progress` takes (a dashboard redraw), no
    # request waits for it; the ticks come back here through a queue, on the caller's thread.
    ticks: queue.SimpleQueue[LoadTestTick | None] = queue.SimpleQueue()
    failed: list[BaseException] = []

    def load() -> None:
        try:
            with asyncio.Runner(loop_factory=new_loop) as runner:
                runner.run(run.run(ticks.put))
        except BaseException as e:
            failed.append(e)
        finally:
            ticks.put(None)

    def so_far(tallies: Tallies, ran: float, partial: bool) -> LoadTestResult:
        result = summarize(tallies, deployment=deployment, deployment_uid=deployment_uid, started_at=started_at,
                           seconds=ran, asked_seconds=int(seconds), concurrency=int(concurrency),
                           capped=run.capped, partial=partial)
        # A partial timeline ends at its last whole second: a cut-off second would read as a drop in req/s
        return replace(result, timeline=result.timeline[:max(1, int(ran))]) if partial else result

    thread = threading.Thread(target=load, name="modeldeck-loadtest", daemon=True)
    thread.start()
    try:
        while (tick := ticks.get()) is not None:
            if progress is not None:
                progress(tick)
            if keep is not None and tick.second + 1 < run.seconds:
                keep(so_far(run.tallies.copy(), time.perf_counter() - run.started, partial=True))
    except BaseException:
        run.running = False  # stops the load early: `progress` raised (say, the page was reloaded or left)
        ran = time.perf_counter() - run.started
        thread.join()
        if keep is not None and run.tallies.total:
            keep(so_far(run.tallies, ran, partial=True))
        raise
    finally:
        run.running = False
        thread.join()
    if failed:
        raise failed[0]
    ran = max(run.last_answer, run.started + (run.seconds if not run.capped else 0.0)) - run.started
    result = so_far(run.tallies, ran, partial=False)
    if progress is not None and result.timeline:
        progress(result.timeline[-1])
    return result
