#!/usr/bin/env bash
# scripts/test.sh: installs everything (scripts/setup.sh), then ruff, mypy and the whole test suite: unit, local
# runtime, real Docker engine and headless Chromium tests (those alone, after the rest in parallel pytest-xdist workers).
# What .ci/run calls.
# scripts/test.sh --quick: the tests that need neither Docker nor a browser, deploy nothing and train no model
# (tests/conftest.py tiers them), for while you work. No system setup once .venv exists (only its Python packages are brought up to
# requirements.txt); ruff and mypy still run; no Docker engine is reachable from its tests.
# Extra arguments go to pytest (e.g. -n 0 for one process, -k to choose tests).
set -euo pipefail
cd "$(dirname "$0")/.."
quick=0
if [ "${1:-}" = "--quick" ]; then quick=1; shift; fi

if [ $quick = 1 ] && [ -x .venv/bin/python ]; then
  if ! cmp -s requirements.txt .venv/.requirements.installed; then
    echo "[test] installing Python packages (requirements.txt)"
    .venv/bin/pip install -q -r requirements.txt
    cp requirements.txt .venv/.requirements.installed
  fi
else
  bash scripts/setup.sh
fi
echo "[test] ruff check"; .venv/bin/ruff check .
echo "[test] mypy (backend, dashboard)"; .venv/bin/mypy
echo "[test] lint-imports (the layers of backend/)"; .venv/bin/lint-imports --no-cache
# pytest keeps its assertion-rewritten test modules and plugins (hypothesis, schemathesis) as .pyc files only when
# bytecode may be written: without them every process (each worker) rewrites them again, several seconds each.
unset PYTHONDONTWRITEBYTECODE
if [ $quick = 1 ]; then
  # A test that reaches Docker without asking for the `engine` fixture fails here instead of running untiered.
  export DOCKER_HOST=unix:///nonexistent/the-quick-tier-has-no-docker.sock
  exec .venv/bin/python -m pytest -n "${MODELDECK_TEST_WORKERS:-3}" -m "not docker and not browser and not local and not training" "$@"
fi
# Two runs: everything but the browser tests in parallel workers, then the browser tests alone in two workers:
# beside the parallel run's load, Chromium pages on 2 cores rendered too late for their timeouts (a clean clone's CI).
# They share the sample models and the environment image (tests/conftest.py's shared_folder), made once, whose
# image is removed here at the end (each run removes the images its own tests built).
shared=$(mktemp -d -t modeldeck-tests.XXXXXX)
export MODELDECK_TEST_SHARED_DIR=$shared
cleanup() {
  docker image ls -q --filter "label=modeldeck.built_by=$shared/environment-image" | xargs -r docker image rm -f \
    > /dev/null 2>&1 || true
  rm -rf "$shared"
}
trap cleanup EXIT
status=0
.venv/bin/python -m pytest -n "${MODELDECK_TEST_WORKERS:-4}" -m "not browser" "$@" || status=$?
# Without arguments, only the modules that drive Chromium are collected (each worker imports what it collects).
browser_modules=()
if [ $# = 0 ]; then mapfile -t browser_modules < <(grep -l playwright tests/test_*.py); fi
.venv/bin/python -m pytest -n "${MODELDECK_BROWSER_WORKERS:-2}" -m browser "${browser_modules[@]}" "$@" || status=$?
exit $status
