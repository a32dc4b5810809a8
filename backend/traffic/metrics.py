"""A deployment's /metrics read into a TrafficSnapshot: its cumulative counters at one moment."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

from ..client import ScoringClient
from ..errors import MetricsUnavailableError

SCORE_ENDPOINT = "/score"
ERROR_STATUS = 400  # answers with this status or above count as errors (4xx refusals and 5xx faults)


@dataclass(frozen=True)
class TrafficSnapshot:
    """A scoring server's counters since it started, as read at `at`.

    Attributes:
        at: when it was read (seconds since the epoch).
        requests: (endpoint, HTTP status, count) for every endpoint the server counted.
        rows_scored: rows /score answered with 200.
        in_flight: requests being served when read.
        score_buckets: /score's latency histogram: (upper bound in seconds, cumulative count), +inf last.
    """

    at: float
    requests: tuple[tuple[str, int, float], ...]
    rows_scored: float
    in_flight: float
    score_buckets: tuple[tuple[float, float], ...]

    def count(self, endpoint: str = SCORE_ENDPOINT, *, errors_only: bool = False) -> float:
        """Requests to `endpoint` (only those answered with status >= 400 with `errors_only`)."""
        return sum(n for e, status, n in self.requests
                   if e == endpoint and (not errors_only or status >= ERROR_STATUS))

    def by_status(self, endpoint: str = SCORE_ENDPOINT) -> dict[int, int]:
        return {status: int(n) for e, status, n in sorted(self.requests) if e == endpoint}

    def latency_ms(self, q: float) -> float | None:
        """The q-quantile of /score's latency since start, in ms: an estimate to bucket resolution."""
        return histogram_quantile(q, self.score_buckets)


def histogram_quantile(q: float, buckets: tuple[tuple[float, float], ...]) -> float | None:
    """The q-quantile (0..1), in ms, of a cumulative histogram of seconds, as Prometheus estimates it:
    linear within the bucket holding the rank (the highest finite bound when the rank is in +inf).
    None when the histogram counts nothing."""
    if not buckets or buckets[-1][1] <= 0:
        return None
    rank = q * buckets[-1][1]
    lower, below = 0.0, 0.0
    for bound, cumulative in buckets:
        if cumulative >= rank and cumulative > below:
            if math.isinf(bound):
                return lower * 1000
            return (lower + (bound - lower) * (rank - below) / (cumulative - below)) * 1000
        lower, below = bound, cumulative
    return lower * 1000


def parse_metrics(text: str, at: float) -> TrafficSnapshot:
    """A snapshot from a scoring server's Prometheus text.

    Raises:
        MetricsUnavailableError: the text is not Prometheus's format, or not a ModelDeck server's.
    """
    from prometheus_client.parser import text_string_to_metric_families  # here: most commands never parse

    requests: list[tuple[str, int, float]] = []
    rows = in_flight = None
    buckets: list[tuple[float, float]] = []
    try:
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == "modeldeck_requests_total":
                    requests.append((sample.labels["endpoint"], int(sample.labels["status"]), sample.value))
                elif sample.name == "modeldeck_rows_scored_total":
                    rows = sample.value
                elif sample.name == "modeldeck_requests_in_flight":
                    in_flight = sample.value
                elif (sample.name == "modeldeck_request_duration_seconds_bucket"
                      and sample.labels.get("endpoint") == SCORE_ENDPOINT):
                    buckets.append((float(sample.labels["le"]), sample.value))
    except (ValueError, KeyError, TypeError) as e:
        raise MetricsUnavailableError(f"/metrics is not Prometheus text ({type(e).__name__}: {e})") from e
    if rows is None or in_flight is None:
        raise MetricsUnavailableError("/metrics does not have ModelDeck's counters: is this a ModelDeck scoring server?")
    return TrafficSnapshot(at, tuple(sorted(requests)), rows, in_flight, tuple(sorted(buckets)))


def scrape(client: ScoringClient, scoring_uri: str, key: str | None = None) -> TrafficSnapshot:
    """Reads the deployment's /metrics now.

    Raises:
        EndpointUnreachableError: nothing answers. MetricsUnavailableError: /metrics refused or unreadable.
    """
    text = client.metrics(scoring_uri, key=key)
    return parse_metrics(text, time.time())
