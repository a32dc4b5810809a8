"""ModelDeck's version has one source, pyproject.toml, read through the installed package metadata."""

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import backend

ROOT = Path(__file__).resolve().parents[1]


def _run(code_or_args: list[str]) -> str:
    done = subprocess.run([sys.executable, *code_or_args], env={**os.environ, "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=120, check=True)
    return done.stdout.strip()


def test_the_version_is_pyprojects():
    """Fails when the installed metadata is stale (pyproject's version changed since the install):
    scripts/setup.sh installs the project again then."""
    with open(ROOT / "pyproject.toml", "rb") as handle:
        assert backend.__version__ == tomllib.load(handle)["project"]["version"]


def test_the_cli_shows_the_version():
    assert _run(["-m", "backend", "--version"]) == f"modeldeck {backend.__version__}"


def test_importing_the_package_stays_cheap_until_the_version_is_asked():
    shown = _run(["-c", "import sys, backend; print('importlib.metadata' in sys.modules, backend.__version__, "
                        "'importlib.metadata' in sys.modules)"])
    assert shown == f"False {backend.__version__} True"
