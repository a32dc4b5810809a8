"""Pure parts of the Docker runtime and image builder: no engine needed."""

from datetime import UTC, datetime
from pathlib import Path

import pytest

from backend.errors import BaseImageMissingError
from backend.registry import Model, ModelFile
from backend.runtimes.base import DeployConfig, DeploymentRecord, DeploymentSpec, DeploymentState, worker_plan
from backend.runtimes.docker import container_create_args, container_view
from backend.runtimes.environment_images import BasePython, choose_base_image, environment_tag, requirements_for
from backend.runtimes.state import deployment_state

MODEL = Model("sklearn_mnist", 2, "scikit-learn", (ModelFile("m.pkl", "ab" * 32, 10),),
              library_versions={"scikit-learn": "1.5.2", "numpy": "2.0.1"})


FOLDER = Path("/home/me/.local/share/modeldeck/docker/u1")


def spec(**config) -> DeploymentSpec:
    record = DeploymentRecord(name="demo", uid="u1", home_id="h0me1d00", home="/home/me/.local/share/modeldeck",
                              model_name=MODEL.name, model_version=MODEL.version, model_sha256=MODEL.sha256,
                              config=DeployConfig(**config), entry_script="score.py", created_at="2026-01-01T00:00:00")
    return DeploymentSpec(record, MODEL, Path("/tmp/model"), Path("/x/score.py"))


def test_create_args_enforce_limits_and_hardening():
    args = container_create_args(spec(cpu_cores=1.5, memory_gb=0.5, tags={"a": "b"}), "img:1", 40123, "me", FOLDER)
    assert args["nano_cpus"] == 1_500_000_000
    assert args["mem_limit"] == args["memswap_limit"] == "512m"
    assert args["read_only"] is True and args["cap_drop"] == ["ALL"]
    assert args["security_opt"] == ["no-new-privileges"] and args["pids_limit"] == 256
    assert args["user"] == "10001:10001" and "/tmp" in args["tmpfs"]
    assert args["network_mode"] == "none" and "ports" not in args  # the front on 127.0.0.1 reaches its socket
    assert args["labels"]["modeldeck.port"] == "40123"  # chosen once: the URI never moves
    assert args["log_config"] == {"Type": "json-file", "Config": {"max-size": "10m", "max-file": "3"}}
    # Restarts armed from the start: a deploy killed before it was Healthy still leaves a server that
    # comes back after a crash (the server replaces crashed workers itself).
    assert args["restart_policy"] == {"Name": "on-failure", "MaximumRetryCount": 5}
    assert "--keys-file" not in args["command"]
    assert args["environment"]["OMP_NUM_THREADS"] == "1"
    assert args["environment"]["AZUREML_MODEL_DIR"] == args["environment"]["MODEL_DIR"] == "/var/modeldeck/model"


def test_create_args_labels_carry_the_whole_deployment_record_and_the_name_carries_the_home():
    deployment = spec(tags={"team": "x"}, description="hi")
    args = container_create_args(deployment, "img:1", 40123, "host:12:345", FOLDER)
    assert args["name"] == "modeldeck-h0me1d00-demo"
    labels = args["labels"]
    assert labels.pop("modeldeck.creator") == "host:12:345"  # whose deploy it is, until it started
    assert labels.pop("modeldeck.port") == "40123"
    assert labels["modeldeck.name"] == "demo" and labels["modeldeck.home_id"] == "h0me1d00"
    assert (labels["modeldeck.model_name"], labels["modeldeck.model_version"]) == ("sklearn_mnist", "2")
    assert DeploymentRecord.from_labels(labels) == deployment.record


def test_model_script_and_keys_are_mounted_read_only_and_only_the_socket_folder_is_writable():
    args = container_create_args(spec(auth_enabled=True), "img:1", 40123, "me", FOLDER, user=(1000, 1000))
    assert args["mounts"] == [
        {"Type": "bind", "Source": f"{FOLDER}/model", "Target": "/var/modeldeck/model", "ReadOnly": True},
        {"Type": "bind", "Source": f"{FOLDER}/app", "Target": "/var/modeldeck/app", "ReadOnly": True},
        {"Type": "bind", "Source": f"{FOLDER}/run", "Target": "/var/modeldeck/run", "ReadOnly": False},
        {"Type": "bind", "Source": f"{FOLDER}/keys", "Target": "/var/modeldeck/keys", "ReadOnly": True}]
    assert args["user"] == "1000:1000"
    command = args["command"]
    assert command[command.index("--keys-file") + 1] == "/var/modeldeck/keys/keys.json"
    assert command[command.index("--uds") + 1] == "/var/modeldeck/run/server.sock" and "--port" not in command


STARTED = datetime(2026, 11, 26, 6, 0, tzinfo=UTC).timestamp()


def inspect(status, *, restarts=0, exit_code=0, oom=False, started="2026-11-26T06:00:00.0Z", memory=2**30):
    return {"State": {"Status": status, "ExitCode": exit_code, "OOMKilled": oom, "StartedAt": started},
            "RestartCount": restarts, "HostConfig": {"Memory": memory}}


def state_of(attrs, ready, now, **facts):
    """The state of a container with this inspect data at `now`."""
    return deployment_state(container_view(attrs, ready, **facts), now)


def test_state_of_maps_container_status_to_deployment_state():
    now = STARTED + 10  # within the startup grace period
    assert state_of(inspect("running"), True, now)[0] is DeploymentState.HEALTHY
    assert state_of(inspect("running"), False, now)[0] is DeploymentState.TRANSITIONING
    assert state_of(inspect("created"), False, now)[0] is DeploymentState.TRANSITIONING
    failed = state_of(inspect("exited", exit_code=1), False, now)
    assert failed == (DeploymentState.FAILED, "the container exited with code 1", 1)
    crashed = state_of(inspect("restarting", restarts=2, exit_code=1), False, now)
    assert crashed[0] is DeploymentState.UNHEALTHY and "restarted 2 time(s)" in crashed[1]


@pytest.mark.parametrize("status, restarts", [("exited", 0), ("restarting", 1), ("running", 2)])
def test_state_of_a_failed_init_is_failed_even_while_the_engine_retries(status, restarts):
    state, detail, code = state_of(inspect(status, restarts=restarts, exit_code=3), False, STARTED + 10)
    assert (state, code) == (DeploymentState.FAILED, 3) and detail.startswith("init() failed")


def test_state_of_a_created_container_whose_maker_died_is_failed_interrupted():
    assert state_of(inspect("created"), False, STARTED, creator_gone=False)[0] is DeploymentState.TRANSITIONING
    state, detail, _ = state_of(inspect("created"), False, STARTED, creator_gone=True)
    assert state is DeploymentState.FAILED and detail.startswith("interrupted")


def test_state_of_names_an_out_of_memory_kill_and_the_limit():
    state, detail, code = state_of(inspect("exited", exit_code=137, oom=True, memory=64 * 2**20), False, 0)
    assert state is DeploymentState.FAILED and code == 137
    assert "memory limit of 64 MiB: deploy with more memory" in detail


def test_state_of_an_out_of_memory_kill_already_restarting_still_names_it_and_its_code():
    state, detail, code = state_of(inspect("running", restarts=1, exit_code=0, oom=True, memory=32 * 2**20), False,
                                   STARTED + 10)
    assert state is DeploymentState.UNHEALTHY and code == 137
    assert "last exit code 137 — killed for going over its memory limit of 32 MiB" in detail


def test_state_of_a_sigkill_without_oom_does_not_blame_memory():
    state, detail, _ = state_of(inspect("exited", exit_code=137, oom=False), False, 0)
    assert state is DeploymentState.FAILED and detail == "the container exited with code 137 — killed (SIGKILL)"


def test_state_of_a_silent_container_after_the_grace_period_is_unhealthy():
    assert state_of(inspect("running"), False, STARTED + 400)[0] is DeploymentState.UNHEALTHY


def test_requirements_pin_the_models_library_versions():
    text = requirements_for(MODEL, {"scipy": "1.17.1", "joblib": "1.6.0"}, "fastapi==1\n# comment\n")
    assert text.splitlines() == ["fastapi==1", "joblib==1.6.0", "numpy==2.0.1", "scikit-learn==1.5.2", "scipy==1.17.1"]


def test_environment_tag_changes_with_any_input():
    base = environment_tag("sha256:1", "a==1\n", [("Dockerfile", b"x")])
    assert base.startswith("modeldeck/env:") and len(base.split(":")[1]) == 16
    assert base == environment_tag("sha256:1", "a==1\n", [("Dockerfile", b"x")])
    assert base != environment_tag("sha256:2", "a==1\n", [("Dockerfile", b"x")])
    assert base != environment_tag("sha256:1", "a==2\n", [("Dockerfile", b"x")])
    assert base != environment_tag("sha256:1", "a==1\n", [("Dockerfile", b"y")])


def test_base_image_choice_prefers_configured_then_slim_then_offline():
    assert choose_base_image(None, {"python:3.11-slim", "modeldeck/base:bookworm-py311"}.__contains__) == \
        "python:3.11-slim"
    assert choose_base_image(None, {"modeldeck/base:bookworm-py311"}.__contains__) == "modeldeck/base:bookworm-py311"
    with pytest.raises(BaseImageMissingError, match="scripts/build-base-image.sh"):
        choose_base_image("mine:1", {"python:3.11-slim"}.__contains__)


def test_one_single_threaded_worker_per_core():
    assert worker_plan(0.5) == (1, 1) and worker_plan(1) == (1, 1) and worker_plan(2) == (2, 1)
    command = container_create_args(spec(cpu_cores=2), "img", 40123, "me", FOLDER)["command"]
    assert command[command.index("--workers") + 1] == "2"
    assert command[command.index("--max-body-mb") + 1] == "78"  # two workers may each parse a body


def test_pip_platforms_cover_older_manylinux_tags():
    platforms = BasePython("3.11", "2.36", "x86_64").pip_platforms()
    assert platforms[0] == "manylinux_2_36_x86_64"
    assert {"manylinux_2_17_x86_64", "manylinux2014_x86_64", "manylinux1_x86_64"} <= set(platforms)


def test_an_engine_that_stops_answering_is_a_clear_error(tmp_path):
    import docker

    from backend.config import Home, Settings
    from backend.errors import RuntimeUnavailableError
    from backend.runtimes.docker import DockerRuntime

    gone = docker.DockerClient(base_url=f"unix://{tmp_path}/stopped.sock", version="1.41")
    runtime = DockerRuntime(gone, Settings(home=tmp_path), Home(tmp_path, "h0me1d00"))
    with pytest.raises(RuntimeUnavailableError, match="stopped answering .* start it again"):
        runtime.list()
    with pytest.raises(RuntimeUnavailableError):
        runtime.get("demo")


def test_state_of_a_server_whose_init_failed_and_says_so_is_failed_with_the_reason():
    state, detail, _ = state_of(inspect("running"), False, STARTED + 10,
                                init_failed="init() failed: RuntimeError: weights are corrupt (the traceback is in "
                                            "the logs)")
    assert state is DeploymentState.FAILED
    assert detail == "init() failed: RuntimeError: weights are corrupt (the traceback is in the logs)"
