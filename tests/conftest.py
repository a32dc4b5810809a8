"""Shared fixtures: one trained sample model per test run, real runtimes, cleanup of what tests start; and the
tiers every test lands in by what it uses (no marker to remember).

Tiers: a test is `docker` when it uses the `engine` fixture (the one way to a Docker client that fails, never
skips, when no engine answers) or is parametrized with the runtime "docker"; `browser` when its module drives
Chromium through Playwright; `local` when it or one of its fixtures deploys (a real sandboxed server, seconds
each); `training` when it trains a sample model itself (tens of CPU seconds). `scripts/test.sh --quick` runs
`-m "not docker and not browser and not local and not training"`; the whole suite runs every test.

Parallel runs (pytest-xdist): each worker has its own temporary folder, so its homes, home ids, container
names and ports are its own; the sample models are trained once for the whole run (`shared_folder`); the
tests of a module that share a module-scoped fixture run on one worker (`--dist loadgroup`), which builds
the fixture once; the tests that build images all run on one worker (see pytest_collection_modifyitems).
scripts/test.sh runs the browser tests after the rest, in two workers of their own."""

from __future__ import annotations

import fcntl
import inspect
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from backend.config import Settings
from backend.context import ModelDeck, open_modeldeck
from backend.registry import Model, ModelRegistry, current_library_versions
from backend.runtimes.environment_images import BUILT_BY_LABEL, ImageBuilder
from backend.runtimes.front import Front
from backend.training import train_sample

TESTS = Path(__file__).resolve().parent
FIXTURES = TESTS / "fixtures"


def copy_home(trained_home: Path, dest: Path) -> Path:
    """A new MODELDECK_HOME at `dest` (made, or empty) with the session's registry (not its deployments)."""
    dest.mkdir(exist_ok=True)
    shutil.copyfile(trained_home / "registry.sqlite3", dest / "registry.sqlite3")
    shutil.copytree(trained_home / "blobs", dest / "blobs")
    return dest


def pytest_sessionfinish(session: pytest.Session) -> None:
    """Environment and self-contained images that this run's homes built (their `modeldeck.built_by` label names a
    home under the run's temporary folder) are removed at its end; no other image is touched. In a parallel run
    the controller does it once every worker is done (a worker that ended first would take the environment image
    from under the others). Without an engine this does nothing: the tests that need one fail on their own."""
    if hasattr(session.config, "workerinput"):
        return
    run_root = str(session.config._tmp_path_factory.getbasetemp())  # workers' folders are below it
    try:
        import docker

        client = docker.from_env()
        images = client.images.list(filters={"label": BUILT_BY_LABEL})  # environment and self-contained images
    except Exception:
        return
    for image in images:
        if image.labels.get(BUILT_BY_LABEL, "").startswith(run_root + "/"):
            for ref in image.tags or [image.id]:  # an image that lost its name is removed by its id
                try:
                    client.images.remove(ref)
                except docker.errors.APIError:
                    pass  # a container of another session uses it: leave it


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by these marks and xdist reads the groups
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Marks each test with its tiers (`docker`, `browser`, `local`, `training`) from what it uses, and puts the tests
    that build images in one xdist group, and those of a module that share a module- or class-scoped fixture in
    one."""
    drives_browser: dict[Path, bool] = {}
    bodies: dict[Callable[..., object], str] = {}
    for item in items:
        if not isinstance(item, pytest.Function):
            continue
        module = Path(str(item.path))
        if module not in drives_browser:
            drives_browser[module] = "playwright" in module.read_text(encoding="utf-8")
        if drives_browser[module]:
            item.add_marker(pytest.mark.browser)
        params = getattr(item, "callspec", None)
        runtimes = params.params.values() if params is not None else ()
        if "engine" in item.fixturenames or any(isinstance(value, str) and value == "docker" for value in runtimes):
            item.add_marker(pytest.mark.docker)
        definitions = item._fixtureinfo.name2fixturedefs
        fixtures = [definitions[name][-1] for name in item.fixturenames if definitions.get(name)]
        if any(does(DEPLOYS, function, bodies) for function in [item.function] + [f.func for f in fixtures]):
            item.add_marker(pytest.mark.local)
        # the session's sample models and environment image are made once for the whole run: only a test's own count
        own = [item.function] + [f.func for f in fixtures if f.scope != "session"]
        if any(does(TRAINS, function, bodies) for function in own):
            item.add_marker(pytest.mark.training)
        # One worker runs every test that builds images: a build's cached layers can be another's parents, and
        # removing one image removes its untagged parents ("unknown parent image ID" in a clean clone's CI). Other
        # Docker tests run anywhere: each home has its own containers and front.
        if item.get_closest_marker("docker") is not None and any(does(BUILDS_IMAGES, f, bodies) for f in own):
            item.add_marker(pytest.mark.xdist_group("image-builds"))
        elif any(definitions.get(name) and definitions[name][-1].scope in ("module", "class")
                 for name in item.fixturenames):
            item.add_marker(pytest.mark.xdist_group(item.nodeid.split("::")[0]))


def pytest_configure(config: pytest.Config) -> None:
    """Gives the run's processes one BLAS thread each, and refuses a parallel run whose `--dist loadgroup` would not
    group.

    Several workers share the cores: each one's BLAS threads would only spin while waiting for each other (the
    linear-model tests took 2.6x the CPU with two threads on a quiet 2-core machine). The environment reaches the
    workers and the CLI and dashboard processes tests start; deployments set their own (runtimes/base.py).
    pytest-xdist 3.8 carries a test's group in its node id, which pytest 9.2 no longer lets a plugin change
    (pytest-xdist#1386), and nothing else says so: the tests that must share a worker would run at once and race."""
    from importlib.metadata import version

    from packaging.version import Version
    from threadpoolctl import threadpool_limits

    for variable in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(variable, "1")
    threadpool_limits(1)  # this process loaded numpy before the variables were set

    if config.getoption("dist", "no") == "loadgroup" and Version(version("pytest")) >= Version("9.2") \
            and Version(version("pytest-xdist")) < Version("3.9"):
        raise pytest.UsageError(f"--dist loadgroup does not group under pytest {version('pytest')} with pytest-xdist "
                                f"{version('pytest-xdist')}: install requirements.txt's pytest")


# A call of deploy(...), finish_deploy(...), .deploy(...) or deploy_and_wait(...), the CLI's "deploy", the Deploy button.
DEPLOYS = re.compile(r"""(?:\b|_)deploy(?:_and_wait)?\(|["'](?:deploy|Deploy)["']""")
# Building an image in the test: `modeldeck build`, the Models page's button, an environment image, any image.
BUILDS_IMAGES = re.compile(r"""cli_build\(|images\.build\(|\.ensure\(|["']build["']|Build image""")
# Training a sample model in the test: the function, a first run, the CLI's train-sample, the page's button.
TRAINS = re.compile(r"""train_sample\(|ensure_sample_models\(|train-sample|Train sample model|\btrain\b""")


def does(pattern: re.Pattern[str], function: Callable[..., object], bodies: dict[Callable[..., object], str]) -> bool:
    """Whether `function`, a test or a fixture of tests/, says `pattern` in its body (its signature left out: a
    test's name may speak of deploying, and its arguments name fixtures). `bodies` keeps each function's body
    read (inspect.getsource is most of the collection's own time)."""
    if function not in bodies:
        source_file = inspect.getsourcefile(function)
        ours = source_file is not None and Path(source_file).parent == TESTS
        bodies[function] = re.sub(r"def \w+\([^)]*\)", "", inspect.getsource(function)) if ours else ""
    return pattern.search(bodies[function]) is not None


SHARED_DIR_ENV = "MODELDECK_TEST_SHARED_DIR"


def shared_folder(tmp_path_factory: pytest.TempPathFactory, name: str, make: Callable[[Path], None]) -> Path:
    """The folder `name` made by `make` once for the whole run: in a parallel run the first worker to ask makes it
    (under a lock, in the run's temporary folder) and the others wait for it, then read it. With
    MODELDECK_TEST_SHARED_DIR set (scripts/test.sh's two runs), in that folder: once for both runs."""
    base = tmp_path_factory.getbasetemp()
    root = Path(os.environ.get(SHARED_DIR_ENV) or (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base))
    folder = root / name
    with open(root / f"{name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # released when the file closes, also when `make` fails
        if not (folder / ".made").exists():
            shutil.rmtree(folder, ignore_errors=True)
            folder.mkdir()
            make(folder)
            (folder / ".made").touch()
    return folder


@pytest.fixture(scope="session")
def engine(trained_home, tmp_path_factory):
    """The Docker engine's client, the sample model's environment image built on it once for the whole run (not by
    several parallel workers at once; with MODELDECK_TEST_SHARED_DIR, once for both of scripts/test.sh's runs,
    which removes it at the end). A test that needs an engine fails (never skips) when none answers."""
    try:
        import docker

        client = docker.from_env()
        client.ping()
    except Exception as e:
        pytest.fail(f"no Docker engine answers ({e}): run scripts/setup.sh, which installs and starts one")

    def build(folder: Path) -> None:  # labelled as built by `folder`, under the run's folder: removed at its end
        settings = Settings(home=trained_home)
        model = ModelRegistry(settings.registry_path, settings.blobs_dir).get("sklearn_mnist", 1)
        ImageBuilder(client, folder / "cache", built_by=str(folder)).ensure(model, current_library_versions(),
                                                                            lambda event: None)

    shared_folder(tmp_path_factory, "environment-image", build)
    return client


@pytest.fixture(scope="session")
def trained_home(tmp_path_factory) -> Path:
    """A MODELDECK_HOME whose registry holds sklearn_mnist:1 only, the tutorial's LogisticRegression
    (trained once per session): what most tests deploy. A first run registers version 2 too; the tests
    of the first run train in a fresh home, and to this home (as to one made by an older ModelDeck)
    `train-sample --algorithm svc` adds version 2."""
    def train(home: Path) -> None:
        settings = Settings(home=home, runtime="local")
        train_sample(ModelRegistry(settings.registry_path, settings.blobs_dir), "mnist", "logistic")

    return shared_folder(tmp_path_factory, "modeldeck-home", train)


@pytest.fixture(scope="session")
def first_run_home(trained_home, tmp_path_factory) -> Path:
    """A MODELDECK_HOME whose registry holds what a first run registers: sklearn_mnist:1 (the session's) and :2,
    the calibrated SVC (trained once per run, for the tests that compare the two versions)."""
    def train(home: Path) -> None:
        copy_home(trained_home, home)
        settings = Settings(home=home, runtime="local")
        train_sample(ModelRegistry(settings.registry_path, settings.blobs_dir), "mnist", "svc")

    return shared_folder(tmp_path_factory, "modeldeck-home-first-run", train)


@pytest.fixture(scope="session")
def fashion_home(tmp_path_factory) -> tuple[Path, dict]:
    """A MODELDECK_HOME holding sklearn_fashion:1 only, trained by `modeldeck train-sample --dataset
    fashion-mnist` (once per session), and that command's JSON output."""
    def train(folder: Path) -> None:
        env = {**os.environ, "MODELDECK_HOME": str(folder / "home"), "MODELDECK_RUNTIME": "local",
               "PYTHONPATH": str(Path(__file__).resolve().parent.parent)}
        trained = subprocess.run([sys.executable, "-m", "backend", "train-sample", "--dataset", "fashion-mnist",
                                  "--json"], env=env, capture_output=True, text=True, timeout=300)
        assert trained.returncode == 0, trained.stderr
        (folder / "trained.json").write_text(trained.stdout)

    folder = shared_folder(tmp_path_factory, "fashion", train)
    return folder / "home", json.loads((folder / "trained.json").read_text())


@pytest.fixture(scope="session")
def sample_model(trained_home) -> Model:
    """sklearn_mnist:1 (89.53 % on the MNIST 10k test set; predicts 7, 2, 1 for its first three images)."""
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


def deck_over(registry_home: Path, home: Path) -> Iterator[ModelDeck]:
    """A ModelDeck on the local runtime at `home`, with the registry of `registry_home`; every deployment the
    test leaves is deleted afterwards."""
    deck = open_modeldeck(Settings(home=copy_home(registry_home, home), runtime="local"))
    yield deck
    from backend.services import endpoints

    for view in endpoints.list_endpoints(deck):  # the proxy stops with the last
        endpoints.delete_endpoint(deck, view.record.name)
    for deployment in deck.deployments.list():
        deck.deployments.delete(deployment.name)


@pytest.fixture()
def local_deck(trained_home, tmp_path) -> Iterator[ModelDeck]:
    """A ModelDeck on the local runtime over the session's registry (sklearn_mnist:1), its deployments in this
    test's folder."""
    yield from deck_over(trained_home, tmp_path / "home")


@pytest.fixture()
def first_run_deck(first_run_home, tmp_path) -> Iterator[ModelDeck]:
    """`local_deck` with sklearn_mnist:1 and :2, as a first run registers them."""
    yield from deck_over(first_run_home, tmp_path / "home")


@pytest.fixture()
def cli_env(tmp_path) -> dict[str, str]:
    """Environment for running `python -m backend` in a subprocess with a fresh home."""
    env = {**os.environ, "MODELDECK_HOME": str(tmp_path / "cli-home"), "MODELDECK_RUNTIME": "local"}
    env["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return env


@pytest.fixture()
def trained_cli_env(cli_env, trained_home) -> dict[str, str]:
    """`cli_env` whose home holds the session's sklearn_mnist:1."""
    copy_home(trained_home, Path(cli_env["MODELDECK_HOME"]))
    return cli_env


@pytest.fixture()
def first_run_cli_env(cli_env, first_run_home) -> dict[str, str]:
    """`cli_env` whose home holds sklearn_mnist:1 and :2, as a first run leaves it (trained once per run)."""
    copy_home(first_run_home, Path(cli_env["MODELDECK_HOME"]))
    return cli_env


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


@pytest.fixture(scope="module")
def cancer_deployment(tmp_path_factory):
    """(deck, deployment, test set, the registered model as scikit-learn loads it): the breast-cancer sample (a table
    model) trained and deployed on the local runtime in a home of the module's; deleted after its last test."""
    import joblib

    from backend.data.builtin import load_breast_cancer_test
    from backend.runtimes.base import DeployConfig

    home = tmp_path_factory.mktemp("cancer-home")
    settings = Settings(home=home, runtime="local")
    model = train_sample(ModelRegistry(settings.registry_path, settings.blobs_dir), "breast-cancer", "logistic")
    deck = open_modeldeck(settings)
    deployment = deck.deployments.deploy_and_wait(model, "cancer", DeployConfig(), runtime="local", timeout=180)
    yield deck, deployment, load_breast_cancer_test(), joblib.load(home / "blobs" / model.files[0].sha256)
    for left in deck.deployments.list():
        deck.deployments.delete(left.name)


def stroke_png() -> bytes:
    """A 28x28 PNG of one white stroke on black (a "1"): a digit-like image the Test page and the CLI prepare."""
    import io

    from PIL import Image, ImageDraw

    image = Image.new("L", (28, 28), 0)
    ImageDraw.Draw(image).line([(14, 4), (14, 24)], fill=255, width=3)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
