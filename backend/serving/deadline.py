"""Time limits for run(): every scoring request has a deadline, its arrival plus the deployment's limit.

A request still queued for the scoring thread at its deadline is dropped before it runs and answered
504 with a request id; so is one whose client left (it gets no answer). A run() still going at the
deadline cannot be stopped (a Python thread cannot be interrupted): its client gets the 504 then, and
once that run() has itself run longer than the limit, the worker is retired: the requests queued
behind it are answered 503 (not run: send again, `Retry-After`), the supervisor is told through a
pipe to fork a replacement at once (not a crash: no backoff), and the worker stops.
"""

from __future__ import annotations

import logging
import os
import secrets
import signal
import struct
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import Protocol

from .answers import Answer, RunTimeout, WorkerReplaced, answer

log = logging.getLogger("modeldeck.serving")
DEFAULT_RUN_TIMEOUT_SECONDS = 60.0
WATCH_SECONDS = 0.1  # how often a worker's watchdog looks at deadlines and the running run()
RETIRE_GRACE_SECONDS = 10.0  # a retiring worker that has not stopped by then ends at once
WAITED_TOO_LONG = ("the request waited {waited:.1f} s for the scoring script, past this deployment's run() limit of "
                   "{limit:g} s, and was not run (request id {request_id}): other requests kept the script busy; "
                   "send fewer at once, or deploy with more CPU cores (one worker each) or a longer --run-timeout")
RAN_TOO_LONG = ("run() had not returned {limit:g} s after the request arrived, this deployment's limit (request id "
                "{request_id}); a worker whose run() itself runs longer than the limit is replaced, and the "
                "deployment's logs show where run() was. `deploy --run-timeout SECONDS` sets the limit")
RETIRED = ("this request was not run: the worker that took it is being replaced because a run() overran the "
           "deployment's time limit; send it again")
_PID = struct.Struct("=i")


class Running(Protocol):
    """What the watchdog reads of the job on the scoring thread."""

    started: float  # time.monotonic() when run() began
    limit: float


def timed_out(limit: float, waited: float, ran: bool) -> Answer:
    """The 504 for a request past its deadline (`ran`: its run() had begun), logged under its id."""
    request_id = secrets.token_hex(8)
    if ran:
        log.error("request %s: run() still running %.1f s after the request arrived, past the limit of %g s: 504",
                  request_id, waited, limit)
        message = RAN_TOO_LONG.format(limit=limit, request_id=request_id)
    else:
        log.warning("request %s: waited %.1f s without being run, past the run() limit of %g s: dropped, 504",
                    request_id, waited, limit)
        message = WAITED_TOO_LONG.format(waited=waited, limit=limit, request_id=request_id)
    return answer(RunTimeout(message, request_id=request_id))


def retired() -> Answer:
    """The 503 for a request this worker will not run because it is being replaced."""
    return answer(WorkerReplaced(RETIRED))


class Worker:
    """This process's retirement state (a fork starts with the parent's: never retiring)."""

    retiring = False


_replace_fd: int | None = None  # the write end of the supervisor's pipe, inherited by every worker


def open_replacement_pipe() -> int:
    """Called by the supervisor before it forks: returns the read end, where retiring workers write their pid."""
    global _replace_fd
    read_fd, _replace_fd = os.pipe()
    os.set_blocking(read_fd, False)
    return read_fd


def replacements_asked(read_fd: int) -> set[int]:
    """The pids of workers that asked to be replaced since the last call (never blocks)."""
    data = b""
    try:
        while chunk := os.read(read_fd, 4096):
            data += chunk
    except BlockingIOError:
        pass
    return {_PID.unpack_from(data, i)[0] for i in range(0, len(data) - len(data) % _PID.size, _PID.size)}


def retire_this_worker(scoring_thread: int | None) -> None:
    """Tells the supervisor to fork a replacement now and stops this worker gracefully (uvicorn's SIGTERM:
    no new connections, in-flight answers sent), at once after RETIRE_GRACE_SECONDS. Logs where run() is."""
    Worker.retiring = True
    frame = sys._current_frames().get(scoring_thread) if scoring_thread is not None else None
    where = "".join(traceback.format_stack(frame)).rstrip() if frame is not None else "(not known)"
    log.error("worker %d: a run() overran the time limit and cannot be stopped; this worker is replaced by a new "
              "one. run() was at:\n%s", os.getpid(), where)
    if _replace_fd is not None:
        try:
            os.write(_replace_fd, _PID.pack(os.getpid()))
        except OSError:
            pass
    backstop = threading.Timer(RETIRE_GRACE_SECONDS, os._exit, args=(1,))
    backstop.daemon = True
    backstop.start()
    os.kill(os.getpid(), signal.SIGTERM)


def watch(running: Callable[[], Running | None], on_overrun: Callable[[Running], None],
          on_tick: Callable[[], None]) -> None:
    """Starts this worker's watchdog thread: every WATCH_SECONDS it calls `on_tick()` (deadlines), and once
    the run() that `running` returns has run longer than its limit, `on_overrun(job)` (then it stops);
    all on the watchdog thread."""
    def look() -> None:
        while True:
            time.sleep(WATCH_SECONDS)
            on_tick()
            job = running()
            if job is not None and time.monotonic() - job.started > job.limit:
                on_overrun(job)
                return

    threading.Thread(target=look, name="modeldeck-run-watch", daemon=True).start()
