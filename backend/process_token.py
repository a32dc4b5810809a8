"""A token naming this process (the maker of a deployment), and whether the process a token names still
runs. A deploy interrupted half-way (the CLI or dashboard killed) leaves a container or folder whose
maker is gone: runtimes then show it as Failed ("interrupted") instead of Transitioning forever."""

from __future__ import annotations

import os
import socket
from pathlib import Path

UNKNOWN_AFTER_SECONDS = 600.0  # a maker on another machine cannot be asked: give it this long


def _start_time(pid: int) -> str | None:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rsplit(")", 1)[1].split()
    return None if fields[0] in ("Z", "X") else fields[19]  # field 22 of stat: start time since boot


def creator_token() -> str:
    """`host:pid:start time` of this process (the start time tells a reused pid apart)."""
    return f"{socket.gethostname()}:{os.getpid()}:{_start_time(os.getpid()) or '?'}"


def creator_gone(token: str, age_seconds: float) -> bool:
    """True when the process named by `token` no longer runs (on another host: after a long while)."""
    host, _, rest = token.partition(":")
    pid, _, started = rest.partition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return age_seconds > UNKNOWN_AFTER_SECONDS
    return _start_time(int(pid)) != started
