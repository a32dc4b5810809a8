"""The front: a real HAProxy in front of a small HTTP server on a unix socket (no deployment needed)."""

from __future__ import annotations

import http.server
import os
import signal
import socket
import socketserver
import threading
import time
from pathlib import Path

import pytest
import requests

from backend.errors import DeploymentError
from backend.runtimes.front import FRONT_HEADER, SOCKET_PATH_MAX, Front, Route, _alive, reachable_socket, route_config
from backend.runtimes.probe import free_port


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        self._answer(b'{"path": "%s"}' % self.path.encode())

    def do_POST(self) -> None:  # noqa: N802
        size = int(self.headers.get("Content-Length", "0"))
        self._answer(b'{"got": %d}' % len(self.rfile.read(size)))

    def _answer(self, body: bytes) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True

    def get_request(self):  # type: ignore[no-untyped-def]
        conn, _ = self.socket.accept()
        return conn, ("front", 0)  # BaseHTTPRequestHandler wants a (host, port) client address


@pytest.fixture()
def upstream(tmp_path):
    """A tiny HTTP server on a unix socket, as a deployment's server is."""
    path = tmp_path / "run" / "server.sock"
    path.parent.mkdir()
    server = _UnixServer(str(path), _Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield path
    server.shutdown()
    server.server_close()


@pytest.fixture()
def front(tmp_path):
    made = Front(tmp_path / "front")
    yield made
    for route in made.routes():
        made.withdraw(route.key)


def route(key: str, socket_path: Path, port: int | None = None, limit: float = 1) -> Route:
    return Route(key=key, deployment=key.removeprefix("local-"), port=port or free_port(), socket=socket_path,
                 max_body_mb=limit)


def master_pid(front: Front) -> int | None:
    try:
        return int((front.folder / "haproxy.pid").read_text())
    except (OSError, ValueError):
        return None


def test_a_route_s_config_listens_on_loopback_only_and_carries_its_limit():
    text = route_config(Route("docker-demo", "demo", 40123, Path("/h/run/server.sock"), 64), "/h/run/server.sock")
    assert "bind 127.0.0.1:40123\n" in text and "server server unix@/h/run/server.sock\n" in text
    assert "gt 67108864 }" in text and 'X-ModelDeck-Deployment "demo"' in text
    with pytest.raises(ValueError):
        route_config(Route("../evil", "x", 1, Path("/s"), 1), "/s")


def test_the_front_serves_a_socket_on_its_port_then_stops_with_its_last_route(front, upstream):
    served = route("local-demo", upstream)
    front.publish(served)
    url = f"http://127.0.0.1:{served.port}"
    answer = requests.get(f"{url}/info?x=1", timeout=5)
    assert answer.json() == {"path": "/info?x=1"} and answer.headers[FRONT_HEADER] == "demo"
    assert requests.post(f"{url}/score", data=b"x" * 5000, timeout=5).json() == {"got": 5000}
    too_big = requests.post(f"{url}/score", data=b"x" * (2 * 2**20), timeout=5)  # the limit is 1 MiB
    assert too_big.status_code == 413 and "limit of 1 MiB" in too_big.json()["error"]
    pid = master_pid(front)
    assert pid is not None
    front.withdraw("local-demo")
    deadline = time.monotonic() + 10
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{pid}").exists(), "the front stops with its last route"
    with pytest.raises(requests.ConnectionError):
        requests.get(url, timeout=2)


def test_a_server_that_is_down_is_a_json_502_from_the_front(front, tmp_path):
    served = route("local-down", tmp_path / "nothing-listens.sock")
    front.publish(served)
    answer = requests.post(f"http://127.0.0.1:{served.port}/score", json={"data": [[0]]}, timeout=5)
    assert answer.status_code == 503 and "does not answer" in answer.json()["error"]
    assert answer.headers[FRONT_HEADER] == "down"


def test_two_routes_are_served_apart_and_withdrawing_one_keeps_the_other(front, upstream):
    first, second = route("local-one", upstream), route("local-two", upstream)
    front.publish(first)
    front.publish(second)
    front.withdraw("local-one")
    assert requests.get(f"http://127.0.0.1:{second.port}/", timeout=5).headers[FRONT_HEADER] == "two"
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.1:{first.port}/", timeout=2)
    assert [r.key for r in front.routes()] == ["local-two"]


def test_a_port_taken_meanwhile_fails_at_once_and_leaves_no_route(front, upstream):
    front.publish(route("local-first", upstream))  # running: the next one is a reload
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", 0))
        squatter.listen()
        started = time.monotonic()
        with pytest.raises(DeploymentError, match="another process took that port"):
            front.publish(route("local-clash", upstream, port=squatter.getsockname()[1]))
        assert time.monotonic() - started < 5  # read from HAProxy's log, not waited out
    assert [r.key for r in front.routes()] == ["local-first"]


def test_a_killed_front_is_started_again_from_its_routes(front, upstream):
    served = route("local-again", upstream)
    front.publish(served)
    killed = master_pid(front)
    os.killpg(os.getpgid(killed), signal.SIGKILL)  # master and worker, as a reboot leaves it: routes on disk, no front
    # Gone means the master ended and the port refuses; a connect that only timed out (a loaded machine)
    # says nothing, and a front still dying would be taken for a running one.
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", served.port), timeout=0.5).close()
        except ConnectionRefusedError:
            if not _alive(killed):
                break
        except OSError:
            pass
        time.sleep(0.05)
    else:
        pytest.fail("the killed front did not end within 30 s")
    front.ensure_running()
    front._wait_serving(served, 0)
    assert requests.get(f"http://127.0.0.1:{served.port}/", timeout=5).headers[FRONT_HEADER] == "again"


def test_a_socket_path_too_long_for_an_address_is_reached_through_a_short_link(tmp_path):
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "server.sock"
    reached = reachable_socket(deep)
    assert len(str(deep)) > SOCKET_PATH_MAX >= len(reached)
    deep.parent.mkdir(parents=True)
    assert Path(reached).parent.resolve() == deep.parent.resolve()
