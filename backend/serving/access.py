"""The access log: one line per answered HTTP request, as uvicorn's access log wrote it
(`INFO:     127.0.0.1:52114 - "POST /score HTTP/1.1" 200 OK`), written straight to a stream.

uvicorn's own went through the logging module (caller lookup, a LogRecord, two copies of it in its
formatter, a lock): ~20 µs a line measured here, 13 % of a single-row request's time in the profile
(benchmarks/profile-score-before.svg). This writes the same line for ~2 µs. Probes and metrics scrapes
stay out of it, so the log shows real traffic.

Over a unix socket the peer has no address: the front (ModelDeck's HAProxy, the only one reaching a
Docker deployment's socket) puts the client's in FORWARDED_HEADER, and the line shows that. Over TCP
the header is ignored: there any client could have written it.
"""

from __future__ import annotations

import http
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, TextIO
from urllib.parse import quote

QUIET_PATHS = frozenset({"/ready", "/health", "/metrics"})  # probes and scrapes: not logged
FORWARDED_HEADER = b"x-modeldeck-client"  # the front's (backend/runtimes/front.py CLIENT_HEADER), lowercase

Message = MutableMapping[str, Any]
Scope = MutableMapping[str, Any]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Callable[[], Awaitable[Message]], Send], Awaitable[None]]


def _forwarded(scope: Scope) -> str:
    """The client address the front wrote in FORWARDED_HEADER ("" without one), printable ASCII only. The
    front sets it last: looked for from the end."""
    for name, value in reversed(scope.get("headers", ())):
        if name == FORWARDED_HEADER:
            text = value[:64].decode("ascii", "replace")
            return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return ""


def _status_text(status: int) -> str:
    try:
        return f"{status} {http.HTTPStatus(status).phrase}"
    except ValueError:
        return f"{status} "


class AccessLog:
    """Writes access lines to `stream`, flushed line by line. Call on the event loop."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self._statuses: dict[int, str] = {}
        self._paths: dict[str, str] = {}

    def write(self, scope: Scope, status: int) -> None:
        """The line of one request, unless its path is a probe's or a scrape's."""
        path = scope["path"]
        if path in QUIET_PATHS:
            return
        status_text = self._statuses.get(status)
        if status_text is None:
            status_text = self._statuses[status] = _status_text(status)
        quoted = self._paths.get(path)
        if quoted is None:
            quoted = quote(scope.get("root_path", "") + path)
            if len(self._paths) < 64:  # the known endpoints; a scanner's odd paths are not kept
                self._paths[path] = quoted
        query = scope.get("query_string")
        if query:
            quoted = f"{quoted}?{query.decode('ascii', 'replace')}"
        client = scope.get("client")
        address = f"{client[0]}:{client[1]}" if client else _forwarded(scope)  # none: a unix socket
        self.stream.write(f'INFO:     {address} - "{scope["method"]} {quoted} HTTP/{scope["http_version"]}" '
                          f"{status_text}\n")
        self.stream.flush()
