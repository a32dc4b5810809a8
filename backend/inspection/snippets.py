"""Copy-paste requests for an endpoint: a curl command and a Python `requests` snippet. For a
deployment with key auth they fetch the key with `modeldeck deployments keys NAME` (keys never
appear on screen)."""

from __future__ import annotations

import json
import shlex

import numpy as np

from ..data.testset import TestSet

Example = np.ndarray | dict[str, float | str]
"""A row to send: its values in the model's order, or an object of its named columns (a category's as its name)."""


def example_of(testset: TestSet, index: int = 0) -> Example:
    """Row `index` of the set as the snippets send it: its values, or an object of its columns where it has text
    columns (a category by its name: the endpoint takes no index for one)."""
    row = testset.X[index]
    if not testset.categories or testset.feature_names is None:
        return row
    return {name: testset.value_text(j, float(v)) for j, (name, v) in enumerate(zip(testset.feature_names, row,
                                                                                     strict=True))}


def _values(row: Example) -> str:
    """The row as JSON, numbers to 4 decimals (short enough to paste, the same prediction): a list, or an object
    of the model's columns."""
    if isinstance(row, dict):
        return json.dumps({name: value if isinstance(value, str) else round(float(value), 4)
                           for name, value in row.items()})
    return json.dumps([round(float(v), 4) for v in np.asarray(row).ravel()])


def payload(row: Example) -> str:
    """The tutorial's body for one row: {"data": [row]}."""
    return '{"data": [' + _values(row) + "]}"


def curl_snippet(scoring_uri: str, row: Example, keyed: tuple[str, str] | None = None) -> str:
    """A curl command that POSTs one row as the tutorial's JSON and prints the prediction; with `keyed`
    (deployment name, home) for a deployment with key auth, it first reads that deployment's primary
    key, and sends nothing when that fails."""
    fetch = auth = ""
    if keyed:
        name, home = keyed
        fetch = (f"KEY=$(MODELDECK_HOME={shlex.quote(home)} modeldeck deployments keys {shlex.quote(name)} "
                 "--key primary) && \\\n")
        auth = "  -H \"Authorization: Bearer $KEY\" \\\n"
    return (f"{fetch}curl -sS -X POST {shlex.quote(scoring_uri)} \\\n  -H 'Content-Type: application/json' \\\n"
            f"{auth}  -d {shlex.quote(payload(row))}")


def python_snippet(scoring_uri: str, row: Example, keyed: tuple[str, str] | None = None) -> str:
    """Python with `requests` that POSTs one row and prints the prediction (with the key, see curl_snippet)."""
    imports, headers = "import requests\n\n", ""
    if keyed:
        name, home = keyed
        imports = ("import os\nimport subprocess\n\nimport requests\n\n"
                   f"key = subprocess.run([\"modeldeck\", \"deployments\", \"keys\", {json.dumps(name)}, \"--key\", "
                   "\"primary\"],\n"
                   f"                     env={{**os.environ, \"MODELDECK_HOME\": {json.dumps(home)}}},\n"
                   "                     check=True, capture_output=True, text=True).stdout.strip()\n")
        headers = ", headers={\"Authorization\": f\"Bearer {key}\"}"
    return (imports
            + f"row = {_values(row)}\n"
            f"response = requests.post({scoring_uri!r}, json={{\"data\": [row]}}{headers}, timeout=30)\n"
            "response.raise_for_status()\n"
            "print(response.json())\n")
