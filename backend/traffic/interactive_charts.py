"""Altair charts of traffic: the live window of a deployment, and a load test second by second."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import altair as alt

from .loadtest import LoadTestTick
from .window import TrafficPoint

RATES = ("requests/s", "errors/s", "rows/s")
LATENCIES = ("p50 ms", "p99 ms")
# Errors red; rows/s dashed, so it shows where it lies on requests/s (single-row traffic)
COLORS = {"requests/s": "#1f77b4", "errors/s": "#d62728", "rows/s": "#7f7f7f", "p50 ms": "#1f77b4",
          "p99 ms": "#ff7f0e"}


def _panels(rows: list[dict[str, Any]], x: alt.X, x_tooltip: alt.Tooltip, rates: Sequence[str],
            height: int) -> alt.VConcatChart:
    """Two panels over one x (zoom and pan together): rates above, latency below."""
    zoom = alt.selection_interval(bind="scales", encodings=["x"])

    def panel(series: Sequence[str], title: str) -> alt.Chart:
        # An interval without requests has no latency (null): the line breaks there instead of sloping across
        return alt.Chart(alt.Data(values=rows)).mark_line(point=alt.OverlayMarkDef(size=18),
                                                          invalid="break-paths-filter-domains").encode(
            x=x, y=alt.Y("value:Q", title=title, axis=alt.Axis(format=",.4~r")),  # "0" and "150", not "0.000000" or "1.5e+2"
            color=alt.Color("series:N", title=None, legend=alt.Legend(orient="top"),
                            scale=alt.Scale(domain=list(series), range=[COLORS[s] for s in series])),
            strokeDash=alt.condition("datum.series == 'rows/s'", alt.value([5, 3]), alt.value([1, 0])),
            tooltip=[x_tooltip, alt.Tooltip("series:N", title="what"), alt.Tooltip("value:Q", format=",.2f")],
        ).transform_filter(alt.FieldOneOfPredicate(field="series", oneOf=list(series))).properties(height=height)

    top = panel(rates, "per second").add_params(zoom)
    bottom = panel(LATENCIES, "latency (ms)")
    return alt.vconcat(top, bottom).resolve_scale(x="shared", color="independent")


def traffic_chart(points: Sequence[TrafficPoint], height: int = 150) -> alt.VConcatChart:
    """Requests/s, errors/s and rows/s above, p50 and p99 latency below, over time."""
    rows: list[dict[str, Any]] = []
    for p in points:
        at = datetime.fromtimestamp(p.at, UTC).isoformat()
        rows += [{"time": at, "series": s, "value": v} for s, v in zip(
            RATES + LATENCIES, (p.requests_per_second, p.errors_per_second, p.rows_per_second, p.p50_ms, p.p99_ms),
            strict=True)]
    return _panels(rows, alt.X("time:T", title=None, axis=alt.Axis(format="%H:%M:%S", labelFlush=True)),
                   alt.Tooltip("time:T", format="%H:%M:%S", title="at"), RATES, height)


def loadtest_chart(ticks: Sequence[LoadTestTick], height: int = 150) -> alt.VConcatChart:
    """A load test's requests/s and errors/s above, its p50 and p99 latency below, per second."""
    rows: list[dict[str, Any]] = []
    for t in ticks:
        rows += [{"second": t.second + 1, "series": s, "value": v} for s, v in zip(
            ("requests/s", "errors/s") + LATENCIES, (t.requests, t.errors, t.p50_ms, t.p99_ms), strict=True)]
    return _panels(rows, alt.X("second:Q", title="second", axis=alt.Axis(tickMinStep=1, format="d")),
                   alt.Tooltip("second:Q"), ("requests/s", "errors/s"), height)
