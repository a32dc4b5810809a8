"""Serving on one listening socket with N worker processes, forked after init().

Forking after the model is loaded shares its memory between workers (copy-on-write) and keeps
"the port answers" meaning "init() succeeded". The parent forwards SIGTERM/SIGINT to the workers;
if a worker dies on its own, the parent stops the others and exits 1, so the runtime's restart
policy brings the whole server back.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import sys

log = logging.getLogger("modeldeck.serving")
BIND_FAILED_EXIT_CODE = 4
MAX_CONCURRENCY = 256  # open connections + requests per worker


def bind(host: str, port: int) -> socket.socket:
    # proto must say TCP: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP, and
    # without it Nagle + delayed ACK add ~40 ms to every request on a kept-alive connection.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def _run_worker(app, sock: socket.socket, host: str, port: int) -> None:
    import uvicorn

    # "auto" takes uvloop and httptools (C event loop and HTTP parser) when installed, as they are here.
    # limit_concurrency: past that many open connections and requests a worker answers 503 at once,
    # so a flood of slow or idle connections cannot pile up memory.
    config = uvicorn.Config(app, host=host, port=port, log_level="info", timeout_graceful_shutdown=5,
                            loop="auto", http="auto", limit_concurrency=MAX_CONCURRENCY)
    uvicorn.Server(config).run(sockets=[sock])


def serve(app, host: str, port: int, workers: int = 1) -> int:
    """Serves `app` on host:port with `workers` processes; returns the exit code."""
    try:
        sock = bind(host, port)
    except OSError as e:
        print(f"modeldeck serving: cannot listen on {host}:{port}: {e}", file=sys.stderr, flush=True)
        return BIND_FAILED_EXIT_CODE
    print(f"modeldeck serving: listening on {host}:{port} with {max(1, workers)} worker(s)", file=sys.stderr,
          flush=True)
    if workers <= 1:
        _run_worker(app, sock, host, port)
        return 0
    children: set[int] = set()
    for _ in range(workers):
        pid = os.fork()
        if pid == 0:
            code = 0
            try:
                _run_worker(app, sock, host, port)
            except BaseException:
                code = 1
            os._exit(code)
        children.add(pid)
    log.info("serving with %d worker processes: %s", workers, sorted(children))
    stopping = False

    def stop(signum, _frame) -> None:
        nonlocal stopping
        stopping = True
        for child in children:
            try:
                os.kill(child, signal.SIGTERM)
            except ProcessLookupError:
                pass

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    exit_code = 0
    while children:
        try:
            pid, status = os.wait()
        except ChildProcessError:
            break
        children.discard(pid)
        if not stopping:
            log.error("worker %d ended (status %d): stopping the server so it restarts whole", pid, status)
            exit_code = 1
            stop(signal.SIGTERM, None)
    return exit_code
