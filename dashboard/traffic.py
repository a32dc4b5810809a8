"""The Deploy page's Traffic section (the server's own counters, live) and its Load test form.

Snapshots of a deployment's /metrics are kept in the dashboard's process under its home and uid (shared by
every session, so a reload or a second tab shows the chart so far), so one deployment's numbers never
show under another's name and a redeploy under the same name starts empty. The chart refreshes
every REFRESH_SECONDS in a fragment; while a load test runs (it holds the script thread, so the fragment
timer waits), each second of the test reads /metrics too and redraws the same chart.
"""

from __future__ import annotations

from typing import Any

import streamlit as st

from backend.context import ModelDeck
from backend.errors import ModelDeckError
from backend.runtimes.base import Deployment, DeploymentState
from backend.services import kept
from backend.services.traffic import load_test, scrape_deployment
from backend.timefmt import friendly_time
from backend.traffic.interactive_charts import loadtest_chart, traffic_chart
from backend.traffic.loadtest import CONCURRENCY_RANGE, SECONDS_RANGE, LoadTestResult, LoadTestTick
from backend.traffic.metrics import ERROR_STATUS, TrafficSnapshot
from backend.traffic.window import TrafficHistory, points
from dashboard.cache import spec_of
from dashboard.common import fail, presenting, verbatim

REFRESH_SECONDS = 2.0
WINDOW_SECONDS = 300.0
ERRORS_HELP = (f"/score answers with HTTP status {ERROR_STATUS} or above: 4xx refusals (bad input, 401 without the "
               "key, 413 too large) and 5xx (the scoring script raised, or the server was overloaded)")


@st.cache_resource
def _history() -> TrafficHistory:
    return TrafficHistory(WINDOW_SECONDS, spacing=REFRESH_SECONDS / 2)


def _record(deck: ModelDeck, deployment: Deployment) -> tuple[TrafficSnapshot, tuple[TrafficSnapshot, ...]]:
    """/metrics read now, and the last WINDOW_SECONDS of snapshots of this deployment kept with it."""
    now = scrape_deployment(deck, deployment)
    return now, _history().add(f"{deck.home.id}/{deployment.record.uid or deployment.name}", now)


def compact_count(value: float) -> str:
    """A count that fits a narrow metric: 999, then 1.8k, then 1.2M (the exact count is in the help)."""
    return f"{value:,.0f}" if value < 1000 else f"{value / 1000:.1f}k" if value < 1_000_000 else f"{value / 1e6:.1f}M"


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}" if value < 10 else f"{value:.0f}"


def _draw(deck: ModelDeck, deployment: Deployment) -> None:
    try:
        now, snapshots = _record(deck, deployment)
    except ModelDeckError as e:
        fail(e, f"Cannot read the traffic of {deployment.name}")
        return
    requests, errors, rows = st.columns(3)  # two rows of three: six in one row cut "10.8k" to "10…"
    in_flight, p50, p99 = st.columns(3)
    requests.metric("Requests", compact_count(now.count()), help=f"POST /score answers since the server started: "
                    f"{int(now.count()):,}")
    errors.metric("Errors", compact_count(now.count(errors_only=True)), help=ERRORS_HELP)
    rows.metric("Rows", compact_count(now.rows_scored), help=f"rows scored (answered with 200): {int(now.rows_scored):,}")
    in_flight.metric("In flight", int(now.in_flight), help="requests being served now, every endpoint")
    for where, label, q in ((p50, "p50 (ms)", 0.5), (p99, "p99 (ms)", 0.99)):
        where.metric(label, _ms(now.latency_ms(q)), help="/score latency since the server started, estimated from "
                     "its histogram (to bucket resolution: 0.5, 0.75, 1, 1.5, 2, 3, 5, 7.5, 10, 25, 50 ms ...)")
    recent = points(snapshots)
    if recent:
        st.vega_lite_chart(spec=spec_of(traffic_chart(recent)), width="stretch")
        st.caption(f"The last {WINDOW_SECONDS / 60:.0f} minutes of /score, read from the server's /metrics every "
                   f"{REFRESH_SECONDS:g} s while this page is open. Errors: status {ERROR_STATUS} or above. Latency "
                   "per interval is an estimate to the histogram's bucket resolution. Drag to pan, scroll to zoom.")
    else:
        st.caption(f"The chart starts with the next reading, in {REFRESH_SECONDS:g} s.")


def traffic_section(deck: ModelDeck, deployment: Deployment, area: dict[str, Any]) -> None:
    """The live numbers and chart; `area["draw"]` redraws them (the load test calls it each second)."""

    @st.fragment(run_every=REFRESH_SECONDS)
    def live() -> None:
        box = st.empty()

        def redraw() -> None:
            with box.container():
                _draw(deck, deployment)

        area["draw"] = redraw
        redraw()

    live()


def _result_table(result: LoadTestResult) -> None:
    st.dataframe([{"requests/s": round(result.requests_per_second, 1), "p50 ms": round(result.p50_ms, 2),
                   "p90 ms": round(result.p90_ms, 2), "p99 ms": round(result.p99_ms, 2),
                   "max ms": round(result.max_ms, 2), "requests": result.requests, "errors": result.errors,
                   "clients": result.concurrency, "seconds": result.seconds}], hide_index=True, width="stretch")
    if result.errors_by_kind:
        st.caption("Errors: " + verbatim(", ".join(f"{n} {kind}" for kind, n in result.errors_by_kind)))


def loadtest_section(deck: ModelDeck, deployment: Deployment, area: dict[str, Any]) -> None:
    """The form; a run draws a live chart per second, then the table; the last result stays after a reload,
    and a run cut short by a reload keeps what ran (marked partial)."""
    with st.form("loadtest"):
        # one above the other: side by side in this narrow column, "Concurrent clients" broke mid-word
        seconds = st.number_input("Seconds", min_value=SECONDS_RANGE[0], max_value=SECONDS_RANGE[1], value=10,
                                    step=1)
        concurrency = st.number_input("Concurrent clients", min_value=CONCURRENCY_RANGE[0],
                                         max_value=CONCURRENCY_RANGE[1], value=8, step=1)
        run = st.form_submit_button("Run load test", icon=":material/speed:",
                                    help="Single-row requests of random test-set rows, each client on one kept-alive "
                                         "connection, to this machine only; the result is kept")
    result: LoadTestResult | None
    live = st.empty()
    if run:
        ticks: list[LoadTestTick] = []

        def tick(t: LoadTestTick) -> None:
            ticks.append(t)
            with live.container():
                st.caption(f"Second {t.second + 1} of {int(seconds)}: {t.requests} requests, {t.errors} errors")
                st.altair_chart(loadtest_chart(ticks, height=110), width="stretch")
            redraw = area.get("draw")
            if redraw is not None:
                redraw()

        try:
            result = load_test(deck, deployment.name, seconds=int(seconds), concurrency=int(concurrency),
                               progress=tick)
        except ModelDeckError as e:
            fail(e, "The load test did not run")
            return
        live.empty()
    else:
        result = kept.loadtest(deck, deployment)
        if result is None:  # in the live area, so a test's first second replaces it at once
            live.caption("No load test of this deployment yet.")
            return
    with live.container():  # the kept result too: a new test's first second replaces it, no faded copy lingers
        st.caption(f"Load test of {verbatim(result.deployment)}, {friendly_time(result.started_at)}: "
                   f"{result.seconds:.1f} s, "
                   f"{result.concurrency} clients" + (" (stopped at the request cap)" if result.capped else ""))
        if result.partial:
            st.warning(f"Partial result: {result.seconds:.0f} s of {result.asked_seconds} ran. The page was reloaded "
                       "or left while the test ran, which stops it; what ran so far is kept.",
                       icon=":material/hourglass_bottom:")
        st.altair_chart(loadtest_chart(result.timeline, height=110), width="stretch")
        _result_table(result)


def deployment_traffic(deck: ModelDeck, deployment: Deployment | None) -> None:
    """The Traffic and Load test sections of a deployment of this home, or why there are none."""
    st.subheader("Traffic")
    if deployment is None:
        return
    if deployment.state is not DeploymentState.HEALTHY or not deployment.scoring_uri:
        st.info(verbatim(f"{deployment.name} is {deployment.state}"
                         + (f": {deployment.detail}" if deployment.detail else "")
                         + ". Traffic and load tests need a Healthy deployment."), icon=":material/info:")
        return
    area: dict[str, Any] = {}
    if presenting():  # one above the other: beside the form, the large numbers had no room for three in a row
        chart, form = st.container(), st.container()
    else:
        chart, form = st.columns([3, 2], gap="large")
    with chart:
        traffic_section(deck, deployment, area)
    with form:
        st.markdown("**Load test**")
        loadtest_section(deck, deployment, area)
