"""Connections that hold a worker's slots and ask nothing: each must deliver a whole request head within
HEAD_SECONDS of its opening (or of its previous answer), else it gets a 408 and is closed.

uvicorn puts no time limit on a connection before its first request, nor on a head that trickles in
after a kept-alive answer (its keep-alive timer stops at the first byte), and counts every connection
toward the worker's limit: 1,500 silent or slowloris connections to a local deployment (no front in its
way) turned nearly every ordinary request into a 503, for as long as the attacker cared to hold them
(benchmarks/RESULTS.md, "connection attacks"). A deployment behind the front gets the same limit from
HAProxy (`timeout http-request`); this one holds wherever the server runs. One sweep a second per
worker reads a timestamp per connection: no timer per request.
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

HEAD_SECONDS = 10.0  # as the front's `timeout http-request`: a body keeps its own 60 s (bodies.py)
SWEEP_SECONDS = 1.0
_BODY = orjson.dumps({"error": f"the request's head (its line and headers) did not arrive within {HEAD_SECONDS:g} s",
                      "type": "RequestTimeout"})
TIMED_OUT = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
             b"content-length: %d\r\n\r\n%s" % (len(_BODY), _BODY))


class HeadDeadlineProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, whose connections are closed with a 408 when a request's head is
    HEAD_SECONDS overdue (see the module's docstring)."""

    awaited_since: float | None = None  # loop time from which a head is awaited; None while a request is in hand

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.awaited_since = self.loop.time()
        _sweep_on(self.loop, self.connections)

    def on_headers_complete(self) -> None:
        self.awaited_since = None
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.pipeline:  # the next head is awaited from now (a pipelined one arrived already)
            self.awaited_since = self.loop.time()


_sweeping: set[int] = set()  # the loops (by id) whose sweep runs: one per worker


def _sweep_on(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    if id(loop) not in _sweeping:
        _sweeping.add(id(loop))
        loop.call_later(SWEEP_SECONDS, _sweep, loop, connections)


def _sweep(loop: asyncio.AbstractEventLoop, connections: set[Any]) -> None:
    """Answers 408 to and closes every connection whose head is overdue, then comes back in a second."""
    overdue_from = loop.time() - HEAD_SECONDS
    for connection in list(connections):
        since = getattr(connection, "awaited_since", None)
        if since is not None and since < overdue_from:
            cycle = connection.cycle
            if cycle is not None and not cycle.response_complete:
                continue  # a request in hand (its head came): its body and run() have limits of their own
            connection.awaited_since = None
            transport = connection.transport
            if not transport.is_closing():
                transport.write(TIMED_OUT)
                transport.close()
    loop.call_later(SWEEP_SECONDS, _sweep, loop, connections)
