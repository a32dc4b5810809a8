"""The endpoints' proxy: one nginx per ModelDeck home, on 127.0.0.1, each endpoint a `server` on its own port.

Each request gets an id (nginx's `$request_id`, 32 hex digits) and is sent to one deployment picked by hashing that
id into the split's percentages (`split_clients`), with that deployment's own key when it has key auth; the answer
carries `X-ModelDeck-Deployment` (who answered) and `X-Request-Id`. A change of split is a graceful reload: the
configuration is tested first (a refused one changes nothing: the running one keeps serving), then the master starts
new workers while the old ones finish the requests they hold, so no request fails. The proxy's state is its folder
(`<home>/endpoints/`): nginx.conf (0600: it holds keys), its pid, error log and temporary files. Any ModelDeck process
of the home may start it (detached, as the deployment front is) or reload it; a lock keeps two from rewriting it at
once, and a killed proxy is started again, on the same ports, by the next command that reads an endpoint."""

from __future__ import annotations

import http.client
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from ..errors import EndpointError, RuntimeUnavailableError
from ..files import atomic_write, exclusive
from .records import EndpointRecord

NGINX_CANDIDATES = ("nginx", "/usr/sbin/nginx")
NO_NGINX = ("endpoints are served by nginx, and it is not installed: `sudo apt-get install nginx-light` "
            "(scripts/setup.sh installs it)")
DEPLOYMENT_HEADER = "X-ModelDeck-Deployment"
REQUEST_ID_HEADER = "X-Request-Id"
GENERATION_PATH = "/_modeldeck/generation"  # answers the configuration's generation: a reload has taken effect
MIRROR_PATH = "/_modeldeck/shadow"  # internal: where the copy of a request for the shadow goes
LIVE_LOG, SHADOW_LOG = ".live.log", ".shadow.log"  # the answers of copied requests, as each side gave them
BODY_LOG = ".bodies.log"  # the copied requests' bodies, apart: the answers stay small to read every few seconds
SHADOW_LOGS = (LIVE_LOG, SHADOW_LOG, BODY_LOG)
READY_SECONDS = 15.0
MAX_BODY_MB = 256  # the proxy's own cap; each deployment refuses past its own limit (and says why)


@dataclass(frozen=True)
class Target:
    """A deployment as the proxy reaches it: its host:port on 127.0.0.1 and its own key (None without key auth)."""

    name: str
    address: str
    key: str | None


def _quoted(text: str) -> str:
    """A string for nginx's configuration, in double quotes (names and keys: no quote or backslash can reach it)."""
    if any(c in text for c in '"\\$\n;{}'):
        raise EndpointError(f"{text!r} cannot go into the proxy's configuration")
    return f'"{text}"'


def endpoint_config(record: EndpointRecord, targets: Mapping[str, Target], generation: int, folder: Path) -> str:
    """The nginx configuration of one endpoint (inside `http {}`): an upstream per deployment carrying traffic (and
    the shadow's), the split over request ids, the server; with a shadow, the copies sent to it and both answers of
    each copied request logged in `folder` (`NAME.live.log`, `NAME.shadow.log`). Pure."""
    e = record.name.replace("-", "_")
    live = [(name, weight) for name, weight in record.split.weights if weight > 0]
    mirror = record.split.mirror
    lines = []
    for name in dict.fromkeys([name for name, _ in live] + ([mirror[0]] if mirror else [])):
        lines += [f"upstream md_{record.name}__{name} {{",  # named as the pick: proxy_pass finds it by name
                  f"    server {targets[name].address} max_fails=0;", "    keepalive 16;", "}"]
    lines.append(f'split_clients "$request_id" $md_{e}_pick {{')
    for name, weight in live[:-1]:
        lines.append(f"    {weight}% {_quoted(name)};")
    lines += [f"    * {_quoted(live[-1][0])};", "}"]
    lines.append(f"map $md_{e}_pick $md_{e}_key {{")
    keys = {name: targets[name].key for name, _ in live}
    lines += [f"    {_quoted(name)} {_quoted(f'Bearer {key}')};" for name, key in keys.items() if key]
    lines += ['    default "";', "}"]
    copying: list[str] = []
    shadow_location: list[str] = []
    if mirror:
        shadow, share = mirror
        # another string than the split's: which requests are copied does not depend on where they went
        lines += [f'split_clients "shadow$request_id" $md_{e}_copy {{',
                  f"    {share}% {_quoted(shadow)};" if share < 100 else f"    * {_quoted(shadow)};",
                  *(['    * "";'] if share < 100 else []), "}",
                  f"log_format md_{e}_live escape=json '{{\"id\":\"$request_id\",\"who\":\"$md_{e}_pick\","
                  f"\"status\":\"$status\",\"answer\":\"$upstream_http_x_modeldeck_answer\"}}';",
                  f"log_format md_{e}_shadow escape=json '{{\"id\":\"$request_id\",\"status\":\"$status\","
                  "\"answer\":\"$upstream_http_x_modeldeck_answer\"}';",
                  f"log_format md_{e}_body escape=json '{{\"id\":\"$request_id\",\"body\":\"$request_body\"}}';"]
        copying = [f"        mirror {MIRROR_PATH};", "        mirror_request_body on;",
                   f"        access_log {folder / (record.name + LIVE_LOG)} md_{e}_live if=$md_{e}_copy;"]
        key = targets[shadow].key
        shadow_location = [f"    location = {MIRROR_PATH} {{",
                           "        internal;",
                           "        log_subrequest on;",
                           f"        access_log {folder / (record.name + SHADOW_LOG)} md_{e}_shadow if=$md_{e}_copy;",
                           f"        access_log {folder / (record.name + BODY_LOG)} md_{e}_body if=$md_{e}_copy;",
                           f'        if ($md_{e}_copy = "") {{ return 204; }}',
                           f"        proxy_pass http://md_{record.name}__{shadow}$request_uri;",
                           "        proxy_http_version 1.1;",
                           '        proxy_set_header Connection "";',
                           f"        proxy_set_header Authorization {_quoted(f'Bearer {key}') if key else chr(34) * 2};",
                           f"        proxy_set_header {REQUEST_ID_HEADER} $request_id;",
                           f"        proxy_set_header X-ModelDeck-Endpoint {_quoted(record.name)};",
                           "        proxy_set_header X-ModelDeck-Shadow 1;",
                           "    }"]
    lines += ["server {",
              f"    listen 127.0.0.1:{record.port};",
              f"    location = {GENERATION_PATH} {{ default_type text/plain; return 200 \"{generation}\"; }}",
              *shadow_location,
              "    location / {",
              *copying,
              f"        proxy_pass http://md_{record.name}__$md_{e}_pick;",
              "        proxy_http_version 1.1;",
              '        proxy_set_header Connection "";',
              f"        proxy_set_header Authorization $md_{e}_key;",
              f"        proxy_set_header {REQUEST_ID_HEADER} $request_id;",
              f"        proxy_set_header X-ModelDeck-Endpoint {_quoted(record.name)};",
              f"        proxy_hide_header {DEPLOYMENT_HEADER};",
              "        proxy_hide_header X-ModelDeck-Answer;",
              f"        add_header {DEPLOYMENT_HEADER} $md_{e}_pick always;",
              f"        add_header {REQUEST_ID_HEADER} $request_id always;",
              "    }",
              "}"]
    return "\n".join(lines) + "\n"


def main_config(folder: Path, endpoints: str, generation: int) -> str:
    """nginx.conf: the process's settings and every endpoint's configuration. Pure."""
    temp = folder / "tmp"
    user = "user nobody nogroup;\n" if os.geteuid() == 0 else ""  # workers never run as root
    return f"""# written by ModelDeck (generation {generation}): edits are lost at the next change
{user}worker_processes 1;
daemon on;
pid {folder}/nginx.pid;
error_log {folder}/error.log warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    server_tokens off;
    client_max_body_size {MAX_BODY_MB}m;
    client_body_buffer_size 1m;
    client_header_timeout 10s;
    client_body_timeout 60s;
    send_timeout 60s;
    keepalive_timeout 0;  # a reload closes idle kept-alive connections: a request sent on one as it closes would fail
    proxy_read_timeout 120s;
    proxy_next_upstream off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{endpoints}}}
"""


def private_file(path: Path) -> None:
    """`path`, made empty with mode 0600 when missing (a log nginx then appends to, keeping that mode)."""
    try:
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
    except FileExistsError:
        pass


def _processes() -> Iterator[tuple[int, int, int, str]]:
    """(pid, parent pid, process group, command name) of every process, from /proc."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
            fields = text.rsplit(")", 1)[1].split()
            yield int(stat.parent.name), int(fields[1]), int(fields[2]), text.split("(", 1)[1].rsplit(")", 1)[0]
        except (OSError, IndexError, ValueError):
            continue


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (a master's workers)."""
    return [child for child, parent, _, _ in _processes() if parent == pid]


def find_nginx() -> str:
    """Raises RuntimeUnavailableError when nginx is not installed."""
    for candidate in NGINX_CANDIDATES:
        found = shutil.which(candidate)
        if found:
            return found
    raise RuntimeUnavailableError(NO_NGINX)


class Proxy:
    """The nginx of one home's endpoints (see the module's docstring)."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)
        self.conf = self.folder / "nginx.conf"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Held while the endpoints' records and the proxy change together."""
        self.folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        with exclusive(self.folder / "lock"):
            yield

    def pid(self) -> int | None:
        """The running master's pid, or None."""
        try:
            pid = int((self.folder / "nginx.pid").read_text().strip())
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except (OSError, ValueError):
            return None
        return pid if b"nginx" in cmdline and str(self.conf).encode() in cmdline else None

    def generation(self) -> int:
        """The generation of the configuration written last (0: none)."""
        try:
            return int(self.conf.read_text().split("(generation ", 1)[1].split(")", 1)[0])
        except (OSError, IndexError, ValueError):
            return 0

    def apply(self, records: list[EndpointRecord], targets: Mapping[str, Target]) -> None:
        """Makes the running proxy serve `records` (started, reloaded, or stopped when there is none), and returns
        once every endpoint answers with the new configuration. Call with `locked()` held.

        Raises:
            RuntimeUnavailableError: nginx is not installed.
            EndpointError: the configuration is refused (the running one keeps serving; nginx's words are in the
                message) or the proxy does not start.
        """
        pid = self.pid()
        if not records:
            if pid is not None:
                self._stop(pid)
            self._end_orphans()
            return
        nginx = find_nginx()
        generation = self.generation() + 1
        text = main_config(self.folder, "".join(endpoint_config(r, targets, generation, self.folder) for r in records),
                           generation)
        candidate = self.folder / "nginx.conf.new"
        with atomic_write(candidate) as handle:
            handle.write(text.encode())
        self._temp_dirs()
        # the logs made before nginx opens them: it keeps their mode, and the shadow's hold requests' bodies
        private_file(self.folder / "error.log")
        for record in records:
            for log in SHADOW_LOGS if record.split.mirror else ():
                private_file(self.folder / (record.name + log))
        checked = subprocess.run([nginx, "-t", "-q", "-c", str(candidate)], capture_output=True, text=True,
                                 timeout=30)
        if checked.returncode != 0:
            candidate.unlink(missing_ok=True)
            raise EndpointError("the proxy refused the new configuration, so nothing changed (the old one keeps "
                                f"serving): {(checked.stderr or checked.stdout).strip()[-600:]}")
        candidate.replace(self.conf)
        old_workers = _children(pid) if pid is not None else []
        if pid is not None:
            os.kill(pid, signal.SIGHUP)  # a graceful reload: new workers, the old finish what they hold
        else:
            self._end_orphans()
            started = subprocess.run([nginx, "-c", str(self.conf)], capture_output=True, text=True, timeout=30,
                                     start_new_session=True, cwd=self.folder)
            if started.returncode != 0:
                raise EndpointError(f"the proxy does not start: {(started.stderr or started.stdout).strip()[-600:]}")
        for record in records:
            self._wait_serving(record.port, generation)
        # an old worker still takes a few new connections until it has read its signal: the change counts as made
        # once they are gone (they first finish what they hold; a request longer than this keeps one a while)
        deadline = time.monotonic() + READY_SECONDS
        while any(Path(f"/proc/{worker}").exists() for worker in old_workers) and time.monotonic() < deadline:
            time.sleep(0.01)

    def _end_orphans(self) -> None:
        """Ends the workers a killed master left (its process group): they hold the endpoints' ports, serving the
        old configuration, and a new master could not bind them."""
        try:
            group = int((self.folder / "nginx.pid").read_text().strip())
        except (OSError, ValueError):
            return
        def left() -> list[int]:
            return [pid for pid, _, pgrp, name in _processes() if pgrp == group and name == "nginx"]
        for pid in left():
            os.kill(pid, signal.SIGQUIT)  # it stops listening at once, and finishes what it holds
        deadline = time.monotonic() + READY_SECONDS
        while left() and time.monotonic() < deadline:
            time.sleep(0.02)
        for pid in left():
            os.kill(pid, signal.SIGKILL)

    def _temp_dirs(self) -> None:
        temp = self.folder / "tmp"
        temp.mkdir(exist_ok=True, mode=0o700)
        if os.geteuid() == 0:  # the workers (nobody) write large bodies there: theirs alone
            import pwd
            nobody = pwd.getpwnam("nobody")
            os.chown(temp, nobody.pw_uid, nobody.pw_gid)
            self.folder.chmod(0o711)  # they pass through the folder to it, and read nothing else here

    def _wait_serving(self, port: int, generation: int) -> None:
        deadline = time.monotonic() + READY_SECONDS
        said = ""
        while time.monotonic() < deadline:
            try:
                connection = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                connection.request("GET", GENERATION_PATH)
                said = connection.getresponse().read().decode(errors="replace")
                connection.close()
                if said == str(generation):
                    return
            except OSError as e:
                said = str(e)
            time.sleep(0.02)
        try:
            last = (self.folder / "error.log").read_text(errors="replace").strip().splitlines()[-1]
        except (OSError, IndexError):
            last = ""
        raise EndpointError(f"the proxy did not take its new configuration within {READY_SECONDS:g} s, so the one "
                            f"before keeps serving (127.0.0.1:{port} says generation {said!r}); nginx said: "
                            f"{last.split('[emerg]', 1)[-1].strip()[-300:] or 'nothing'}")

    def _stop(self, pid: int) -> None:
        os.kill(pid, signal.SIGQUIT)  # graceful: what the workers hold is finished first
        deadline = time.monotonic() + READY_SECONDS
        while time.monotonic() < deadline and self.pid() is not None:
            time.sleep(0.02)
