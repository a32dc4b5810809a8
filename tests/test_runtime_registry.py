"""The registry of runtime kinds: a kind written here and registered with one line is a runtime like
docker and local (CLI choices, MODELDECK_RUNTIME, statuses, deploy, list, delete); kinds are opened on
first use, one that does not answer is asked again later, and "auto" is the first that answers."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

import backend.runtimes as runtimes
from backend.cli import build_parser
from backend.config import Home, Settings
from backend.context import open_modeldeck
from backend.errors import ConfigError, DeploymentError, DeploymentNotFoundError, RuntimeUnavailableError
from backend.progress import Progress
from backend.registry import Model, current_library_versions
from backend.runtimes import Runtimes
from backend.runtimes import kinds as registry
from backend.runtimes.base import Deployment, DeploymentRecord, DeploymentSpec, Keys
from backend.runtimes.kinds import RuntimeKind, register, runtime_choices, runtime_names
from backend.runtimes.local import LocalRuntime
from backend.runtimes.state import Phase, ServerView, deployment_state

from .conftest import copy_home

REPO = Path(__file__).resolve().parent.parent


class ToyRuntime:
    """A whole runtime in a few lines: a deployment is its record in `<home>/toy/<name>.json`; its "server"
    runs from create until stop (it serves nothing, so it has no scoring URI)."""

    name = "toy"

    def __init__(self, folder: Path) -> None:
        self.folder = folder

    @classmethod
    def for_home(cls, settings: Settings, home: Home) -> ToyRuntime:
        return cls(home.path / "toy")

    def describe(self) -> str:
        return f"toy deployments in {self.folder}"

    def environment_versions(self, model: Model) -> dict[str, str]:
        return current_library_versions()

    def create(self, spec: DeploymentSpec, progress: Progress) -> Deployment:
        self.folder.mkdir(exist_ok=True)
        (self.folder / f"{spec.name}.json").write_text(json.dumps({"record": spec.record.to_dict(), "exit": None}))
        return self.get(spec.name)

    def _read(self, name: str) -> dict:
        try:
            return json.loads((self.folder / f"{name}.json").read_text())
        except FileNotFoundError:
            raise DeploymentNotFoundError(f"no deployment named {name!r} (toy runtime)") from None

    def get(self, name: str) -> Deployment:
        data = self._read(name)
        view = ServerView("the toy server", Phase.RUNNING if data["exit"] is None else Phase.ENDED, ready=True,
                          exit_code=data["exit"])
        state, detail, code = deployment_state(view, time.time())
        return Deployment(DeploymentRecord.from_dict(data["record"]), self.name, state, None, detail, code)

    def list(self, *, all_homes: bool = False) -> list[Deployment]:
        return [self.get(path.stem) for path in sorted(self.folder.glob("*.json"))]

    def logs(self, name: str, tail: int | None = None) -> str:
        self._read(name)
        return ""

    def keys(self, name: str) -> Keys:
        self._read(name)
        raise DeploymentError(f"deployment {name!r} has no keys: the toy runtime has no key auth")

    def set_keys(self, name: str, keys: Keys) -> None:
        self.keys(name)

    def stop(self, name: str) -> None:
        data = self._read(name)
        (self.folder / f"{name}.json").write_text(json.dumps({**data, "exit": 0}))

    def remove(self, name: str) -> None:
        self._read(name)
        (self.folder / f"{name}.json").unlink()


class Silent:
    """A kind whose engine never answers; counts how often it was asked."""

    asked = 0

    @classmethod
    def connect(cls, settings: Settings, home: Home) -> ToyRuntime:
        cls.asked += 1
        raise RuntimeUnavailableError("the silent engine does not answer")


@pytest.fixture(autouse=True)
def own_registry(monkeypatch, tmp_path):
    """The registry as ModelDeck registers it, restored after the test; no Docker engine answers."""
    monkeypatch.setattr(registry, "_KINDS", dict(registry._KINDS))
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    Silent.asked = 0


def test_a_kind_registered_with_one_line_is_a_runtime_everywhere(trained_home, tmp_path):
    assert runtime_choices() == ("auto", "docker", "local")
    register(RuntimeKind("toy", f"{__name__}:ToyRuntime.for_home"))  # the one line

    assert runtime_choices() == ("auto", "docker", "local", "toy") and runtime_names()[-1] == "toy"
    assert build_parser().parse_args(["deploy", "m", "--name", "x", "--runtime", "toy"]).runtime == "toy"
    assert build_parser().parse_args(["deployments", "delete", "x", "--runtime", "toy"]).runtime == "toy"
    deck = open_modeldeck(Settings(home=copy_home(trained_home, tmp_path / "home"), runtime="toy"))  # accepted
    assert [(t.name, t.available) for t in deck.runtimes.statuses()] == \
        [("docker", False), ("local", True), ("toy", True)]
    assert isinstance(deck.runtimes.open(), ToyRuntime)  # MODELDECK_RUNTIME=toy: new deployments go there

    model = deck.registry.get("sklearn_mnist", 1)
    deck.deployments.deploy(model, "toy-one")
    snapshot = deck.deployments.snapshot()
    assert [(d.name, d.runtime, str(d.state)) for d in snapshot.deployments] == [("toy-one", "toy", "Healthy")]
    assert snapshot.runtimes[-1].name == "toy" and snapshot.runtimes[-1].description.startswith("toy deployments in")
    deck.runtimes.open("toy").stop("toy-one")
    assert deck.deployments.get("toy-one").detail == "the toy server exited with code 0"
    deck.deployments.delete("toy-one")
    assert deck.deployments.list() == []


def test_a_name_taken_or_auto_is_refused():
    with pytest.raises(ValueError, match="'local' exists already"):
        register(RuntimeKind("local", f"{__name__}:ToyRuntime.for_home"))
    with pytest.raises(ValueError):
        register(RuntimeKind("auto", f"{__name__}:ToyRuntime.for_home"))


def test_auto_is_the_first_kind_that_answers_in_preference_order(tmp_path):
    settings = Settings(home=tmp_path)
    home = Home(tmp_path, "h0me1d00")
    assert isinstance(Runtimes(settings, home).open("auto"), LocalRuntime)  # docker does not answer here
    registry._KINDS.clear()
    register(RuntimeKind("silent", f"{__name__}:Silent.connect"))
    with pytest.raises(RuntimeUnavailableError, match="no runtime answers: the silent engine does not answer"):
        Runtimes(settings, home).open("auto")
    register(RuntimeKind("toy", f"{__name__}:ToyRuntime.for_home"))
    assert isinstance(Runtimes(settings, home).open("auto"), ToyRuntime)
    with pytest.raises(RuntimeUnavailableError, match="unknown runtime 'docker': use auto, silent, toy"):
        Runtimes(settings, home).open("docker")


def test_a_kind_that_did_not_answer_is_asked_again_only_after_a_while(monkeypatch, tmp_path):
    monkeypatch.setattr(runtimes, "RETRY_UNAVAILABLE_SECONDS", 0.5)
    register(RuntimeKind("silent", f"{__name__}:Silent.connect"))
    targets = Runtimes(Settings(home=tmp_path), Home(tmp_path, "h0me1d00"))
    for _ in range(3):
        assert targets.statuses()[-1] == runtimes.RuntimeStatus("silent", False, "the silent engine does not answer")
    assert Silent.asked == 1
    time.sleep(0.6)
    with pytest.raises(RuntimeUnavailableError):
        targets.open("silent")
    assert Silent.asked == 2


def test_a_runtime_is_opened_once_until_it_is_forgotten(tmp_path):
    register(RuntimeKind("toy", f"{__name__}:ToyRuntime.for_home"))
    targets = Runtimes(Settings(home=tmp_path), Home(tmp_path, "h0me1d00"))
    first = targets.open("toy")
    assert targets.open("toy") is first and targets.open("local") is targets.open("local")
    targets.forget("toy")  # it stopped answering: the next use opens it again
    assert targets.open("toy") is not first


def test_an_unknown_modeldeck_runtime_is_a_config_error_naming_the_choices(tmp_path):
    with pytest.raises(ConfigError, match="MODELDECK_RUNTIME='kubernetes' is not one of auto, docker, local"):
        open_modeldeck(Settings.from_env({"MODELDECK_HOME": str(tmp_path / "home"),
                                          "MODELDECK_RUNTIME": "Kubernetes"}))


def test_no_kind_is_imported_before_it_is_used(tmp_path):
    """The registry, the settings and the local runtime load neither the Docker SDK nor the Docker runtime."""
    code = ("import sys\nfrom pathlib import Path\nfrom backend.config import Settings\n"
            "from backend.context import open_modeldeck\n"
            f"deck = open_modeldeck(Settings(home=Path({str(tmp_path / 'home')!r}), runtime='local'))\n"
            "deck.runtimes.open()\n"
            "print([m for m in sys.modules if m.split('.')[0] == 'docker' or m == 'backend.runtimes.docker'])\n")
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         env={**os.environ, "PYTHONPATH": str(REPO)})
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
