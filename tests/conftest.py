"""Shared fixtures: one trained sample model per test session, real runtimes, cleanup of what tests start."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from backend.config import Settings
from backend.context import ModelDeck, open_modeldeck
from backend.images import BUILT_BY_LABEL
from backend.registry import Model, ModelRegistry
from backend.runtimes.front import Front
from backend.training import train_sample

FIXTURES = Path(__file__).parent / "fixtures"


def copy_home(trained_home: Path, dest: Path) -> Path:
    """A new MODELDECK_HOME at `dest` with the session's registry (not its deployments)."""
    dest.mkdir()
    shutil.copyfile(trained_home / "registry.sqlite3", dest / "registry.sqlite3")
    shutil.copytree(trained_home / "blobs", dest / "blobs")
    return dest


@pytest.fixture(scope="session", autouse=True)
def remove_environment_images_built_by_tests(tmp_path_factory):
    """Environment and self-contained images that this session's homes built (their `modeldeck.built_by` label names a
    home under this session's temporary folder) are removed at its end; no other image is touched.
    Without an engine this does nothing: the tests that need one fail on their own."""
    session_root = str(tmp_path_factory.getbasetemp())
    yield
    try:
        import docker

        client = docker.from_env()
        images = client.images.list(filters={"label": BUILT_BY_LABEL})  # environment and self-contained images
    except Exception:
        return
    for image in images:
        if image.labels.get(BUILT_BY_LABEL, "").startswith(session_root + "/"):
            for ref in image.tags or [image.id]:  # an image that lost its name is removed by its id
                try:
                    client.images.remove(ref)
                except docker.errors.APIError:
                    pass  # a container of another session uses it: leave it


@pytest.fixture(scope="session")
def engine():
    """The Docker engine's client; a test that needs one fails (never skips) when none answers."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as e:
        pytest.fail(f"no Docker engine answers ({e}): run scripts/setup.sh, which installs and starts one")
    return client


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory) -> Path:
    """A MODELDECK_HOME whose registry holds sklearn_mnist:1 only, the tutorial's LogisticRegression
    (trained once per session): what most tests deploy. A first run registers version 2 too; the tests
    of the first run train in a fresh home, and to this home (as to one made by an older ModelDeck)
    `train-sample --algorithm svc` adds version 2."""
    home = tmp_path_factory.mktemp("modeldeck-home")
    settings = Settings(home=home, runtime="local")
    train_sample(ModelRegistry(settings.registry_path, settings.blobs_dir), "mnist", "logistic")
    return home


@pytest.fixture(scope="session")
def fashion_home(tmp_path_factory) -> tuple[Path, dict]:
    """A MODELDECK_HOME holding sklearn_fashion:1 only, trained by `modeldeck train-sample --dataset
    fashion-mnist` (once per session), and that command's JSON output."""
    home = tmp_path_factory.mktemp("fashion-home")
    env = {**os.environ, "MODELDECK_HOME": str(home), "MODELDECK_RUNTIME": "local",
           "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
    trained = subprocess.run([sys.executable, "-m", "backend", "train-sample", "--dataset", "fashion-mnist", "--json"],
                             env=env, capture_output=True, text=True, timeout=300)
    assert trained.returncode == 0, trained.stderr
    return home, json.loads(trained.stdout)


@pytest.fixture(scope="session")
def sample_model(trained_home) -> Model:
    """sklearn_mnist:1 (89.57 % on the MNIST 10k test set; predicts 7, 2, 1 for its first three images)."""
    settings = Settings(home=trained_home)
    return ModelRegistry(settings.registry_path, settings.blobs_dir).get("sklearn_mnist", 1)


@pytest.fixture(scope="session")
def sample_model_dir(trained_home, sample_model, tmp_path_factory) -> Path:
    """The sample model's files, materialized as a deployment sees them."""
    settings = Settings(home=trained_home)
    registry = ModelRegistry(settings.registry_path, settings.blobs_dir)
    return registry.materialize(sample_model, tmp_path_factory.mktemp("model"))


@pytest.fixture()
def model_env(sample_model_dir, monkeypatch) -> Path:
    monkeypatch.setenv("AZUREML_MODEL_DIR", str(sample_model_dir))
    monkeypatch.setenv("MODEL_DIR", str(sample_model_dir))
    return sample_model_dir


@pytest.fixture()
def local_deck(trained_home, tmp_path) -> ModelDeck:
    """A ModelDeck on the local runtime over the session's registry, its deployments in this test's folder.
    Every deployment the test leaves is deleted afterwards."""
    deck = open_modeldeck(Settings(home=copy_home(trained_home, tmp_path / "home"), runtime="local"))
    yield deck
    for deployment in deck.deployments.list():
        deck.deployments.delete(deployment.name)


@pytest.fixture()
def cli_env(tmp_path) -> dict[str, str]:
    """Environment for running `python -m backend` in a subprocess with a fresh home."""
    env = {**os.environ, "MODELDECK_HOME": str(tmp_path / "cli-home"), "MODELDECK_RUNTIME": "local"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env


def remove_home_deployments(engine, home: Path) -> None:
    """Removes every container of the home at `home` behind ModelDeck's back (as `docker rm -f` would), then
    everything its front serves, so no container, volume or front of a test's home outlives the test."""
    home_id = (home / "home-id").read_text().strip() if (home / "home-id").exists() else None
    if home_id and engine is not None:
        for container in engine.containers.list(all=True, filters={"label": f"modeldeck.home_id={home_id}"}):
            container.remove(force=True, v=True)
        for volume in engine.volumes.list(filters={"label": f"modeldeck.home_id={home_id}"}):
            volume.remove(force=True)
    front = Front(home / "front")
    for route in front.routes():
        front.withdraw(route.key)
