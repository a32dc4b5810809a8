"""Hostile local clients against the front (issue 21): connections that never finish their headers, or send
nothing, held against one deployment's port, must neither hold it for long nor take the other deployments
of the home with it; the front's log stays bounded; the server's access log names the client behind the
front. A real HAProxy, a small real upstream on a unix socket, and a real Docker deployment."""

from __future__ import annotations

import resource
import socket
import time
from pathlib import Path

import pytest
import requests

from backend.data.builtin import load_mnist_test
from backend.errors import DeploymentError
from backend.runtimes import DeployConfig
from backend.runtimes.front import (
    BODY_SECONDS,
    CLIENT_HEADER,
    FRONT_MAXCONN,
    HEADER_SECONDS,
    LOG_KEEP_BYTES,
    LOG_MAX_BYTES,
    ROUTE_MAXCONN,
    Route,
    main_config,
    route_config,
)
from backend.serving.access import AccessLog
from benchmarks import attacks

from .test_docker_runtime import docker_deck  # noqa: F401  (a fixture)
from .test_front import front, route, upstream  # noqa: F401 (fixtures)


def fresh_get(url: str, timeout: float = 5.0) -> tuple[int, float]:
    """A GET on a new connection (as a new client makes it): its status (0: none) and seconds taken."""
    started = time.monotonic()
    try:
        status = requests.get(url, timeout=timeout, headers={"Connection": "close"}).status_code
    except requests.RequestException:
        status = 0
    return status, time.monotonic() - started


def enough_descriptors(count: int) -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    assert hard >= count, f"this test holds {count} connections: raise the open-files limit (now {hard})"
    resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, count), hard))


def test_the_front_gives_headers_a_short_time_and_bodies_the_long_one_and_caps_each_route():
    config = main_config(Path("/h/front"))
    assert f"timeout http-request {HEADER_SECONDS}s\n" in config and f"maxconn {FRONT_MAXCONN}\n" in config
    text = route_config(Route("docker-demo", "demo", 40123, Path("/h/run/server.sock"), 64), "/h/run/server.sock")
    assert f"    maxconn {ROUTE_MAXCONN}\n" in text and f"wait-for-body time {BODY_SECONDS}s" in text
    assert f'set-header {CLIENT_HEADER} "%[src]:%[src_port]"' in text  # replaces whatever a client sent
    assert HEADER_SECONDS < BODY_SECONDS and ROUTE_MAXCONN * 2 < FRONT_MAXCONN


def test_a_flood_of_idle_connections_on_one_port_leaves_the_other_deployments_answering(front, upstream):  # noqa: F811
    enough_descriptors(FRONT_MAXCONN + 1000)
    attacked, other = route("local-attacked", upstream), route("local-other", upstream)
    front.publish(attacked)
    front.publish(other)
    # More connections than the whole front holds (before each route had its cap, these took every slot of the
    # front and no new client of any deployment got an answer); the attacker stops once the port takes no more.
    held = attacks.open_held(f"http://127.0.0.1:{attacked.port}/", FRONT_MAXCONN + 100, connect_timeout=0.3,
                             give_up_after=3)
    try:
        assert len(held.conns) < FRONT_MAXCONN and held.refused == 3
        answers = [fresh_get(f"http://127.0.0.1:{other.port}/health") for _ in range(20)]
        assert [status for status, _ in answers] == [200] * 20
        assert max(seconds for _, seconds in answers) < 2.0, answers
        # Idle connections hold the attacked port's slots for HEADER_SECONDS only: then it answers again.
        status, seconds = fresh_get(f"http://127.0.0.1:{attacked.port}/health", timeout=HEADER_SECONDS * 3 + 10)
        assert status == 200 and seconds < HEADER_SECONDS * 3 + 5
    finally:
        held.close()


def test_slowloris_connections_are_cut_after_the_header_time_while_ordinary_requests_pass(front, upstream):  # noqa: F811
    served = route("local-slowloris", upstream)
    front.publish(served)
    url = f"http://127.0.0.1:{served.port}/"
    held = attacks.hold_slowloris(url, count=300, seconds=HEADER_SECONDS + 8)
    try:
        answers = [fresh_get(url + "health") for _ in range(20)]
        assert [status for status, _ in answers] == [200] * 20
        deadline = time.monotonic() + HEADER_SECONDS + 6
        while attacks.closed_by_peer(held) < 300 and time.monotonic() < deadline:
            time.sleep(0.5)
        assert attacks.closed_by_peer(held) == 300, "each slowloris connection is closed after the header time"
    finally:
        held.threads[0].join(timeout=30)
        held.close()
    assert set(held.statuses) <= {408, -1} and held.statuses.count(408) > 250, held.statuses


def test_a_body_may_take_longer_than_the_header_time(front, upstream):  # noqa: F811
    served = route("local-slow-body", upstream)
    front.publish(served)
    with socket.create_connection(("127.0.0.1", served.port), timeout=30) as conn:
        conn.sendall(b"POST /score HTTP/1.1\r\nHost: x\r\nContent-Length: 20\r\n\r\n")
        for _ in range(HEADER_SECONDS + 3):
            conn.sendall(b"0")
            time.sleep(1)
        conn.sendall(b"0" * (20 - HEADER_SECONDS - 3))
        answer = conn.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b'{"got": 20}')


def test_the_front_s_log_is_cut_to_its_tail_and_still_tells_a_reload_and_a_taken_port(front, upstream):  # noqa: F811
    front.publish(route("local-first", upstream))
    with open(front.log, "ab") as log:  # as months of alerts and reload notices leave it
        log.write(b"[NOTICE]   (1) : old news, a line of the past\n" * (2 * LOG_MAX_BYTES // 46))
    assert front.log.stat().st_size > LOG_MAX_BYTES
    second = route("local-second", upstream)
    front.publish(second)  # a reload: read from the log past the cut
    assert requests.get(f"http://127.0.0.1:{second.port}/", timeout=5).status_code == 200
    text = front.log.read_bytes()
    assert len(text) < LOG_KEEP_BYTES + 16384 and b"\0" not in text  # HAProxy appends after the kept tail
    assert text.startswith(b"[NOTICE]") and b"Loading success" in text.split(b"old news")[-1]
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        with pytest.raises(DeploymentError, match="another process took that port"):
            front.publish(route("local-clash", upstream, port=squatter.getsockname()[1]))


class _Lines:
    def __init__(self) -> None:
        self.text = ""

    def write(self, text: str) -> None:
        self.text += text

    def flush(self) -> None:
        pass


def access_line(client: tuple[str, int] | None, headers: list[tuple[bytes, bytes]]) -> str:
    stream = _Lines()
    AccessLog(stream).write({"path": "/score", "method": "POST", "http_version": "1.1", "client": client,  # type: ignore[arg-type]
                             "headers": headers}, 200)
    return stream.text


def test_the_access_log_names_the_front_s_client_over_a_unix_socket_only():
    forwarded = [(b"content-type", b"application/json"), (b"x-modeldeck-client", b"127.0.0.1:51234")]
    assert access_line(None, forwarded) == 'INFO:     127.0.0.1:51234 - "POST /score HTTP/1.1" 200 OK\n'
    assert access_line(("10.0.0.7", 4000), forwarded).startswith("INFO:     10.0.0.7:4000 - ")  # TCP: not trusted
    assert access_line(None, []).startswith('INFO:      - "POST')
    assert "\n" not in access_line(None, [(b"x-modeldeck-client", b"a\x1bb\nc")]).rstrip("\n")


@pytest.mark.docker
def test_a_docker_deployment_scores_through_slowloris_and_logs_its_clients(docker_deck, sample_model):  # noqa: F811
    deployment = docker_deck.deployments.deploy_and_wait(sample_model, "atk-front", DeployConfig(cpu_cores=1),
                                                          timeout=180)
    uri = deployment.scoring_uri
    row = load_mnist_test().X[0].tolist()
    held = attacks.hold_slowloris(uri, count=400, seconds=HEADER_SECONDS + 8)
    held_idle = attacks.hold_idle(uri, count=400)
    probe = attacks.Probe(uri, row)
    try:
        probe.start()
        time.sleep(HEADER_SECONDS + 4)  # past the header time: the attackers' connections were cut
        probe.stop()
        closed = attacks.closed_by_peer(held) + attacks.closed_by_peer(held_idle)
    finally:
        held.threads[0].join(timeout=30)
        held.close()
        held_idle.close()
    assert closed == 800, "every slowloris and idle connection was cut after the header time"
    assert len(probe.statuses) > 20 and set(probe.statuses) == {200} and set(probe.health) == {200}
    assert sorted(probe.latencies)[int(len(probe.latencies) * 0.99) - 1] < 1.0, sorted(probe.latencies)[-5:]
    with socket.create_connection(("127.0.0.1", int(uri.split(":")[2].split("/")[0])), timeout=10) as conn:
        mine = conn.getsockname()[1]
        conn.sendall(b"GET /info HTTP/1.1\r\nHost: x\r\nX-ModelDeck-Client: 6.6.6.6:6\r\nConnection: close\r\n\r\n")
        assert conn.recv(4096).startswith(b"HTTP/1.1 200")
    deadline = time.monotonic() + 10
    while f"127.0.0.1:{mine} - \"GET /info" not in docker_deck.deployments.get_logs("atk-front"):
        assert time.monotonic() < deadline, docker_deck.deployments.get_logs("atk-front")[-2000:]
        time.sleep(0.2)
    assert "6.6.6.6" not in docker_deck.deployments.get_logs("atk-front")

