"""The load generator: asyncio clients, each on one kept-alive HTTP/1.1 connection, for a bounded time.

Requests are pre-built bytes and answers are parsed by hand (status line and Content-Length only):
the cheapest way to make many requests from one Python process, so the generator takes as little of
the machine's CPU from the server as it can.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field

from .loadresult import Progress, Tallies

DRAIN_SECONDS = 10.0  # requests still unanswered this long after the end count as timeouts
RECONNECT_PAUSE = 0.05  # after a failed connection, so a dead server is not hammered in a tight loop


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
class LoadRun:
    """One load test: `concurrency` clients sending `requests` in turn for `seconds` (or until
    `max_requests`); `run(progress)` passes each finished second's tick. `running = False` stops it
    early, from any thread."""

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


def new_loop() -> asyncio.AbstractEventLoop:
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
