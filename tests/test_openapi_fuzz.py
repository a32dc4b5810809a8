"""schemathesis (the real CLI, every check) against a local deployment's /openapi.json: the documented
API and the server agree, with key auth on and off. Bounded: a fixed number of examples per operation
and a time limit."""

import subprocess
import sys
from pathlib import Path

import pytest

from backend.runtimes.base import DeployConfig

SCHEMATHESIS = Path(sys.executable).with_name("schemathesis")
EXAMPLES_PER_OPERATION = "40"


@pytest.mark.parametrize("auth", [False, True], ids=["open", "key-auth"])
def test_schemathesis_finds_nothing_against_the_openapi_document(local_deck, sample_model, auth):
    deck = local_deck
    deployment = deck.deployments.deploy_and_wait(sample_model, "fuzzed", DeployConfig(auth_enabled=auth), timeout=180)
    base = (deployment.scoring_uri or "").rsplit("/score", 1)[0]
    headers = ["-H", f"Authorization: Bearer {deck.deployments.keys('fuzzed').secondary}"] if auth else []
    try:
        run = subprocess.run([str(SCHEMATHESIS), "run", f"{base}/openapi.json", "--checks", "all",
                              "--max-examples", EXAMPLES_PER_OPERATION, "--generation-database", "none",
                              "--request-timeout", "30", "--seed", "9", *headers],
                             capture_output=True, text=True, timeout=300)
        assert run.returncode == 0, run.stdout[-4000:] + run.stderr[-2000:]
        assert "No issues found" in run.stdout
        assert deck.deployments.get("fuzzed").state.value == "Healthy"  # and the server is still up
    finally:
        deck.deployments.delete("fuzzed")
