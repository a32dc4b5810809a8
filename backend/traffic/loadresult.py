"""What a load test measured: per-second tallies while it runs, and the result kept afterwards (pure)."""

from __future__ import annotations

from array import array
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np


@dataclass(frozen=True)
class LoadTestTick:
    """One second of a load test: requests answered in it (so also its req/s), errors, latency."""

    second: int
    requests: int
    errors: int
    p50_ms: float
    p99_ms: float


@dataclass(frozen=True)
class LoadTestResult:
    """What a load test measured. Latency is over the requests the server answered (any status), in ms;
    `seconds` is the time it ran; `errors_by_kind` names each kind ("HTTP 500", "connection refused")."""

    deployment: str
    deployment_uid: str
    seconds: float
    concurrency: int
    requests: int
    errors: int
    requests_per_second: float
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    started_at: str
    timeline: tuple[LoadTestTick, ...]
    errors_by_kind: tuple[tuple[str, int], ...] = ()
    asked_seconds: int = 0
    capped: bool = False  # stopped at MAX_REQUESTS before its seconds were up
    partial: bool = False  # what ran so far: kept each second, and when the run was cut short (say, a reload)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["timeline"] = [asdict(tick) for tick in self.timeline]
        data["errors_by_kind"] = dict(self.errors_by_kind)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> LoadTestResult:
        fields = {**data, "timeline": tuple(LoadTestTick(**tick) for tick in data.get("timeline", ())),
                  "errors_by_kind": tuple((str(k), int(n)) for k, n in dict(data.get("errors_by_kind", {})).items())}
        return cls(**{k: v for k, v in fields.items() if k in cls.__dataclass_fields__})


Progress = Callable[[LoadTestTick], None]
Keep = Callable[[LoadTestResult], None]


def percentiles(values: Sequence[float] | np.ndarray, qs: Sequence[float]) -> tuple[float, ...]:
    """The qs-th percentiles (0..100) of `values`, linear between closest ranks; 0.0 each when empty."""
    if len(values) == 0:
        return tuple(0.0 for _ in qs)
    return tuple(float(v) for v in np.percentile(np.asarray(values, dtype=np.float64), list(qs)))



@dataclass
class Tallies:
    """Per-second tallies while a test runs (only the event loop's thread writes them)."""

    latencies: list[array] = field(default_factory=list)  # ms of each answered request, per second
    errors: list[int] = field(default_factory=list)  # non-2xx answers and connection failures, per second
    failures: list[int] = field(default_factory=list)  # connection failures alone (they have no latency)
    kinds: Counter[str] = field(default_factory=Counter)
    total: int = 0

    def _slot(self, second: int) -> None:
        while len(self.errors) <= second:
            self.latencies.append(array("d"))
            self.errors.append(0)
            self.failures.append(0)

    def answered(self, second: int, latency_ms: float, status: int) -> None:
        self._slot(second)
        self.latencies[second].append(latency_ms)
        self.total += 1
        if not 200 <= status < 300:
            self.errors[second] += 1
            self.kinds[f"HTTP {status}"] += 1

    def failed(self, second: int, kind: str) -> None:
        self._slot(second)
        self.errors[second] += 1
        self.failures[second] += 1
        self.kinds[kind] += 1
        self.total += 1

    def copy(self) -> Tallies:
        """A copy to read while the event loop's thread goes on writing the original."""
        return Tallies([array("d", a) for a in list(self.latencies)], list(self.errors), list(self.failures),
                       Counter(self.kinds), self.total)

    def tick(self, second: int) -> LoadTestTick:
        self._slot(second)
        p50, p99 = percentiles(self.latencies[second], (50, 99))
        return LoadTestTick(second, len(self.latencies[second]) + self.failures[second], self.errors[second],
                            p50, p99)


def summarize(tallies: Tallies, *, deployment: str, deployment_uid: str, started_at: str, seconds: float,
              asked_seconds: int, concurrency: int, capped: bool, partial: bool = False) -> LoadTestResult:
    """The result from per-second tallies (pure)."""
    timeline = tuple(tallies.tick(s) for s in range(len(tallies.errors)))
    everything = np.concatenate([np.frombuffer(a, dtype=np.float64) for a in tallies.latencies]) \
        if tallies.latencies else np.zeros(0)
    p50, p90, p99 = percentiles(everything, (50, 90, 99))
    return LoadTestResult(
        deployment=deployment, deployment_uid=deployment_uid, seconds=round(seconds, 3), concurrency=concurrency,
        requests=tallies.total, errors=sum(tallies.kinds.values()),
        requests_per_second=tallies.total / seconds if seconds > 0 else 0.0,
        p50_ms=p50, p90_ms=p90, p99_ms=p99, max_ms=float(everything.max()) if everything.size else 0.0,
        started_at=started_at, timeline=timeline, errors_by_kind=tuple(sorted(tallies.kinds.items())),
        asked_seconds=asked_seconds, capped=capped, partial=partial)
