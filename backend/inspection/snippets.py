"""Copy-paste requests for an endpoint: a curl command and a Python `requests` snippet."""

from __future__ import annotations

import json
import shlex

import numpy as np


def _values(row: np.ndarray) -> str:
    """The row as a JSON list, 4 decimals (short enough to paste, the same prediction)."""
    return json.dumps([round(float(v), 4) for v in np.asarray(row).ravel()])


def _payload(row: np.ndarray) -> str:
    return '{"data": [' + _values(row) + "]}"


def curl_snippet(scoring_uri: str, row: np.ndarray) -> str:
    """A curl command that POSTs one row as the tutorial's JSON and prints the prediction."""
    return (f"curl -sS -X POST {shlex.quote(scoring_uri)} \\\n  -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(_payload(row))}")


def python_snippet(scoring_uri: str, row: np.ndarray) -> str:
    """Python with `requests` that POSTs one row and prints the prediction."""
    return ("import requests\n\n"
            f"row = {_values(row)}\n"
            f"response = requests.post({scoring_uri!r}, json={{\"data\": [row]}}, timeout=30)\n"
            "response.raise_for_status()\n"
            "print(response.json())\n")
