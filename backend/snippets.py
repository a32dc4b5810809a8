"""Copy-paste requests for an endpoint: a curl command and a Python `requests` snippet."""

from __future__ import annotations

import json
import shlex

import numpy as np


def _payload(row: np.ndarray) -> str:
    values = ",".join(f"{float(v):.4g}" for v in np.asarray(row).ravel())
    return '{"data": [[' + values + "]]}"


def curl_snippet(scoring_uri: str, row: np.ndarray) -> str:
    """A curl command that POSTs one row as the tutorial's JSON and prints the prediction."""
    return (f"curl -sS -X POST {shlex.quote(scoring_uri)} \\\n  -H 'Content-Type: application/json' \\\n"
            f"  -d {shlex.quote(_payload(row))}")


def python_snippet(scoring_uri: str, row: np.ndarray) -> str:
    """Python with `requests` that POSTs one row and prints the prediction."""
    values = json.dumps([round(float(v), 4) for v in np.asarray(row).ravel()])
    return ("import requests\n\n"
            f"row = {values}\n"
            f"response = requests.post({scoring_uri!r}, json={{\"data\": [row]}}, timeout=30)\n"
            "response.raise_for_status()\n"
            "print(response.json())\n")
