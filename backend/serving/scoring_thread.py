"""The one scoring thread of each worker: every call of the script runs there, never on the event loop
(however long run() takes, /health and /ready answer at once, and calls of run() never overlap), each
with its deadline (see deadline)."""

from __future__ import annotations

import asyncio
import collections
import os
import queue
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from . import deadline
from .answers import Answer, ClientGone, script_fault

Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]


class _Job:
    """One call of the script: queued for the scoring thread, answered once (by the thread, the deadline
    or the client leaving; `_claim` decides which of them runs it or drops it)."""

    __slots__ = ("loop", "answer", "work", "limit", "arrived", "deadline", "started", "cycle")

    def __init__(self, loop: asyncio.AbstractEventLoop, work: Callable[[], Answer], limit: float,
                 cycle: Any = None) -> None:
        self.loop, self.work, self.limit = loop, work, limit  # work runs the script: on the scoring thread only
        self.cycle = cycle  # uvicorn's request cycle: its `disconnected` turns True when the client leaves
        self.answer: asyncio.Future[Answer] = loop.create_future()
        self.arrived = time.monotonic()
        self.deadline = self.arrived + limit
        self.started = 0.0  # when run() began; -1.0: dropped (past its deadline, or its client left)


_scoring: queue.SimpleQueue[_Job] | None = None
_running: list[_Job | None] = [None]  # the job on the scoring thread now (read by the watchdog)
# Jobs not yet known to be answered, oldest first (deadlines in the same order: one limit per server).
# The watchdog expires them from the left: no timer per request (a uvloop timer cost ~3 us of ~35).
_pending: collections.deque[_Job] = collections.deque()
_scoring_ident: list[int | None] = [None]
_claim = threading.Lock()
_GONE = Answer(499, b"")  # the client left before its job ran


def _forget_scoring_thread() -> None:
    global _scoring
    _scoring = None  # a forked child has the queue but not the thread: it starts its own on first use
    _running[0] = None
    _pending.clear()


os.register_at_fork(after_in_child=_forget_scoring_thread)


def scoring_queue() -> queue.SimpleQueue[_Job]:
    """The queue of this process's one scoring thread, started on first use (after the fork, so each
    worker has its own), with its watchdog (deadline.watch). A bare queue and thread: measured as cheap
    as scoring on the event loop, where an executor cost ~10 % of single-row throughput."""
    global _scoring
    if _scoring is None:
        jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        thread = threading.Thread(target=_score_forever, args=(jobs,), name="modeldeck-run", daemon=True)
        thread.start()
        _scoring_ident[0] = thread.ident
        deadline.watch(lambda: _running[0], lambda job: _overran(jobs, job), _expire_due)  # type: ignore[arg-type]
        _scoring = jobs
    return _scoring


def _score_forever(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        job = jobs.get()
        with _claim:
            if job.started:
                continue  # dropped: answered already
            now = time.monotonic()
            if now >= job.deadline:
                job.started = -1.0  # the watchdog has it answered 504 on the loop (_expire_due)
                continue
            if job.cycle is not None and job.cycle.disconnected:
                job.started = -1.0  # its client left while it waited: dropped before it runs
                job.loop.call_soon_threadsafe(_deliver, job, _GONE)
                continue
            job.started = now
        _running[0] = job
        try:
            answer = job.work()
        except BaseException as e:  # SystemExit too: answer, and keep the thread
            answer = script_fault(e)
        _running[0] = None
        job.loop.call_soon_threadsafe(_deliver, job, answer)


def _deliver(job: _Job, answer: Answer) -> None:
    if not job.answer.done():  # answered 504 already, or the client may have gone
        job.answer.set_result(answer)


def _expire(job: _Job) -> None:
    """At a job's deadline: a queued job is dropped; either way its client gets 504."""
    with _claim:
        ran = job.started > 0
        if not job.started:
            job.started = -1.0
    if not job.answer.done():
        job.answer.set_result(deadline.timed_out(job.limit, time.monotonic() - job.arrived, ran))


def _expire_due() -> None:
    """On the watchdog thread: forgets the answered jobs at the left of `_pending` and has the loop
    answer those past their deadline (504)."""
    now = time.monotonic()
    while _pending:
        job = _pending[0]
        if job.answer.done():
            _pending.popleft()
        elif job.deadline <= now:
            _pending.popleft()
            job.loop.call_soon_threadsafe(_expire, job)
        else:
            return


def _client_left(job: _Job, watching: asyncio.Task[Message]) -> None:
    """The client closed its connection while its job waited: dropped before it runs."""
    if watching.cancelled() or watching.exception() is not None or watching.result().get("type") != "http.disconnect":
        return
    with _claim:
        if job.started:
            return  # running (its answer goes nowhere) or dropped already
        job.started = -1.0
    if not job.answer.done():
        job.answer.set_result(_GONE)


def _overran(jobs: queue.SimpleQueue[_Job], job: _Job) -> None:
    """On the watchdog thread: `job`'s run() ran past its limit. Hands the worker's retirement to its loop."""
    job.loop.call_soon_threadsafe(_retire, jobs, job)


def _retire(jobs: queue.SimpleQueue[_Job], stuck: _Job) -> None:
    """The scoring thread is stuck in run(): the jobs queued behind it get 503 (not run), the stuck one 504
    (if its deadline has not answered it yet), and the worker is replaced."""
    _expire(stuck)
    while True:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        with _claim:
            dropped = job.started == 0.0
            if dropped:
                job.started = -1.0
        if dropped and not job.answer.done():
            job.answer.set_result(deadline.retired())
    deadline.retire_this_worker(_scoring_ident[0])


async def on_scoring_thread(work: Callable[[], Answer], limit: float = deadline.DEFAULT_RUN_TIMEOUT_SECONDS,
                            receive: Receive | None = None) -> Answer:
    """Runs `work` (which calls the script) on the worker's one scoring thread, never on the event loop:
    however long run() takes, /health and /ready answer at once, and calls of run() never overlap.
    Past `limit` seconds from now (checked every deadline.WATCH_SECONDS) the answer is a 504; with
    `receive` (the request's, its body read), a job queued behind another whose client disconnects
    before it runs is dropped.

    Raises:
        ClientGone: the client disconnected before the job ran.
    """
    if deadline.Worker.retiring:
        return deadline.retired()
    loop = asyncio.get_running_loop()
    # uvicorn's receive is its request cycle's method, and the cycle notes a disconnect whether or not
    # anyone waits on receive(): the scoring thread reads that flag (free); other servers' receive is watched.
    cycle = getattr(receive, "__self__", None)
    job = _Job(loop, work, limit, cycle if hasattr(cycle, "disconnected") else None)
    jobs = scoring_queue()
    waits = _running[0] is not None or not jobs.empty()  # an idle thread starts it at once: nothing to watch
    jobs.put(job)
    _pending.append(job)
    watching: asyncio.Task[Message] | None = None
    if receive is not None and waits and job.cycle is None:
        watching = loop.create_task(receive())  # type: ignore[arg-type]
        watching.add_done_callback(lambda task: _client_left(job, task))
    try:
        answer = await job.answer
    finally:
        if watching is not None:
            watching.cancel()
    if answer is _GONE:
        raise ClientGone()
    return answer
