"""Successive snapshots turned into per-interval points: rates and latency over each interval."""

from __future__ import annotations

import threading
from collections.abc import Sequence
from dataclasses import dataclass

from .metrics import TrafficSnapshot, histogram_quantile


@dataclass(frozen=True)
class TrafficPoint:
    """/score's traffic between two snapshots.

    Attributes:
        at: the end of the interval (seconds since the epoch); seconds: its length.
        requests_per_second, errors_per_second (status >= 400), rows_per_second.
        p50_ms, p99_ms: latency over the interval, estimated from histogram bucket deltas (to bucket
            resolution); None when no request ended in it.
    """

    at: float
    seconds: float
    requests_per_second: float
    errors_per_second: float
    rows_per_second: float
    p50_ms: float | None
    p99_ms: float | None


def _delta(before: float, after: float) -> float:
    """A counter's increase; a counter that went down was reset (the server restarted): count from 0."""
    return after - before if after >= before else after


def between(before: TrafficSnapshot, after: TrafficSnapshot) -> TrafficPoint:
    """The point for the interval from `before` to `after` (an interval <= 0 s counts as 1 ms)."""
    seconds = max(after.at - before.at, 1e-3)
    reset = after.count() < before.count() or after.rows_scored < before.rows_scored
    old = {bound: n for bound, n in before.score_buckets}
    buckets = tuple((bound, n if reset else _delta(old.get(bound, 0.0), n)) for bound, n in after.score_buckets)
    requests = after.count() if reset else _delta(before.count(), after.count())
    errors = after.count(errors_only=True) if reset else _delta(before.count(errors_only=True),
                                                                after.count(errors_only=True))
    rows = after.rows_scored if reset else _delta(before.rows_scored, after.rows_scored)
    return TrafficPoint(after.at, seconds, requests / seconds, errors / seconds, rows / seconds,
                        histogram_quantile(0.5, buckets), histogram_quantile(0.99, buckets))


def points(snapshots: Sequence[TrafficSnapshot]) -> tuple[TrafficPoint, ...]:
    """One point per pair of successive snapshots (none for fewer than two)."""
    return tuple(between(a, b) for a, b in zip(snapshots, snapshots[1:], strict=False))


def keep_recent(snapshots: Sequence[TrafficSnapshot], newest: TrafficSnapshot,
                seconds: float = 300.0) -> tuple[TrafficSnapshot, ...]:
    """`snapshots` with `newest` added and those older than `seconds` before it dropped."""
    return tuple(s for s in (*snapshots, newest) if s.at >= newest.at - seconds)


class TrafficHistory:
    """The recent snapshots of each watched deployment, by key, shared by whoever reads them (the
    dashboard keeps one per process, so a reload or a second tab shows the chart so far). Thread-safe;
    keeps `seconds` of snapshots per key, at least `spacing` seconds apart (several readers do not make
    the intervals short and jumpy), and at most `keys` keys, the least recently read going first."""

    def __init__(self, seconds: float = 300.0, keys: int = 64, spacing: float = 1.0) -> None:
        self.seconds, self.keys, self.spacing = seconds, keys, spacing
        self._kept: dict[str, tuple[TrafficSnapshot, ...]] = {}
        self._lock = threading.Lock()

    def add(self, key: str, newest: TrafficSnapshot) -> tuple[TrafficSnapshot, ...]:
        """The snapshots of `key` with `newest` added (unless it is less than `spacing` after the last:
        another reader's came just before) and those older than `seconds` before it dropped."""
        with self._lock:
            kept = self._kept.pop(key, ())
            if not kept or newest.at >= kept[-1].at + self.spacing:
                kept = keep_recent(kept, newest, self.seconds)
            self._kept[key] = kept  # last in the dict: the most recently read
            while len(self._kept) > self.keys:
                del self._kept[next(iter(self._kept))]
            return kept
