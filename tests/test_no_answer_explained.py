"""A request a deployment's server gave no answer to is told as the deployment list tells the deployment:
its name, its state now and why (DeploymentService.explain), behind the Docker front as on the local
runtime; a fault of the scoring script stays what it was."""

from __future__ import annotations

import numpy as np
import pytest

from backend.errors import DeploymentDownError, EndpointUnreachableError, ScoringServerError
from backend.runtimes import DeploymentState
from backend.runtimes.docker import container_name

from .test_docker_runtime import docker_deck  # noqa: F401  (a fixture)


@pytest.mark.docker
def test_the_fronts_502_for_a_stopped_container_becomes_the_deployments_state_and_reason(docker_deck, engine,  # noqa: F811
                                                                                          sample_model):
    deployment = docker_deck.deployments.deploy_and_wait(sample_model, "tp-front", timeout=180)
    engine.containers.get(container_name(docker_deck.home.id, "tp-front")).stop(timeout=10)
    with pytest.raises(ScoringServerError) as refused:  # the front answers for the server that is down
        docker_deck.client.scores(deployment.scoring_uri, np.zeros((1, 784)))
    assert refused.value.status in (502, 503) and "does not answer" in str(refused.value)
    said = docker_deck.deployments.explain(deployment, refused.value)
    now = docker_deck.deployments.get("tp-front")
    assert isinstance(said, DeploymentDownError) and now.state is DeploymentState.FAILED
    assert (said.name, said.state, said.reason) == ("tp-front", "Failed", now.detail)
    assert str(said) == f"deployment 'tp-front' is Failed: {now.detail}"
    assert "docker stop" in now.detail  # the deployment list's words, not the front's


def test_a_killed_local_server_is_named_failed_and_a_scripts_fault_stays_as_it_was(local_deck, tmp_path):
    script = tmp_path / "score.py"
    script.write_text("def init():\n    pass\n\n\ndef run(raw_data):\n    raise ValueError('no')\n")
    model = local_deck.registry.get("sklearn_mnist", 1)
    faulty = local_deck.deployments.deploy_and_wait(model, "tp-faulty", entry_script=script, timeout=180)
    with pytest.raises(ScoringServerError) as fault:
        local_deck.client.scores(faulty.scoring_uri, np.zeros((1, 784)), use_binary=False)
    assert local_deck.deployments.explain(faulty, fault.value) is fault.value  # its logs tell, not its state
    local_deck.runtimes.open("local").stop("tp-faulty")
    with pytest.raises(EndpointUnreachableError) as nothing:  # the port refuses: no front for local
        local_deck.client.scores(faulty.scoring_uri, np.zeros((1, 784)), use_binary=False)
    said = local_deck.deployments.explain(faulty, nothing.value)
    now = local_deck.deployments.get("tp-faulty")
    assert isinstance(said, DeploymentDownError) and now.state is DeploymentState.FAILED
    assert str(said) == f"deployment 'tp-faulty' is Failed: {now.detail}" and "exited with code" in now.detail
    local_deck.deployments.delete("tp-faulty")
    gone = local_deck.deployments.explain(faulty, nothing.value)
    assert isinstance(gone, DeploymentDownError) and str(gone) == ("deployment 'tp-faulty' is gone: it was "
                                                                   "deleted meanwhile")
