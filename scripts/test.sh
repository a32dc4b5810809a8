#!/usr/bin/env bash
# Installs everything (scripts/setup.sh), then runs the whole test suite: unit, local runtime,
# real Docker engine and headless Chromium tests. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "[test] ruff check"; .venv/bin/ruff check .
echo "[test] mypy backend"; .venv/bin/mypy
exec .venv/bin/python -m pytest "$@"
