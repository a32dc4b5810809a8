#!/usr/bin/env bash
# Installs everything ModelDeck needs on Debian/Ubuntu (idempotent; root or sudo):
# Debian packages (python3-venv, docker.io, debootstrap, haproxy, nginx-light, bubblewrap, chromium, wrk, poppler-utils,
# dataset-fashion-mnist), a Docker engine that answers,
# the offline base image, and the Python virtualenv .venv with requirements.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
log() { echo "[setup] $*"; }

need=()
python3 -c 'import venv, ensurepip' 2>/dev/null || need+=(python3-venv)
command -v dockerd >/dev/null || need+=(docker.io)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v haproxy >/dev/null || [ -x /usr/sbin/haproxy ] || need+=(haproxy)  # the front on 127.0.0.1 of every deployment
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || need+=(nginx-light)  # the endpoints' proxy (issue 25)
command -v bwrap >/dev/null || need+=(bubblewrap)  # the local runtime's sandbox
command -v chromium >/dev/null || need+=(chromium)
command -v curl >/dev/null || need+=(curl)
command -v wrk >/dev/null || need+=(wrk)  # load generator of benchmarks/bench_requests.py
command -v pdftoppm >/dev/null || need+=(poppler-utils)  # tests/test_report_layout.py reads the PDF report back
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)  # the second sample model's data
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  $SUDO apt-get update -q >/dev/null
  # no service starts while installing: nginx's package would start a server on port 80 (ModelDeck runs its own,
  # on 127.0.0.1 only); a policy-rc.d of the machine's own is left as it is
  policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    policy=/usr/sbin/policy-rc.d
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$policy" >/dev/null
    $SUDO chmod +x "$policy"
  fi
  apt_ok=0
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends "${need[@]}" >/dev/null && apt_ok=1
  [ -z "$policy" ] || $SUDO rm -f "$policy"
  [ "$apt_ok" = 1 ] || { echo "[setup] apt-get install failed" >&2; exit 1; }
fi

if ! $SUDO docker info >/dev/null 2>&1; then
  if [ -d /run/systemd/system ] && $SUDO systemctl start docker 2>/dev/null; then
    log "started docker with systemctl"
  else
    log "starting dockerd in the background (log: /tmp/modeldeck-dockerd.log)"
    $SUDO sh -c 'nohup dockerd >/tmp/modeldeck-dockerd.log 2>&1 &'
  fi
  for _ in $(seq 1 60); do $SUDO docker info >/dev/null 2>&1 && break; sleep 0.5; done
  $SUDO docker info >/dev/null 2>&1 || { echo "[setup] dockerd did not start:" >&2; tail -20 /tmp/modeldeck-dockerd.log >&2; exit 1; }
fi
log "docker engine $($SUDO docker version -f '{{.Server.Version}}')"
$SUDO bash scripts/build-base-image.sh

if [ ! -x .venv/bin/python ]; then
  log "creating .venv"
  python3 -m venv .venv
fi
if ! cmp -s requirements.txt .venv/.requirements.installed; then
  log "installing Python packages (requirements.txt)"
  .venv/bin/pip install -q --upgrade pip
  .venv/bin/pip install -q -r requirements.txt
  cp requirements.txt .venv/.requirements.installed
fi
# ModelDeck itself, editable: `import backend` from anywhere, the `modeldeck` command (pyproject.toml) and
# the package metadata backend.__version__ is read from (written at install: installed again when pyproject's
# version changes).
installed=$(cd / && "$OLDPWD/.venv/bin/python" -c 'import backend, os; print(os.path.dirname(os.path.dirname(backend.__file__)), backend.__version__)' 2>/dev/null || true)
version=$(.venv/bin/python -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])')
if [ ! -x .venv/bin/modeldeck ] || [ "$installed" != "$PWD $version" ]; then
  log "installing ModelDeck (editable) with its console script"
  .venv/bin/pip install -q --no-deps -e .
fi
log "ready"
