"""The shadow's record: for each request the proxy copied to an endpoint's shadow, the live answer (what the client
got, and from which deployment) and the shadow's, matched by the request id nginx gave both (its logs NAME.live.log
and NAME.shadow.log, one JSON object a line; the copies' bodies apart in NAME.bodies.log, of which only the tail is
read, for the latest disagreements). Kept bounded: a log past MAX_LOG_BYTES is moved aside (the one moved before is
dropped) and nginx reopens its logs; the last MAX_COMPARED matched requests are compared."""

from __future__ import annotations

import json
import os
import signal
from collections import OrderedDict
from dataclasses import dataclass, replace
from pathlib import Path

from .nginx import BODY_LOG, LIVE_LOG, SHADOW_LOG, SHADOW_LOGS, private_file

MAX_COMPARED = 10_000  # requests per endpoint
MAX_LOG_BYTES = 16 * 2**20  # a log moved aside past this (an answer's line is about 100 bytes; a body's, kilobytes)
BODY_TAIL_BYTES = 4 * 2**20  # the end of the bodies' log read for the latest disagreements
LATEST = 12  # disagreements kept to show


@dataclass(frozen=True)
class Disagreement:
    """One copied request the two answered differently: its id, who answered the client and what, what the shadow
    said, and the request's body as the shadow got it (b"" when it was too large to log, or no longer kept)."""

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
                                              str(b.get("answer", "")), b""))
    latest = disagreements[-LATEST:]
    bodies = _bodies(folder / (endpoint + BODY_LOG), {d.request_id for d in latest}) if latest else {}
    latest = [replace(d, body=bodies.get(d.request_id, b"")) for d in latest]
    pending = len(set(live).symmetric_difference(shadow))
    return ShadowRecord(compared, agreeing, failed, pending, tuple(latest), unlogged)


def _bodies(path: Path, wanted: set[str]) -> dict[str, bytes]:
    """The logged bodies of the requests `wanted`, from the end of the bodies' log (older ones are not shown)."""
    try:
        with path.open("rb") as log:
            log.seek(max(0, log.seek(0, os.SEEK_END) - BODY_TAIL_BYTES))
            tail = log.read()
    except OSError:
        return {}
    found = {}
    for line in tail.splitlines()[1:] if len(tail) == BODY_TAIL_BYTES else tail.splitlines():  # the first may be cut
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and entry.get("id") in wanted:
            found[str(entry["id"])] = str(entry.get("body", "")).encode()
    return found


def bound_logs(folder: Path, endpoint: str, master: int | None) -> None:
    """Moves a log of the endpoint past MAX_LOG_BYTES aside (dropping the one moved before) and has nginx reopen its
    logs (`master`: its pid), so the record stays bounded."""
    moved = False
    for log in SHADOW_LOGS:
        path = folder / (endpoint + log)
        try:
            if path.stat().st_size > MAX_LOG_BYTES:
                os.replace(path, path.with_name(path.name + ".1"))
                private_file(path)  # the new one as private as the old
                moved = True
        except OSError:
            continue
    if moved and master is not None:
        os.kill(master, signal.SIGUSR1)  # nginx reopens its logs
