"""The front: one nginx per ModelDeck home, on 127.0.0.1, in front of every deployment's server.

A deployment's server listens on a unix socket in its own folder, so the model's process needs no
network at all (a Docker container runs with `--network none`, a local one in a sandbox with no
network namespace but its own). The front listens on the deployment's port on 127.0.0.1 and forwards
each request to that socket: the scoring URI stays `http://127.0.0.1:PORT/score` and stays the same
across restarts of the server. On the way it holds slow and large bodies itself (up to the
deployment's body limit, spilled to a file past 1 MiB), so a trickling client costs the server
nothing, and it answers in JSON when the server is down or a body is too large.

The front's state is its folder (`<home>/front/`): nginx.conf, one file a route in routes/, its pid,
error log and body files. Any ModelDeck process of the home may start it (it runs detached, as the
containers do) or reload it; a lock keeps two from rewriting it at once.
"""

from __future__ import annotations

import fcntl
import hashlib
import http.client
import json
import os
import pwd
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

NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")
FRONT_HEADER = "X-ModelDeck-Deployment"  # every answer of a route carries its deployment's name
READY_TIMEOUT_SECONDS = 10.0
SOCKET_PATH_MAX = 100  # sun_path holds 108 bytes; longer paths are reached through a short link
SHORT_LINKS = Path("/tmp/modeldeck-sockets")
NO_NGINX = ("the front of every deployment is nginx, and no nginx is installed: `sudo apt-get install "
            "nginx-light` (scripts/setup.sh installs it)")
SERVER_DOWN = ("the deployment's server does not answer (starting, restarting or stopped): see its state "
               "and logs")
TOO_LARGE = ("the request body is larger than this deployment's limit of {limit:g} MiB: send fewer rows per "
             "request, or send them as .npy (Content-Type: application/x-npy); `deploy --max-body-mb` sets "
             "the limit")
TOO_SLOW = "the request body did not arrive in time (no data for 60 s)"
_KEY = re.compile(r"^[a-z0-9][a-z0-9-]{0,80}$")


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
    """A string as an nginx quoted literal (nginx reads JSON's escapes \\" and \\\\ as JSON writes them)."""
    if "$" in text:
        raise ValueError(f"no '$' in front texts (nginx would read a variable): {text!r}")
    return json.dumps(text)


def _json_body(message: str) -> str:
    return _quote(json.dumps({"error": message, "type": "FrontError"}))


def reachable_socket(path: Path) -> str:
    """`path` as nginx can name it: itself when short enough for a unix socket address, else through
    a short link to its folder (the link is made here, and made again after a reboot cleared /tmp)."""
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
    """The nginx configuration of one route. Pure."""
    if not _KEY.match(route.key):
        raise ValueError(f"not a route key: {route.key!r}")
    name = _quote(route.deployment)
    limit = f"{max(1, int(route.max_body_mb * 1024))}k"
    return f"""# {route.to_json()}
upstream md-{route.key} {{
    server unix:{socket_address};
    keepalive 32;
}}
server {{
    listen 127.0.0.1:{route.port};
    client_max_body_size {limit};
    add_header {FRONT_HEADER} {name} always;
    error_page 413 = @too_large;
    error_page 408 = @too_slow;
    error_page 502 503 504 = @server_down;
    location / {{
        proxy_pass http://md-{route.key};
    }}
    location @too_large {{
        default_type application/json;
        return 413 {_json_body(TOO_LARGE.format(limit=route.max_body_mb))};
    }}
    location @too_slow {{
        default_type application/json;
        return 408 {_json_body(TOO_SLOW)};
    }}
    location @server_down {{
        default_type application/json;
        return 502 {_json_body(SERVER_DOWN)};
    }}
}}
"""


def main_config(folder: Path, user: str | None) -> str:
    """nginx.conf of a front whose state lives in `folder`; `user` is who its workers run as (when
    started by root: the owner of the deployments' sockets). Pure."""
    tmp = folder / "tmp"
    user_line = f"user {user};\n" if user else ""
    return f"""# ModelDeck's front: made by backend/runtimes/front.py, rewritten on each change
{user_line}daemon on;
worker_processes 1;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{
    worker_connections 4096;
}}
http {{
    access_log off;
    server_tokens off;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    client_body_buffer_size 1m;
    client_header_timeout 10s;
    client_body_timeout 60s;
    keepalive_timeout 75s;
    keepalive_requests 100000;
    proxy_http_version 1.1;
    proxy_set_header Connection "";
    proxy_set_header Host $http_host;
    proxy_read_timeout 3600s;
    proxy_send_timeout 3600s;
    proxy_buffer_size 64k;
    proxy_buffers 16 64k;
    include {folder}/routes/*.conf;
}}
"""


def find_nginx() -> str:
    """The nginx binary.

    Raises:
        RuntimeUnavailableError: none is installed.
    """
    for candidate in NGINX_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise RuntimeUnavailableError(NO_NGINX)


class Front:
    """The nginx in front of one home's deployments (see the module's docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.routes_dir = self.folder / "routes"

    @contextmanager
    def _locked(self) -> Iterator[None]:
        self.routes_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        with open(self.folder / "lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def routes(self) -> list[Route]:
        """The routes the front serves (or will, once started)."""
        found = []
        for path in sorted(self.routes_dir.glob("*.conf")) if self.routes_dir.is_dir() else []:
            try:
                first = path.read_text().split("\n", 1)[0]
                found.append(Route.from_json(first.removeprefix("# ")))
            except (OSError, ValueError, KeyError):
                continue
        return found

    def route(self, key: str) -> Route | None:
        try:
            first = (self.routes_dir / f"{key}.conf").read_text().split("\n", 1)[0]
            return Route.from_json(first.removeprefix("# "))
        except (OSError, ValueError, KeyError):
            return None

    def publish(self, route: Route) -> None:
        """Serves `route` (replacing one of the same key) and returns once its port answers as it.

        Raises:
            RuntimeUnavailableError: no nginx is installed.
            DeploymentError: the front could not take the port (taken by another process meanwhile: the
                caller picks another) or does not start; the message has nginx's own words.
        """
        with self._locked():
            path = self.routes_dir / f"{route.key}.conf"
            tmp = path.with_name(f".{path.name}.tmp")
            tmp.write_text(route_config(route, reachable_socket(route.socket)))
            os.replace(tmp, path)
            logged = self._error_log_size()
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
            path = self.routes_dir / f"{key}.conf"
            withdrawn = self.route(key)
            if withdrawn is None:
                path.unlink(missing_ok=True)
                return
            path.unlink()
            self._apply()
            self._wait_closed(withdrawn)

    def ensure_running(self) -> str | None:
        """Starts the front when it has routes and is not running (after a reboot, or a kill); None
        when it runs, else why it cannot (its deployments then read as not answering)."""
        if self._pid() is not None or not self.routes():
            return None
        with self._locked():
            if self._pid() is None and self.routes():
                try:
                    self._apply()
                except (DeploymentError, RuntimeUnavailableError) as e:
                    return str(e)
        return None

    def _pid(self) -> int | None:
        """The running master's pid, or None."""
        try:
            pid = int((self.folder / "nginx.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"nginx" in cmdline and str(self.folder).encode() in cmdline else None

    def _apply(self) -> None:
        """Makes the running front match the route files: started, reloaded, or stopped when none is left."""
        pid = self._pid()
        if not any(self.routes_dir.glob("*.conf")):
            if pid is not None:
                os.kill(pid, signal.SIGQUIT)  # graceful: answers in flight finish
            return
        nginx = find_nginx()
        for sub in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
            (self.folder / "tmp" / sub).mkdir(parents=True, exist_ok=True, mode=0o700)
        user = pwd.getpwuid(os.getuid()).pw_name if os.geteuid() == 0 else None
        conf = self.folder / "nginx.conf"
        conf.write_text(main_config(self.folder, user))
        command = [nginx, "-p", str(self.folder), "-c", str(conf), "-e", str(self.folder / "error.log")]
        if pid is not None:
            command += ["-s", "reload"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=30)
        if done.returncode != 0:
            raise DeploymentError(f"the front (nginx) did not {'reload' if pid else 'start'}: "
                                  f"{(done.stderr or done.stdout).strip()[-600:]}")

    def _error_log_size(self) -> int:
        try:
            return (self.folder / "error.log").stat().st_size
        except OSError:
            return 0

    def _wait_serving(self, route: Route, logged: int) -> None:
        """Waits until route.port answers with the route's header (a reload binds new ports a moment
        after the signal); gives up at once when the error log, past its first `logged` bytes, says
        the port could not be bound (another process took it meanwhile)."""
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        refused = f"bind() to 127.0.0.1:{route.port} failed".encode()
        while True:
            conn = http.client.HTTPConnection("127.0.0.1", route.port, timeout=1.0)
            try:
                conn.request("GET", "/health")
                response = conn.getresponse()
                response.read()
                if response.getheader(FRONT_HEADER) == route.deployment:
                    return
            except (OSError, http.client.HTTPException):
                pass
            finally:
                conn.close()
            try:
                with open(self.folder / "error.log", "rb") as log:
                    log.seek(logged)
                    if refused in log.read():
                        raise DeploymentError(f"the front cannot listen on 127.0.0.1:{route.port}: another "
                                              "process took that port")
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise DeploymentError(f"the front did not start serving 127.0.0.1:{route.port} within "
                                      f"{READY_TIMEOUT_SECONDS:.0f} s (taken by another process?): "
                                      f"{self._last_error()}")
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
            lines = (self.folder / "error.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return "no error log"
        return lines[-1][-400:] if lines else "no error logged"
