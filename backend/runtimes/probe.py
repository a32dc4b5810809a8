"""Asking a scoring server on 127.0.0.1 whether it is ready."""

from __future__ import annotations

import http.client


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
