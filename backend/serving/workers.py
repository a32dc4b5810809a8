"""Serving on one listening socket with N worker processes, forked after init().

Forking after the model is loaded shares its memory between workers (copy-on-write) and keeps
"the port answers" meaning "init() succeeded". The parent only supervises, even for one worker: it
forwards SIGTERM/SIGINT to the workers and exits 0 once they stopped; a worker that ends on its own
(a crash, `os._exit(0)` in run(), the kernel's OOM killer) is replaced at once by a new fork, on the
same socket, so the scoring URI keeps answering. Workers that keep dying are re-forked with a growing
pause (up to MAX_BACKOFF_SECONDS), never in a tight loop; during that pause the parent answers every
connection itself with 503 and why (see crashloop). A worker whose run() overran its time limit asks
for its replacement through a pipe (see deadline): it is re-forked at once, not counted as a crash.
"""

from __future__ import annotations

import faulthandler
import gc
import logging
import os
import signal
import socket
import stat
import sys
import time
import traceback
from collections.abc import Callable

from . import crashloop, deadline

log = logging.getLogger("modeldeck.serving")
BIND_FAILED_EXIT_CODE = 4
# Open connections + requests per worker: bodies' memory is budgeted (bodies.py), a request's head must come
# within 10 s (connections.py) and a body that trickles is cut (bodies.py), so this bounds only the connections
# themselves (measured: ~6 KiB idle, ~18 KiB with a body begun). 1,500 silent connections filled the 1,024
# before; this many fit a sandboxed worker's 4,096 open files with room for its own.
MAX_CONCURRENCY = 3584
QUICK_DEATH_SECONDS = 10.0  # a worker that dies sooner than this after its start counts as crash-looping
MAX_BACKOFF_SECONDS = 30.0
WORKER_OOM_SCORE_ADJ = 500  # under memory pressure the kernel kills a worker (replaced), not the supervisor


def bind(host: str, port: int, uds: str | None = None, fd: int | None = None) -> socket.socket:
    """The listening socket: TCP on host:port, the unix socket `uds` (a stale one from an earlier run is
    replaced), or the socket `fd` inherited bound and not yet listening (the local runtime binds its port
    on the machine's 127.0.0.1 before the server enters a sandbox whose own network has only loopback;
    it listens from here on, after init(): until then a connection is refused). A unix socket is made
    connectable by any local user, as a port on 127.0.0.1 is: the folder it lies in decides who reaches it."""
    if fd is not None:
        inherited = socket.socket(fileno=fd)  # family and protocol read from the socket: TCP_NODELAY still applies
        inherited.listen(2048)
        inherited.set_inheritable(True)
        return inherited
    if uds:
        try:
            if stat.S_ISSOCK(os.lstat(uds).st_mode):
                os.unlink(uds)
        except FileNotFoundError:
            pass
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        if len(os.fsencode(uds)) <= 100:
            unix.bind(uds)
        else:  # a socket address holds 108 bytes: name a long path through a short one to its folder
            folder = os.open(os.path.dirname(uds) or ".", os.O_RDONLY | os.O_DIRECTORY)
            try:
                unix.bind(f"/proc/self/fd/{folder}/{os.path.basename(uds)}")
            finally:
                os.close(folder)
        os.chmod(uds, 0o666)
        unix.listen(2048)
        unix.set_inheritable(True)
        return unix
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # without it Nagle + delayed ACK add ~40 ms to every request on a kept-alive connection.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _run_worker(app, sock: socket.socket, host: str, port: int, log_level: str = "info",
                access_log: bool = True) -> None:
    import resource

    import uvicorn

    from .connections import HeadDeadlineProtocol

    try:  # a connection is a file: let the worker hold MAX_CONCURRENCY of them (a shell's soft limit is often 1024)
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        wanted = MAX_CONCURRENCY + 256
        if soft != resource.RLIM_INFINITY and soft < wanted:
            resource.setrlimit(resource.RLIMIT_NOFILE, (wanted if hard == resource.RLIM_INFINITY else min(wanted, hard),
                                                        hard))
    except (ValueError, OSError):
        pass
    # "auto" takes uvloop (a C event loop); httptools (a C HTTP parser) under HeadDeadlineProtocol.
    # limit_concurrency: past that many open connections and requests a worker answers 503 at once.
    config = uvicorn.Config(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=5,
                            loop="auto", http=HeadDeadlineProtocol, limit_concurrency=MAX_CONCURRENCY, access_log=access_log)
    uvicorn.Server(config).run(sockets=[sock])


def _fork_worker(app, sock: socket.socket, host: str, port: int, log_level: str, access_log: bool) -> int:
    pid = os.fork()
    if pid:
        return pid
    code = 1
    try:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        try:
            with open("/proc/self/oom_score_adj", "w") as adj:
                adj.write(str(WORKER_OOM_SCORE_ADJ))
        except OSError:
            pass
        _run_worker(app, sock, host, port, log_level, access_log)
        code = 0
    except BaseException:
        traceback.print_exc()
    finally:
        os._exit(code)


def serve(app, host: str, port: int, workers: int = 1, log_level: str = "info",
          on_worker_exit: Callable[[int], None] | None = None, access_log: bool = True,
          uds: str | None = None, fd: int | None = None) -> int:
    """Serves `app` on host:port (or on the unix socket `uds`, or the inherited socket `fd`) with `workers` processes under a
    supervising parent; returns the exit code (0 once stopped by a signal). `on_worker_exit(pid)` is
    called for each worker that ended; `access_log=False` turns uvicorn's access log off (for an app
    that writes its own)."""
    where = f"unix:{uds}" if uds else f"inherited socket {fd}" if fd is not None else f"{host}:{port}"
    try:
        sock = bind(host, port, uds, fd)
    except OSError as e:
        print(f"modeldeck serving: cannot listen on {where}: {e}", file=sys.stderr, flush=True)
        return BIND_FAILED_EXIT_CODE
    if fd is not None:
        where = "{}:{}".format(*sock.getsockname()[:2])
    workers = max(1, workers)
    print(f"modeldeck serving: listening on {where} with {workers} worker(s)", file=sys.stderr, flush=True)
    started: dict[int, float] = {}
    stopping = False

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for child in started:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    faulthandler.enable()  # inherited: a worker that crashes in native code prints its Python stack to the log
    replacements = deadline.open_replacement_pipe()
    # Everything init() and the imports made moves out of the collector's sight: a worker's full collections
    # no longer walk it (they paused the scoring thread 100-220 ms at a time, the p99 of 8 concurrent clients
    # went from 3 to 110 ms), and its pages stay shared with the supervisor's (copy-on-write).
    gc.collect()
    gc.freeze()
    for _ in range(workers):
        started[_fork_worker(app, sock, host, port, log_level, access_log)] = time.monotonic()
    log.info("serving with %d worker process(es): %s", workers, sorted(started))
    backoff = 0.0
    quick_deaths = 0
    while started:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        lived = time.monotonic() - started.pop(pid, time.monotonic())
        if on_worker_exit is not None:
            on_worker_exit(pid)
        if stopping:
            continue
        how = crashloop.how_it_ended(os.waitstatus_to_exitcode(status))
        if pid in deadline.replacements_asked(replacements):  # retired by its watchdog: not a crash
            log.error("worker %d ended (%s) after %.1f s: replaced because a run() overran the time limit; "
                      "starting a new one", pid, how, lived)
            started[_fork_worker(app, sock, host, port, log_level, access_log)] = time.monotonic()
            continue
        # While the deaths repeat, a worker that lived long but never answered a score continues them.
        quick_deaths = quick_deaths + 1 if lived < QUICK_DEATH_SECONDS or (
            crashloop.state is not None and not crashloop.served()) else 0
        backoff = min(MAX_BACKOFF_SECONDS, max(0.5, backoff * 2)) if quick_deaths else 0.0
        log.error("worker %d ended (%s) after %.1f s: starting a new one%s", pid, how, lived,
                  f" in {backoff:.1f} s" if backoff else "")
        reason = crashloop.describe(quick_deaths, how, lived, QUICK_DEATH_SECONDS)
        looping = quick_deaths >= crashloop.CRASH_LOOP_DEATHS
        crashloop.state = crashloop.CrashLoop(reason) if looping else None
        crashloop.forget_served()
        until = time.monotonic() + backoff
        if backoff and not started:  # nothing accepts meanwhile: answer 503 with the reason, not silence
            crashloop.answer_while_down(sock, until, reason if looping else
                                        f"a worker ended ({how}) after {lived:.1f} s: a new one starts in "
                                        f"{backoff:.1f} s", looping, lambda: stopping)
        while not stopping and time.monotonic() < until:
            time.sleep(0.05)
        if not stopping:
            started[_fork_worker(app, sock, host, port, log_level, access_log)] = time.monotonic()
    return 0
