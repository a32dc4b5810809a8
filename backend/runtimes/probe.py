"""Ports on 127.0.0.1: a free one for a new deployment, and whether a scoring server there is ready."""

from __future__ import annotations

import http.client
import socket


def free_port(host: str = "127.0.0.1") -> int:
    """A port nothing listens on now (another process may still take it before it is bound)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


def is_ready(port: int, host: str = "127.0.0.1", timeout: float = 1.0) -> bool:
    """True when GET /ready on host:port answers 200."""
    conn = http.client.HTTPConnection(host, port, timeout=timeout)
    try:
        conn.request("GET", "/ready")
        return conn.getresponse().status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()
