"""The front: one HAProxy per ModelDeck home, on 127.0.0.1, in front of every Docker deployment's server.

A container's server listens on a unix socket in its deployment's folder, so the container needs no
network at all (`--network none`). The front listens on the deployment's port on 127.0.0.1 and forwards
each request to that socket: the scoring URI stays `http://127.0.0.1:PORT/score` and stays the same
across restarts of the server. On the way it holds a request until its body has arrived (whole, or
its first 64 KiB: a trickling client costs the server nothing), refuses a declared body above the
deployment's limit, and answers in JSON when the server is down or a request is too slow. (A local
deployment's server inherits a socket bound on the port instead, and needs no front: local.py. Local
deployments made before that are still served here until deleted.)

HAProxy was measured against nginx here as the front of one scoring server on one core: about 1.25x
nginx's single-row throughput (benchmarks/RESULTS.md). The front's state is its folder
(`<home>/front/`): haproxy.cfg, one file a route in routes/, its pid and log (cut to its tail when
over LOG_MAX_BYTES). Any ModelDeck process of
the home may start it (it runs detached, as the containers do) or reload it (master-worker mode:
SIGUSR2, connections in flight finish on the old worker); a lock keeps two from rewriting it at once.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import DeploymentError, RuntimeUnavailableError
from ..files import atomic_write, exclusive

HAPROXY_CANDIDATES = ("haproxy", "/usr/sbin/haproxy")
FRONT_HEADER = "X-ModelDeck-Deployment"  # every answer of a route carries its deployment's name
READY_TIMEOUT_SECONDS = 10.0
HEADER_SECONDS = 10  # a connection whose request headers take longer (slowloris, or nothing sent): 408
BODY_SECONDS = 60  # a request whose body (or its first HELD_BODY bytes) takes longer: 408
FRONT_MAXCONN = 4096  # connections the whole front holds at once ...
ROUTE_MAXCONN = 1024  # ... and one route (its server takes as many): beyond, its port's listen queue waits
CLIENT_HEADER = "X-ModelDeck-Client"  # the client's address:port, set by the front (a client's own is replaced)
HELD_BODY = "64k"  # what the front holds before the server sees a request (tune.bufsize)
SOCKET_PATH_MAX = 90  # HAProxy takes at most 97 bytes (sun_path's 108 less its suffix); longer: a short link
SHORT_LINKS = Path("/tmp/modeldeck-sockets")
NO_HAPROXY = ("the front of every deployment is HAProxy, and it is not installed: `sudo apt-get install "
              "haproxy` (scripts/setup.sh installs it)")
SERVER_DOWN = ("the deployment's server does not answer (starting, restarting or stopped): see its state "
               "and logs")
TOO_LARGE = ("the request body ({size}) is larger than this deployment's limit of {limit:g} MiB: send fewer "
             "rows per request, or send them as .npy (Content-Type: application/x-npy); `deploy --max-body-mb` "
             "sets the limit")
TOO_SLOW = (f"the request did not arrive in time (its headers within {HEADER_SECONDS} s, its body within "
            f"{BODY_SECONDS} s)")
LOG_MAX_BYTES = 1 << 20  # haproxy.log past this is cut to its last LOG_KEEP_BYTES at the next change
LOG_KEEP_BYTES = 64 << 10
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")


class PortTaken(DeploymentError):
    """The front could not listen on a route's port: another process took it after it was chosen."""


@dataclass(frozen=True)
class Route:
    """One deployment as the front serves it: 127.0.0.1:`port` forwarded to the unix socket `socket`."""

    key: str  # unique in the home: "<runtime>-<deployment name>"
    deployment: str
    port: int
    socket: Path
    max_body_mb: float

    def to_json(self) -> str:
        return json.dumps({"key": self.key, "deployment": self.deployment, "port": self.port,
                           "socket": str(self.socket), "max_body_mb": self.max_body_mb})

    @classmethod
    def from_json(cls, text: str) -> "Route":
        data = json.loads(text)
        return cls(key=str(data["key"]), deployment=str(data["deployment"]), port=int(data["port"]),
                   socket=Path(data["socket"]), max_body_mb=float(data["max_body_mb"]))


def _quote(text: str) -> str:
    """A string as an HAProxy double-quoted argument (backslash, quote and `$` escaped)."""
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$") + '"'


def _json_body(message: str) -> str:
    return _quote(json.dumps({"error": message, "type": "FrontError"}))


def reachable_socket(path: Path) -> str:
    """`path` as the front can name it: itself when short enough for a unix socket address, else
    through a short link to its folder (made here, and made again after a reboot cleared /tmp)."""
    if len(str(path)) <= SOCKET_PATH_MAX:
        return str(path)
    link = SHORT_LINKS / hashlib.sha256(str(path.parent).encode()).hexdigest()[:16]
    SHORT_LINKS.mkdir(mode=0o755, parents=True, exist_ok=True)
    if not link.is_symlink() or os.readlink(link) != str(path.parent):
        tmp = link.with_name(f".{link.name}.{os.getpid()}")
        tmp.unlink(missing_ok=True)
        os.symlink(path.parent, tmp)
        os.replace(tmp, link)
    return str(link / path.name)


def route_config(route: Route, socket_address: str) -> str:
    """The HAProxy configuration of one route: a frontend on its port, a backend on its socket. Pure."""
    if not _KEY.match(route.key):
        raise ValueError(f"not a route key: {route.key!r}")
    name = _quote(route.deployment)
    limit = int(route.max_body_mb * 2**20)
    too_large = _json_body(TOO_LARGE.format(size="its Content-Length", limit=route.max_body_mb))
    said = f"content-type application/json hdr {FRONT_HEADER} {name}"
    return f"""# {route.to_json()}
frontend md-{route.key}
    bind 127.0.0.1:{route.port}
    maxconn {ROUTE_MAXCONN}
    http-request set-header {CLIENT_HEADER} "%[src]:%[src_port]"
    http-request return status 413 {said} string {too_large} if {{ req.hdr_val(content-length) gt {limit} }}
    http-request wait-for-body time {BODY_SECONDS}s at-least {HELD_BODY}
    http-response set-header {FRONT_HEADER} {name}
    http-error status 408 {said} string {_json_body(TOO_SLOW)}
    http-error status 502 {said} string {_json_body(SERVER_DOWN)}
    http-error status 503 {said} string {_json_body(SERVER_DOWN)}
    http-error status 504 {said} string {_json_body(SERVER_DOWN)}
    default_backend md-{route.key}

backend md-{route.key}
    server server unix@{socket_address}
"""


def main_config(folder: Path) -> str:
    """haproxy.cfg of a front whose state lives in `folder` (the routes are files beside it). Pure."""
    return f"""# ModelDeck's front: made by backend/runtimes/front.py, rewritten on each change
global
    nbthread 1
    maxconn {FRONT_MAXCONN}
    tune.bufsize {int(HELD_BODY.rstrip("k")) * 1024}
    hard-stop-after 30s
    pidfile {folder}/haproxy.pid

defaults
    mode http
    timeout connect 5s
    timeout client 75s
    timeout http-request {HEADER_SECONDS}s
    timeout http-keep-alive 75s
    timeout server 3600s
    timeout queue 60s
    option http-keep-alive
    option abortonclose
    http-reuse always
"""


def _alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] not in ("Z", "X")
    except (OSError, IndexError):
        return False


def _handles(pid: int, signum: int) -> bool:
    """Whether process `pid` has a handler for `signum` (its SigCgt mask in /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("SigCgt:"):
                return bool(int(line.split()[1], 16) >> (signum - 1) & 1)
    except (OSError, ValueError):
        pass
    return False


def find_haproxy() -> str:
    """The haproxy binary.

    Raises:
        RuntimeUnavailableError: none is installed.
    """
    for candidate in HAPROXY_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise RuntimeUnavailableError(NO_HAPROXY)


class Front:
    """The HAProxy in front of one home's deployments (see the module's docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.routes_dir = self.folder / "routes"
        self.log = self.folder / "haproxy.log"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.routes_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with exclusive(self.folder / "lock"):
            self._bound_log()  # before any change reads the log's size: offsets stay past the cut
            yield

    def _route_files(self) -> list[Path]:
        return sorted(self.routes_dir.glob("*.cfg")) if self.routes_dir.is_dir() else []

    def routes(self) -> list[Route]:
        """The routes the front serves (or will, once started)."""
        found = []
        for path in self._route_files():
            route = self._read_route(path)
            if route is not None:
                found.append(route)
        return found

    def route(self, key: str) -> Route | None:
        return self._read_route(self.routes_dir / f"{key}.cfg")

    @staticmethod
    def _read_route(path: Path) -> Route | None:
        try:
            return Route.from_json(path.read_text().split("\n", 1)[0].removeprefix("# "))
        except (OSError, ValueError, KeyError):
            return None

    def publish(self, route: Route) -> None:
        """Serves `route` (replacing one of the same key) and returns once its port answers as it.

        Raises:
            RuntimeUnavailableError: HAProxy is not installed.
            PortTaken: another process took the port meanwhile (the caller picks another).
            DeploymentError: the front does not start or serve it; the message has HAProxy's own words.
        """
        with self._locked():
            path = self.routes_dir / f"{route.key}.cfg"
            # The temporary file outside routes/: HAProxy reads every file there
            with atomic_write(path, temp_dir=self.folder) as handle:
                handle.write(route_config(route, reachable_socket(route.socket)).encode())
            logged = self._log_size()
            try:
                self._apply()
                self._wait_serving(route, logged)
            except BaseException:
                path.unlink(missing_ok=True)
                self._apply()
                raise

    def withdraw(self, key: str) -> None:
        """Stops serving the route `key` (nothing when there is none); the front stops with its last."""
        with self._locked():
            path = self.routes_dir / f"{key}.cfg"
            withdrawn = self.route(key)
            path.unlink(missing_ok=True)
            if withdrawn is None:
                return
            self._apply()
            self._wait_closed(withdrawn)

    def ensure_running(self) -> str | None:
        """Starts the front when it has routes and is not running (after a reboot, or a kill); None
        when it runs, else why it cannot (its deployments then read as not answering)."""
        if self._pid() is not None or not self._route_files():
            return None
        with self._locked():
            if self._pid() is None and self._route_files():
                try:
                    self._apply()
                except (DeploymentError, RuntimeUnavailableError) as e:
                    return str(e)
        return None

    def _pid(self) -> int | None:
        """The running master's pid, or None."""
        try:
            pid = int((self.folder / "haproxy.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"haproxy" in cmdline and str(self.folder).encode() in cmdline else None

    def _signal(self, pid: int, signum: int) -> None:
        """Sends `signum` to the master once it handles it: a master still starting (its worker already
        serving) blocks the signals it has no handler for yet, and drops them."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline and not _handles(pid, signum):
            time.sleep(0.01)
        os.kill(pid, signum)

    def _apply(self) -> None:
        """Makes the running front match the route files: started, reloaded, or stopped when none is
        left; returns once its master is ready for the next change (a signal sent to a master still
        loading is lost)."""
        pid = self._pid()
        if not self._route_files():
            if pid is not None:
                self._stop(pid)
            return
        haproxy = find_haproxy()
        conf = self.folder / "haproxy.cfg"
        conf.write_text(main_config(self.folder))
        command = [haproxy, "-W", "-f", str(conf), "-f", str(self.routes_dir)]
        checked = subprocess.run([*command, "-c"], capture_output=True, text=True, timeout=30)
        if checked.returncode != 0:
            raise DeploymentError(f"the front's configuration does not check: {(checked.stderr or checked.stdout).strip()[-600:]}")
        logged = self._log_size()
        if pid is not None:
            self._signal(pid, signal.SIGUSR2)  # the master reloads: new ports bound, the old worker finishes
        else:
            # Started from a shell that exits at once, so the front is nobody's child here (no zombie when
            # it stops) and outlives this process, as a container does.
            subprocess.run(["/bin/sh", "-c", 'exec "$@" >>"$0" 2>&1 </dev/null &', str(self.log), *command],
                           check=True, timeout=30, start_new_session=True, cwd=self.folder)
        self._wait_loaded(logged)

    def _wait_loaded(self, logged: int) -> None:
        """Waits until the log, past its first `logged` bytes, says the master loaded its configuration
        (or failed to), and it handles signals again."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            said = self._log_since(logged)
            pid = self._pid()
            if b"Loading success" in said and pid is not None and _handles(pid, signal.SIGUSR2):
                return
            if b"Loading failure" in said or (b"ALERT" in said and pid is None):
                return  # the caller's wait reads why
            time.sleep(0.01)

    def _stop(self, pid: int) -> None:
        """Soft-stops the front (answers in flight finish; none is left after 30 s) and waits until it ended."""
        self._signal(pid, signal.SIGUSR1)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.01)
        if _alive(pid):
            os.kill(pid, signal.SIGTERM)

    def _bound_log(self) -> None:
        """Cuts haproxy.log to its last LOG_KEEP_BYTES (from a line's start) when it grew past LOG_MAX_BYTES.

        HAProxy appends to it (its stdout opened O_APPEND), so a running front's next line lands after the
        kept tail, with no hole. Called under the lock, before a change measures the log's size."""
        try:
            size = self.log.stat().st_size
            if size <= LOG_MAX_BYTES:
                return
            with open(self.log, "r+b") as log:
                log.seek(size - LOG_KEEP_BYTES)
                tail = log.read()
                tail = tail[tail.find(b"\n") + 1:]
                log.seek(0)
                log.write(tail)
                log.truncate(len(tail))
        except OSError:
            pass

    def _log_since(self, offset: int) -> bytes:
        try:
            with open(self.log, "rb") as log:
                log.seek(offset)
                return log.read()
        except OSError:
            return b""

    def _log_size(self) -> int:
        try:
            return self.log.stat().st_size
        except OSError:
            return 0

    def _wait_serving(self, route: Route, logged: int) -> None:
        """Waits until route.port answers with the route's header (a start or reload binds new ports a
        moment after); gives up at once when the log, past its first `logged` bytes, says the port
        could not be bound (another process took it meanwhile)."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        refused = f"[127.0.0.1:{route.port}]".encode()
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", route.port, timeout=1.0)
            try:
                conn.request("GET", "/health")
                response = conn.getresponse()
                response.read()
                if response.getheader(FRONT_HEADER) == route.deployment and self._pid() is not None:
                    return  # serving, and its master known (it writes its pid file a moment after)
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            said = self._log_since(logged)
            if refused in said and b"cannot bind socket" in said:
                raise PortTaken(f"the front cannot listen on 127.0.0.1:{route.port}: another process took that "
                                "port")
            if time.monotonic() > deadline:
                raise DeploymentError(f"the front did not start serving 127.0.0.1:{route.port} within "
                                      f"{READY_TIMEOUT_SECONDS:.0f} s: {self._last_error()}")
            time.sleep(0.01)

    def _wait_closed(self, route: Route) -> None:
        """Waits (up to READY_TIMEOUT_SECONDS) until route.port no longer takes connections: a reload
        or a stop closes it a moment after the signal, and a deleted deployment's URI must not answer."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", route.port), timeout=0.5).close()
            except OSError:
                return
            time.sleep(0.01)

    def _last_error(self) -> str:
        try:
            lines = [line for line in self.log.read_text(errors="replace").splitlines()
                     if "ALERT" in line or "WARNING" in line]
        except OSError:
            return "no log"
        return lines[-1][-400:] if lines else "nothing logged"
