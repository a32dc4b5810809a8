"""Ports on 127.0.0.1: a free one for a new deployment, and whether a scoring server there is ready."""

from __future__ import annotations

import http.client
import json
import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (another process may still take it before it is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def readiness(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> tuple[bool, str | None]:
    """(ready, why it failed) from GET /ready on host:port: (True, None) on 200; (False, reason) when
    the server says its init() failed or its workers keep dying (a crash loop); (False, None) while
    nothing (or not yet) answers."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/ready")
        response = conn.getresponse()
        if response.status == 200:
            return True, None
        try:
            said = json.loads(response.read(8192))
            failed = f"{said['init_failed']} (the traceback is in the logs)" if said.get("init_failed") \
                else said.get("crash_loop")
        except (ValueError, AttributeError, TypeError):
            failed = None
        return False, str(failed) if failed else None
    except (OSError, http.client.HTTPException):
        return False, None
    finally:
        conn.close()

