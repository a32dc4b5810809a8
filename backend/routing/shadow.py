"""The shadow's record: for each request the proxy copied to an endpoint's shadow, the live answer (what the client
got, and from which deployment) and the shadow's, matched by the request id nginx gave both (its logs NAME.live.log
and NAME.shadow.log, one JSON object a line). Kept bounded: a log past MAX_LOG_BYTES is moved aside (the one moved
before is dropped) and nginx reopens its logs; the last MAX_COMPARED matched requests are compared."""

from __future__ import annotations

import json
import os
import signal
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

from .nginx import LIVE_LOG, SHADOW_LOG, private_file

MAX_COMPARED = 10_000  # requests per endpoint
MAX_LOG_BYTES = 64 * 2**20  # a log moved aside past this (bodies are logged on the shadow's side)
LATEST = 12  # disagreements kept to show


@dataclass(frozen=True)
class Disagreement:
    """One copied request the two answered differently: its id, who answered the client and what, what the shadow
    said, and the request's body as the shadow got it (b"" when it was too large to log)."""

    request_id: str
    live_deployment: str
    live: str
    shadow: str
    body: bytes


@dataclass(frozen=True)
class ShadowRecord:
    """What the shadow said against the live deployments, on the last `compared` requests both answered with 200.

    Attributes:
        failed: copied requests not compared because a side answered with another status than 200.
        unlogged: copied requests both answered with 200 but not compared: a side gave no answer the proxy logs
            (a request other than POST /score, or a server made before its answers were repeated for the proxy).
        pending: requests copied whose other side is not logged yet (in flight, or just before a log moved aside).
    """

    compared: int
    agreeing: int
    failed: int
    pending: int
    latest: tuple[Disagreement, ...]
    unlogged: int = 0

    @property
    def agreement(self) -> float | None:
        return self.agreeing / self.compared if self.compared else None


def _lines(path: Path) -> list[dict[str, str]]:
    found = []
    for older in (path.with_name(path.name + ".1"), path):
        try:
            text = older.read_text(errors="replace")
        except OSError:
            continue
        for line in text.splitlines():
            try:
                entry = json.loads(line)
            except ValueError:
                continue  # a line cut by a log moved aside mid-write
            if isinstance(entry, dict) and "id" in entry:
                found.append(entry)
    return found


def read_record(folder: Path, endpoint: str) -> ShadowRecord:
    """The comparison of the endpoint's shadow with its live answers. Reads only."""
    live = OrderedDict((e["id"], e) for e in _lines(folder / (endpoint + LIVE_LOG)))
    shadow = OrderedDict((e["id"], e) for e in _lines(folder / (endpoint + SHADOW_LOG)))
    both = [request_id for request_id in shadow if request_id in live][-MAX_COMPARED:]
    compared = agreeing = failed = unlogged = 0
    disagreements: list[Disagreement] = []
    for request_id in both:
        a, b = live[request_id], shadow[request_id]
        if a.get("status") != "200" or b.get("status") != "200":
            failed += 1
            continue
        if not a.get("answer") or not b.get("answer"):
            unlogged += 1
            continue
        compared += 1
        if a.get("answer") == b.get("answer"):
            agreeing += 1
        else:
            disagreements.append(Disagreement(request_id, str(a.get("who", "")), str(a.get("answer", "")),
                                              str(b.get("answer", "")), str(b.get("body", "")).encode()))
    pending = len(set(live).symmetric_difference(shadow))
    return ShadowRecord(compared, agreeing, failed, pending, tuple(disagreements[-LATEST:]), unlogged)


def bound_logs(folder: Path, endpoint: str, master: int | None) -> None:
    """Moves a log of the endpoint past MAX_LOG_BYTES aside (dropping the one moved before) and has nginx reopen its
    logs (`master`: its pid), so the record stays bounded."""
    moved = False
    for name in (endpoint + LIVE_LOG, endpoint + SHADOW_LOG):
        path = folder / name
        try:
            if path.stat().st_size > MAX_LOG_BYTES:
                os.replace(path, path.with_name(path.name + ".1"))
                private_file(path)  # the new one as private as the old
                moved = True
        except OSError:
            continue
    if moved and master is not None:
        os.kill(master, signal.SIGUSR1)  # nginx reopens its logs
