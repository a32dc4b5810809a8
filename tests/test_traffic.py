"""Live traffic (/metrics, snapshots, per-interval points) and the load test: pure logic, then real servers."""

import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
import requests

from backend.data.builtin import load_mnist_test
from backend.errors import EndpointUnreachableError, LoadTestRefusedError, MetricsUnavailableError
from backend.runtimes import DeployConfig
from backend.services.traffic import load_test, scrape_deployment
from backend.traffic.loadtest import (
    LoadTestResult,
    LoadTestTick,
    Tallies,
    check_bounds,
    local_target,
    percentiles,
    request_bodies,
    run_load_test,
    summarize,
)
from backend.traffic.metrics import TrafficSnapshot, histogram_quantile, parse_metrics, scrape
from backend.traffic.window import TrafficHistory, between, keep_recent, points

INF = float("inf")
BUCKETS = ((0.001, 0.0), (0.002, 50.0), (0.005, 90.0), (0.01, 100.0), (INF, 100.0))


def snapshot(at, ok, errors=0, rows=None, buckets=BUCKETS):
    return TrafficSnapshot(at, (("/health", 200, 7.0), ("/score", 200, float(ok)), ("/score", 500, float(errors))),
                           float(ok if rows is None else rows), 0.0, buckets)


# --- pure -------------------------------------------------------------------------------------------

def test_histogram_quantiles_interpolate_within_the_bucket_holding_the_rank():
    assert histogram_quantile(0.5, BUCKETS) == pytest.approx(2.0)  # rank 50 is the top of the 2 ms bucket
    assert histogram_quantile(0.25, BUCKETS) == pytest.approx(1.5)  # halfway through 1..2 ms
    assert histogram_quantile(0.95, BUCKETS) == pytest.approx(7.5)  # halfway through 5..10 ms
    assert histogram_quantile(0.99, ((0.001, 0.0), (INF, 10.0))) == pytest.approx(1.0)  # in +inf: the top bound
    assert histogram_quantile(0.5, ((0.001, 0.0), (INF, 0.0))) is None


def test_a_point_is_the_rates_and_latency_of_its_interval_only():
    before = snapshot(100.0, 1000, errors=3, buckets=((0.001, 0.0), (0.002, 1000.0), (0.005, 1000.0), (INF, 1000.0)))
    after = snapshot(102.0, 1200, errors=7, rows=1300,
                     buckets=((0.001, 0.0), (0.002, 1000.0), (0.005, 1204.0), (INF, 1204.0)))
    point = between(before, after)
    assert point.seconds == 2.0 and point.at == 102.0
    assert point.requests_per_second == pytest.approx(102.0)  # (1200 + 7 - 1000 - 3) / 2, /health not counted
    assert point.errors_per_second == pytest.approx(2.0)
    assert point.rows_per_second == pytest.approx(150.0)
    assert 2.0 < point.p50_ms < 5.0 and point.p99_ms <= 5.0  # every new request took 2..5 ms


def test_a_restarted_server_counts_from_zero_and_an_idle_interval_has_no_latency():
    restarted = between(snapshot(0.0, 5000), snapshot(1.0, 30, buckets=((0.002, 30.0), (INF, 30.0))))
    assert restarted.requests_per_second == 30.0 and restarted.p50_ms is not None
    idle = between(snapshot(0.0, 10), snapshot(2.0, 10))
    assert idle.requests_per_second == 0.0 and idle.p50_ms is None and idle.p99_ms is None


def test_points_pair_successive_snapshots_and_the_window_keeps_the_recent_ones():
    kept = ()
    for at in range(0, 400, 2):
        kept = keep_recent(kept, snapshot(float(at), at * 10), seconds=300)
    assert kept[0].at == 98.0 and kept[-1].at == 398.0
    assert len(points(kept)) == len(kept) - 1 and points(kept[:1]) == ()
    assert all(p.requests_per_second == pytest.approx(10.0) for p in points(kept))


def test_the_shared_history_keeps_each_keys_window_in_order_and_forgets_the_least_recently_read_key():
    history = TrafficHistory(seconds=10, keys=2, spacing=1.0)
    assert history.add("a", snapshot(0.0, 0)) == (snapshot(0.0, 0),)
    assert [s.at for s in history.add("a", snapshot(2.0, 20))] == [0.0, 2.0]
    assert [s.at for s in history.add("a", snapshot(2.3, 25))] == [0.0, 2.0]  # another tab's just after: skipped
    assert [s.at for s in history.add("a", snapshot(1.0, 10))] == [0.0, 2.0]  # an older reading is not appended
    assert [s.at for s in history.add("a", snapshot(11.0, 110))] == [2.0, 11.0]  # the window drops 0.0
    history.add("b", snapshot(0.0, 0))
    history.add("a", snapshot(12.0, 120))  # read last: "b" is now the least recently read
    history.add("c", snapshot(0.0, 0))
    assert [s.at for s in history.add("b", snapshot(1.0, 1))] == [1.0]  # "b" was forgotten
    assert [s.at for s in history.add("c", snapshot(1.0, 1))] == [0.0, 1.0]  # adding "b" forgot "a", not "c"


def test_the_chart_breaks_its_latency_line_over_an_idle_interval_instead_of_sloping_across():
    from backend.traffic.interactive_charts import traffic_chart

    def answered(at, n):  # n requests so far, all within 2 ms
        return snapshot(at, n, buckets=((0.001, 0.0), (0.002, float(n)), (INF, float(n))))

    kept = (answered(0.0, 0), answered(2.0, 20), answered(4.0, 20), answered(6.0, 40))  # idle from 2 to 4
    spec = traffic_chart(points(kept)).to_dict()
    values = spec["vconcat"][1]["data"]["values"]
    p99 = [row["value"] for row in values if row["series"] == "p99 ms"]
    assert len(p99) == 3 and p99[1] is None and p99[0] is not None and p99[2] is not None
    marks = [layer["mark"] for layer in spec["vconcat"]]
    assert all(mark["invalid"] == "break-paths-filter-domains" for mark in marks)


def test_rows_are_counted_from_every_shape_of_answer():
    from backend.serving.metrics import rows_in

    assert rows_in([1, 2, 3]) == 3 and rows_in(np.arange(4)) == 4
    assert rows_in({"predictions": np.arange(5), "probabilities": np.zeros((5, 10))}) == 5  # with probabilities
    assert rows_in({"predictions": ["Bag", "Coat"]}) == 2
    assert rows_in({"answer": 42}) == 1 and rows_in("ok") == 1


def test_metrics_text_is_parsed_and_other_text_is_refused():
    text = """# TYPE modeldeck_requests_total counter
modeldeck_requests_total{endpoint="/score",status="200"} 12.0
modeldeck_requests_total{endpoint="/score",status="401"} 2.0
modeldeck_rows_scored_total 30.0
modeldeck_requests_in_flight 1.0
modeldeck_request_duration_seconds_bucket{endpoint="/score",le="0.001"} 4.0
modeldeck_request_duration_seconds_bucket{endpoint="/score",le="+Inf"} 14.0
modeldeck_request_duration_seconds_bucket{endpoint="/info",le="+Inf"} 3.0
"""
    parsed = parse_metrics(text, 5.0)
    assert parsed.count() == 14 and parsed.count(errors_only=True) == 2 and parsed.by_status() == {200: 12, 401: 2}
    assert (parsed.rows_scored, parsed.in_flight, parsed.score_buckets) == (30.0, 1.0, ((0.001, 4.0), (INF, 14.0)))
    with pytest.raises(MetricsUnavailableError, match="ModelDeck's counters"):
        parse_metrics("some_other_metric 1\n", 5.0)


def test_percentiles_are_linear_between_closest_ranks():
    assert percentiles([4.0, 1.0, 3.0, 2.0], (0, 50, 100)) == (1.0, 2.5, 4.0)
    assert percentiles(list(range(101)), (90, 99)) == (90.0, 99.0)
    assert percentiles([], (50, 99)) == (0.0, 0.0)


def test_the_summary_counts_every_request_and_errors_by_kind():
    tallies = Tallies()
    for ms in (1.0, 2.0, 3.0):
        tallies.answered(0, ms, 200)
    tallies.answered(1, 10.0, 500)
    tallies.failed(1, "connection refused")
    result = summarize(tallies, deployment="d", deployment_uid="u", started_at="2026-01-01T00:00:00+00:00",
                       seconds=2.0, asked_seconds=2, concurrency=2, capped=False)
    assert (result.requests, result.errors, result.requests_per_second) == (5, 2, 2.5)
    assert result.errors_by_kind == (("HTTP 500", 1), ("connection refused", 1))
    assert result.p50_ms == 2.5 and result.max_ms == 10.0
    assert result.timeline == (LoadTestTick(0, 3, 0, 2.0, pytest.approx(2.98)), LoadTestTick(1, 2, 2, 10.0, 10.0))


def test_a_load_test_result_survives_json():
    result = LoadTestResult("d", "u", 2.0, 4, 100, 1, 50.0, 1.0, 2.0, 3.0, 4.0, "2026-01-01T00:00:00+00:00",
                            (LoadTestTick(0, 60, 1, 1.0, 3.0), LoadTestTick(1, 40, 0, 1.1, 2.5)),
                            (("HTTP 500", 1),), 2, False)
    data = result.to_json()
    assert {"requests_per_second", "p50_ms", "p99_ms", "errors", "timeline", "started_at"} <= set(data)
    assert LoadTestResult.from_json(data) == result


@pytest.mark.parametrize("uri", ["http://10.0.0.5:8000/score", "http://example.com/score",
                                 "https://127.0.0.1:8000/score", "http://127.0.0.2:8000/score"])
def test_a_load_test_refuses_any_target_but_this_machine(uri):
    with pytest.raises(LoadTestRefusedError, match="only targets this machine"):
        run_load_test(uri, [b"{}"], seconds=1, concurrency=1)


def test_localhost_is_connected_as_127_0_0_1():
    assert local_target("http://localhost:8123/score") == ("127.0.0.1", 8123, "/score")


@pytest.mark.parametrize("seconds, concurrency, what", [(0, 1, "seconds"), (301, 1, "seconds"), (1, 0, "concurrency"),
                                                        (1, 65, "concurrency"), (1.5, 1, "seconds")])
def test_load_tests_are_bounded(seconds, concurrency, what):
    with pytest.raises(LoadTestRefusedError, match=f"{what} must be a whole number"):
        check_bounds(seconds, concurrency)


# --- real servers ------------------------------------------------------------------------------------

def deploy(deck, name, **config):
    return deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist"), name, DeployConfig(**config),
                                            timeout=180)


def base_of(deployment):
    return deployment.scoring_uri.rsplit("/score", 1)[0]


def scrape_until(client, uri, done, key=None):
    """The first snapshot for which done(snapshot) holds, or the last one after 10 s: each worker writes
    its counts to the shared files within 50 ms (another worker may answer the scrape)."""
    deadline = time.monotonic() + 10
    while True:
        snapshot = scrape(client, uri, key)
        if done(snapshot) or time.monotonic() > deadline:
            return snapshot
        time.sleep(0.02)


def host_pid(inner: int, folder) -> int:
    """The host's pid of the process that is `inner` in a sandbox's pid namespace, started in `folder`."""
    for status in Path("/proc").glob("[0-9]*/status"):
        try:
            nspids = next(line.split()[1:] for line in status.read_text().splitlines() if line.startswith("NSpid:"))
            cmdline = (status.parent / "cmdline").read_bytes()
        except (OSError, StopIteration):
            continue
        if int(nspids[-1]) == inner and str(folder).encode() in cmdline:
            return int(status.parent.name)
    raise AssertionError(f"no process {inner} of {folder}")


def test_requests_rows_and_errors_move_the_counters_across_workers_and_a_dead_workers_counts_stay(local_deck):
    deployment = deploy(local_deck, "counted", cpu_cores=2)  # two worker processes
    uri = deployment.scoring_uri
    before = scrape(local_deck.client, uri)
    X = load_mnist_test().X
    session = requests.Session()
    for _ in range(6):
        assert session.post(uri, json={"data": X[:5].tolist()}, timeout=10).status_code == 200
    assert session.post(uri, json={"data": [[1, 2]]}, timeout=10).status_code == 400
    assert session.post(uri, data=b"<x/>", headers={"Content-Type": "application/xml"}, timeout=10).status_code == 415
    after = scrape_until(local_deck.client, uri, lambda s: s.count() - before.count() >= 8
                         and s.rows_scored - before.rows_scored >= 30)
    assert after.count() - before.count() == 8
    assert after.count(errors_only=True) - before.count(errors_only=True) == 2
    assert after.by_status()[400] == 1 and after.by_status()[415] == 1
    assert after.rows_scored - before.rows_scored == 30  # 6 requests of 5 rows
    assert after.latency_ms(0.5) is not None and after.in_flight == 0

    # A worker that dies is re-forked; what it counted stays counted.
    pids = {requests.get(base_of(deployment) + "/info", timeout=10).json()["worker_pid"] for _ in range(20)}
    victim = pids.pop()  # as the server sees it: in the sandbox's own pid namespace
    os.kill(host_pid(victim, local_deck.settings.local_deployments_dir / "counted"), signal.SIGKILL)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            survived = scrape(local_deck.client, uri)
            break
        except EndpointUnreachableError:
            time.sleep(0.1)
    assert survived.count() >= after.count() and survived.rows_scored == after.rows_scored
    # the server notices the death and says so as it re-forks: a scrape can come first (seen on a busy machine)
    deadline = time.monotonic() + 30
    while f"worker {victim} ended" not in (logs := local_deck.deployments.get_logs("counted")) \
            and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"worker {victim} ended" in logs
    assert "POST /score" in logs and "/metrics" not in logs  # scrapes stay out of the access log, as probes do


def test_an_in_process_app_counts_a_request_before_the_next_scrape(model_env):
    from fastapi.testclient import TestClient

    from backend.deployments import DEFAULT_SCRIPT
    from backend.serving.routes import create_app
    from backend.serving.script import ScoringScript, load_script

    script = load_script(DEFAULT_SCRIPT)
    script.init()
    client = TestClient(create_app(ScoringScript.of(script), {}))
    assert client.post("/score", json={"data": load_mnist_test().X[:3].tolist()}).status_code == 200
    snapshot = parse_metrics(client.get("/metrics").text, 0.0)
    assert (snapshot.count(), snapshot.rows_scored, snapshot.in_flight) == (1, 3, 0)
    assert snapshot.by_status() == {200: 1} and snapshot.score_buckets[-1] == (INF, 1.0)


def test_metrics_want_the_key_like_info_while_health_and_ready_stay_open(local_deck):
    deployment = deploy(local_deck, "keyed", auth_enabled=True)
    base = base_of(deployment)
    assert requests.get(base + "/metrics", timeout=10).status_code == 401
    assert requests.get(base + "/health", timeout=10).status_code == 200
    assert requests.get(base + "/ready", timeout=10).status_code == 200
    with pytest.raises(MetricsUnavailableError, match="HTTP 401"):
        scrape(local_deck.client, deployment.scoring_uri)
    assert scrape_deployment(local_deck, deployment).count() == 0  # the service sends the key


def test_a_short_load_test_scores_with_the_key_is_kept_and_shows_in_the_servers_counters(local_deck):
    deployment = deploy(local_deck, "loaded", auth_enabled=True)
    ticks = []
    result = load_test(local_deck, "loaded", seconds=2, concurrency=2, progress=ticks.append)
    assert result.requests > 0 and result.errors == 0 and result.errors_by_kind == ()
    assert result.deployment == "loaded" and result.deployment_uid == deployment.record.uid
    assert 0 < result.p50_ms <= result.p90_ms <= result.p99_ms <= result.max_ms
    assert [t.second for t in ticks] == [0, 1] and sum(t.requests for t in result.timeline) == result.requests
    assert local_deck.results.load_loadtest(deployment) == result
    key = local_deck.deployments.key_for(deployment)
    served = scrape_until(local_deck.client, deployment.scoring_uri, lambda s: s.count() >= result.requests, key)
    assert served.count() == result.requests and served.rows_scored == result.requests  # one row each
    local_deck.deployments.delete("loaded")
    assert local_deck.results.load_loadtest(deployment) is None


def test_a_load_test_against_nothing_counts_connection_errors_and_stops_on_time():
    from backend.runtimes.probe import free_port

    bodies = request_bodies(load_mnist_test(), 4, seed=1)
    assert len({len(b) for b in bodies}) >= 1 and all(b.startswith(b'{"data":[[') for b in bodies)
    result = run_load_test(f"http://127.0.0.1:{free_port()}/score", bodies, seconds=1, concurrency=2)
    assert result.requests == result.errors > 0 and dict(result.errors_by_kind) == {"connection refused": result.errors}
    assert np.isclose(result.requests_per_second * result.seconds, result.requests)


def test_a_load_test_cut_short_keeps_what_ran_each_second_and_at_the_cut_marked_partial():
    from backend.runtimes.probe import free_port

    kept: list[LoadTestResult] = []

    def progress(tick: LoadTestTick) -> None:
        if tick.second == 1:
            raise KeyboardInterrupt  # as Ctrl-C, or Streamlit stopping the page's script on a reload

    started = time.monotonic()
    with pytest.raises(KeyboardInterrupt):
        run_load_test(f"http://127.0.0.1:{free_port()}/score", request_bodies(load_mnist_test(), 4, seed=1),
                      seconds=30, concurrency=2, progress=progress, keep=kept.append)
    assert time.monotonic() - started < 10  # the load stopped with the run
    assert len(kept) == 2 and all(r.partial and r.asked_seconds == 30 for r in kept)
    first, cut = kept
    # the cut keeps whole seconds only (a second with no answer yet has no entry on a busy machine); it came at the
    # second tick, about 2 s in (1.999 s by the run's own clock once, on a busy machine)
    assert len(first.timeline) == 1 and 1.5 <= cut.seconds < 4 and 1 <= len(cut.timeline) <= max(1, round(cut.seconds))
    assert cut.requests >= first.requests > 0 and cut.requests == cut.errors  # nothing answers: refused


def test_each_server_start_gets_a_fresh_metrics_folder_and_folders_of_killed_servers_are_removed(tmp_path, monkeypatch):
    import subprocess
    import tempfile

    from backend.serving.metrics import MULTIPROC_ENV, use_fresh_folder

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    monkeypatch.setenv(MULTIPROC_ENV, "")  # recorded, so the folder set below is forgotten after the test
    monkeypatch.delenv(MULTIPROC_ENV)
    gone = subprocess.Popen(["true"])  # a pid that was a process and is no more
    gone.wait()
    stale = tmp_path / f"modeldeck-metrics-{gone.pid}-abc"
    alive = tmp_path / f"modeldeck-metrics-{os.getpid()}-def"
    for folder in (stale, alive):
        folder.mkdir()
        (folder / "counter_1.db").write_bytes(b"x")
    first = use_fresh_folder()
    assert os.environ[MULTIPROC_ENV] == first and os.listdir(first) == []
    assert not stale.exists() and alive.exists()
    assert use_fresh_folder() != first
