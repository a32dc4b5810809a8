"""Workers that keep dying soon after they start (a scoring script that calls os._exit or segfaults on
every request, say), told to whoever asks instead of left to time out.

While the supervisor waits to fork the next worker (its backoff) no worker holds the listening socket's
connections, so the supervisor answers each one itself: 503, `Retry-After`, and why. A worker forked
while the deaths repeat (CRASH_LOOP_DEATHS in a row) answers /ready with 503 and the same reason until a
worker has answered a scoring request (living long while nobody asks proves nothing: a script that dies
on every request would read well again between requests); `runtimes.probe.readiness` reads
`crash_loop` from either.
"""

from __future__ import annotations

import math
import mmap
import os
import select
import signal
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass

import orjson

CRASH_LOOP_DEATHS = 3  # quick deaths in a row that make a crash loop (one or two are a blip)
_READ_SECONDS = 0.25  # how long the supervisor waits for a request's head (it answers one at a time)
_HEAD_BYTES = 16384


@dataclass(frozen=True)
class CrashLoop:
    """Why the workers keep dying."""

    reason: str


state: CrashLoop | None = None  # set by the supervisor before it forks: a worker inherits it
_served = mmap.mmap(-1, 1)  # shared by the supervisor and its forked workers: 1 once a worker answered a score


def _note_fork() -> None:
    global _forked_at


os.register_at_fork(after_in_child=_note_fork)


def how_it_ended(exit_code: int) -> str:
    """`os.waitstatus_to_exitcode`'s number in words: "exit code 7", "signal 11 (SIGSEGV)"."""
    if exit_code >= 0:
        return f"exit code {exit_code}"
    try:
        return f"signal {-exit_code} ({signal.Signals(-exit_code).name})"
    except ValueError:
        return f"signal {-exit_code}"


def describe(deaths: int, how: str, lived: float, quick: float) -> str:
    """The reason shown while workers keep dying."""
    return (f"the scoring server's worker process ended {deaths} times in a row within {quick:g} s of its start, the "
            f"last with {how} after {lived:.1f} s: the scoring script likely ends it (os._exit, a crash in native "
            "code, running out of memory); the deployment's logs show each end and the requests before it")


def note_served() -> None:
    """In a worker, after a scoring request was answered: the scripts runs again (ends a crash loop)."""
    if not _served[0]:
        _served[0] = 1


def served() -> bool:
    """Whether a worker answered a scoring request since the supervisor last forgot it."""
    return bool(_served[0])


def forget_served() -> None:
    """In the supervisor, before it forks a worker while the deaths repeat."""
    _served[0] = 0


def ready_failure() -> str | None:
    """In a worker: the crash loop it was forked in, until a worker answered a scoring request."""
    if state is not None and not _served[0]:
        return state.reason + " (it reads as failed until a request is answered)"
    return None


def answer_while_down(sock: socket.socket, until: float, reason: str, looping: bool,
                      stopping: Callable[[], bool]) -> None:
    """In the supervisor, while no worker runs: every connection on `sock` gets 503 with `reason` (as
    `crash_loop` when `looping`, else as `restarting`) until time.monotonic() passes `until`."""
    while not stopping() and (left := until - time.monotonic()) > 0:
        try:
            readable, _, _ = select.select([sock], [], [], min(left, 0.05))
        except InterruptedError:
            continue
        if not readable:
            continue
        try:
            conn, _ = sock.accept()
        except (BlockingIOError, InterruptedError, ConnectionAbortedError):
            continue
        with conn:
            _answer(conn, reason, looping, math.ceil(max(until - time.monotonic(), 0.0)) + 1)


def _answer(conn: socket.socket, reason: str, looping: bool, retry_after: int) -> None:
    conn.settimeout(_READ_SECONDS)
    head = b""
    try:
        while b"\r\n\r\n" not in head and len(head) < _HEAD_BYTES:
            chunk = conn.recv(4096)
            if not chunk:
                return
            head += chunk
        body = orjson.dumps({"error": reason, "type": "CrashLoop" if looping else "WorkerRestarting",
                             "ready": False, ("crash_loop" if looping else "restarting"): reason})
        conn.sendall(b"HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\n"
                     b"content-length: %d\r\nretry-after: %d\r\nconnection: close\r\n\r\n%s"
                     % (len(body), retry_after, body))
        conn.shutdown(socket.SHUT_WR)
        drained, deadline = 0, time.monotonic() + _READ_SECONDS  # a body sent along: read, so no reset loses the answer
        while drained < 2**20 and time.monotonic() < deadline and (chunk := conn.recv(65536)):
            drained += len(chunk)
    except OSError:
        return
