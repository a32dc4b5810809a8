"""Self-contained images (`modeldeck build`): the pure parts without an engine, then real builds run with
plain `docker run` (read-only root, every capability dropped, non-root), as a user on another machine
would. The Docker tests fail (never skip) when no engine answers."""

import io
import json
import os
import shutil
import subprocess
import sys
import time

import joblib
import numpy as np
import pytest
import requests

from backend.data.builtin import load_mnist_test
from backend.errors import InvalidImageTagError
from backend.packaging.self_contained import (
    AUTH_LABEL,
    IMAGE_USER,
    KEYS_PATH,
    MODEL_LABEL,
    SHA256_LABEL,
    BuiltImage,
    default_tag,
    image_manifest,
    validate_tag,
    write_context,
)
from backend.registry import ModelRegistry
from backend.runtimes.probe import free_port

from .conftest import copy_home

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RUN = os.getpid()  # in every image name: two test sessions on one engine never remove each other's images


# --- pure parts ------------------------------------------------------------------------------------

@pytest.mark.parametrize("tag", ["modeldeck/sklearn_mnist:1", "mnist", "registry.local:5000/team/mnist:v2.1",
                                 "a/b/c", "x__y:latest", "m/x:1@sha256:" + "a" * 64])
def test_valid_image_names_are_accepted(tag):
    assert validate_tag(tag) == tag


@pytest.mark.parametrize("tag", ["Upper/Case", "name:", "-lead", "a//b", "name:tag:two", "sp ace", "a:" + "t" * 129])
def test_invalid_image_names_are_refused_with_the_rule(tag):
    with pytest.raises(InvalidImageTagError, match="not a valid Docker image name: use lowercase"):
        validate_tag(tag)


def test_an_empty_image_name_is_asked_for():
    for empty in ("", "  "):
        with pytest.raises(InvalidImageTagError, match="^give an image name, for example modeldeck/sklearn_mnist:1$"):
            validate_tag(empty)


def test_the_default_tag_is_the_model_name_lowercased_and_its_version(sample_model):
    assert default_tag(sample_model.name, sample_model.version) == "modeldeck/sklearn_mnist:1"
    assert default_tag("My Model..v2", 3) == "modeldeck/my-model.v2:3"
    validate_tag(default_tag("My Model..v2", 3))


def test_the_manifest_names_the_model_its_files_libraries_signature_and_auth(sample_model):
    manifest = image_manifest(sample_model, "score_sklearn.py", auth=True)
    assert manifest["model"]["id"] == "sklearn_mnist:1" and manifest["model"]["sha256"] == sample_model.sha256
    assert [f["sha256"] for f in manifest["model"]["files"]] == [f.sha256 for f in sample_model.files]
    assert manifest["libraries"]["scikit-learn"] == sample_model.sklearn_version
    assert manifest["signature"]["n_features"] == 784 and len(manifest["signature"]["class_labels"]) == 10
    assert (manifest["script"], manifest["auth"], manifest["port"], manifest["user"]) == (
        "score_sklearn.py", "key", 8000, IMAGE_USER)
    json.dumps(manifest)  # it goes into the image as JSON


def test_the_build_context_is_readable_by_all_and_writable_by_none(sample_model, sample_model_dir, tmp_path):
    script = tmp_path / "score.py"
    script.write_text("def init(): pass\ndef run(raw_data): return []\n")
    model_dir = tmp_path / "model"
    shutil.copytree(sample_model_dir, model_dir)
    for path in [script, *model_dir.iterdir()]:
        path.chmod(0o600)  # as the registry keeps them
    write_context(tmp_path / "ctx", model_dir, script, image_manifest(sample_model, "score.py", False))
    found = {str(p.relative_to(tmp_path / "ctx")): p.stat().st_mode & 0o777 for p in (tmp_path / "ctx").rglob("*")}
    model_files = {f"bundle/model/{p.name}": 0o644 for p in model_dir.iterdir()}
    assert model_files and found == {"Dockerfile": 0o644, "bundle": 0o755, "bundle/model": 0o755, "bundle/app": 0o755,
                                     "bundle/app/score.py": 0o644, "bundle/manifest.json": 0o644, **model_files}


def test_the_run_command_is_hardened_and_mounts_the_keys_only_with_auth(tmp_path):
    plain = BuiltImage("modeldeck/m:1", "sha256:x", 1, "m:1", "s", False, "env")
    line = plain.run_command(9000)
    for flag in ("-p 127.0.0.1:9000:8000", "--read-only", "--cap-drop ALL", "--security-opt no-new-privileges"):
        assert flag in line
    assert "-v " not in line and line.endswith(" modeldeck/m:1")
    keyed = BuiltImage("modeldeck/m:1", "sha256:x", 1, "m:1", "s", True, "env", keys_file=tmp_path / "k.json")
    assert f"-v {tmp_path / 'k.json'}:{KEYS_PATH}:ro" in keyed.run_command()
    assert plain.save_command() == "docker save modeldeck/m:1 | gzip > m-1.tar.gz"


@pytest.mark.parametrize("keys", ["absent.json", "."], ids=["missing", "a folder in its place"])
def test_an_image_built_with_key_auth_does_not_start_without_its_keys(sample_model_dir, tmp_path, keys):
    path = tmp_path / keys  # `docker run -v` of a host file that does not exist mounts an empty folder
    env = {**os.environ, "MODELDECK_AUTH": "key", "MODELDECK_KEYS_FILE": str(path),
           "MODELDECK_SCRIPT": os.path.join(REPO, "backend/serving/score_sklearn.py"),
           "MODELDECK_MODEL_DIR": str(sample_model_dir), "PYTHONPATH": os.path.join(REPO, "backend")}
    result = subprocess.run([sys.executable, "-m", "serving", "--port", str(free_port())], env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"built with key auth (MODELDECK_AUTH=key) but its keys file {path} is missing or not a file" \
        in result.stderr


# --- real builds, plain docker run ---------------------------------------------------------------

@pytest.fixture(scope="module")
def build_home(trained_home, tmp_path_factory):
    return copy_home(trained_home, tmp_path_factory.mktemp("build") / "home")


def cli_build(home, *args):
    env = {**os.environ, "MODELDECK_HOME": str(home), "MODELDECK_RUNTIME": "docker", "PYTHONPATH": REPO}
    result = subprocess.run([sys.executable, "-m", "backend", "build", *args, "--json"], env=env,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout)


class Containers:
    """Starts containers as `docker run` would; `remove_all` removes them and their anonymous volumes (call it
    before removing their image: an image still used by a container would only lose its name)."""

    def __init__(self, engine):
        self.engine, self.started = engine, []

    def __call__(self, image, **options):
        container = self.engine.containers.run(image, detach=True, **options)
        self.started.append(container)
        return container

    def remove_all(self):
        while self.started:
            self.started.pop().remove(force=True, v=True)


@pytest.fixture()
def containers(engine):
    runner = Containers(engine)
    yield runner
    runner.remove_all()


def wait_ready(url, container, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        container.reload()
        assert container.status != "exited", container.logs().decode()[-2000:]
        try:
            if requests.get(f"{url}/ready", timeout=2).status_code == 200:
                return
        except requests.ConnectionError:
            pass
        time.sleep(0.2)
    raise AssertionError(f"not ready in {timeout} s:\n{container.logs().decode()[-2000:]}")


HARDENED = {"read_only": True, "cap_drop": ["ALL"], "security_opt": ["no-new-privileges"]}


@pytest.mark.docker
def test_a_built_image_answers_as_the_registry_model_under_a_hardened_plain_docker_run(
        engine, build_home, containers, sample_model, tmp_path):
    tag = f"modeldeck-test/sklearn_mnist:{RUN}"
    try:
        built = cli_build(build_home, "sklearn_mnist:1", "--tag", tag)
        image = engine.images.get(built["tag"])
        assert image.labels[MODEL_LABEL] == "sklearn_mnist:1" and image.labels[SHA256_LABEL] == sample_model.sha256
        assert image.labels[AUTH_LABEL] == "none" and image.attrs["Config"]["User"] == IMAGE_USER
        assert not image.attrs["Config"].get("Volumes"), "a plain docker run must leave no anonymous volume"
        assert built["run"].startswith("docker run") and built["save"].startswith(f"docker save {built['tag']}")

        # the run line as printed, minus the tmpfs: a read-only root with nothing writable added still serves
        port = free_port()
        container = containers(built["tag"], ports={"8000/tcp": ("127.0.0.1", port)}, **HARDENED)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, container)
        assert container.exec_run(["id", "-u"]).output.decode().strip() == "10001"
        assert container.exec_run(["touch", "/opt/modeldeck/bundle/x"]).exit_code != 0  # read-only root
        assert container.attrs["HostConfig"]["CapDrop"] == ["ALL"]

        registry = ModelRegistry(build_home / "registry.sqlite3", build_home / "blobs")
        local = registry.materialize(sample_model, tmp_path / "model")
        model = joblib.load(next(local.glob("*.pkl")))
        mnist = load_mnist_test()
        X = mnist.X[:500]
        expected = model.predict(X).tolist()
        answer = requests.post(f"{url}/score", json={"data": X.tolist()}, timeout=30)
        assert answer.status_code == 200 and answer.json() == expected
        npy = io.BytesIO()
        np.save(npy, (mnist.X[:500] * 255).round().astype(np.uint8))
        answer = requests.post(f"{url}/score", data=npy.getvalue(), headers={"Content-Type": "application/x-npy"},
                               timeout=30)
        assert answer.status_code == 200 and answer.json() == model.predict(
            (mnist.X[:500] * 255).round().astype(np.uint8).astype(np.float32) / np.float32(255)).tolist()

        info = requests.get(f"{url}/info", timeout=5).json()
        assert info["model"] == "sklearn_mnist:1" and info["image"]["model"]["sha256"] == sample_model.sha256

        # the Open Inference Protocol, through the real Triton client: the same answers
        import tritonclient.http as triton

        client = triton.InferenceServerClient(f"127.0.0.1:{port}")
        assert client.is_server_live() and client.is_server_ready() and client.is_model_ready("sklearn_mnist")
        tensor = triton.InferInput("input-0", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X)
        result = client.infer("sklearn_mnist", [tensor])
        assert result.as_numpy("predict").tolist() == expected
        assert np.allclose(result.as_numpy("predict_proba"), model.predict_proba(X), atol=1e-6)
        client.close()
        assert requests.post(f"{url}/score", data="nonsense", timeout=5).status_code == 400
        assert requests.get(f"{url}/health", timeout=5).json() == {"status": "alive"}

        # offline: no network at all, it still loads and answers (asked from inside the container)
        sealed = containers(built["tag"], network_mode="none", **HARDENED)
        probe = ("import urllib.request, time\nfor _ in range(100):\n    try:\n        print(urllib.request.urlopen("
                 "'http://127.0.0.1:8000/ready', timeout=1).read().decode()); break\n    except OSError:\n"
                 "        time.sleep(0.2)\n")
        assert sealed.exec_run(["python", "-c", probe]).output.decode().strip() == '{"ready":true}'
    finally:
        containers.remove_all()
        remove_image(engine, tag)


def remove_image(engine, tag):
    import docker.errors

    try:
        engine.images.remove(tag, force=True)
    except docker.errors.ImageNotFound:  # its build failed: the test says why
        pass


@pytest.mark.docker
def test_an_image_built_with_key_auth_starts_only_with_its_keys_and_then_wants_one(engine, build_home, containers):
    tag = f"modeldeck-test/sklearn_mnist:auth-{RUN}"
    try:
        built = cli_build(build_home, "sklearn_mnist:1", "--tag", tag, "--auth", "key")
        assert engine.images.get(built["tag"]).labels[AUTH_LABEL] == "key"
        keys_file = built["keys_file"]
        assert os.stat(keys_file).st_mode & 0o777 == 0o644 and os.stat(os.path.dirname(keys_file)).st_mode & 0o777 == 0o700
        assert f"-v {keys_file}:{KEYS_PATH}:ro" in built["run"]

        bare = containers(built["tag"], **HARDENED)
        assert bare.wait(timeout=60)["StatusCode"] == 2
        assert "is missing or not a file" in bare.logs().decode()

        port = free_port()
        keyed = containers(built["tag"], ports={"8000/tcp": ("127.0.0.1", port)},
                           volumes={keys_file: {"bind": KEYS_PATH, "mode": "ro"}}, **HARDENED)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, keyed)
        row = {"data": [[0.0] * 784]}
        assert requests.post(f"{url}/score", json=row, timeout=10).status_code == 401
        key = json.loads(open(keys_file).read())["secondary"]
        answer = requests.post(f"{url}/score", json=row, headers={"Authorization": f"Bearer {key}"}, timeout=10)
        assert answer.status_code == 200 and len(answer.json()) == 1
        v2 = {"inputs": [{"name": "input-0", "shape": [1, 784], "datatype": "FP32", "data": [0.0] * 784}]}
        infer = f"{url}/v2/models/sklearn_mnist/infer"
        assert requests.post(infer, json=v2, timeout=10).status_code == 401
        assert requests.post(infer, json=v2, headers={"Authorization": f"Bearer {key}"}, timeout=10).status_code == 200
        assert requests.get(f"{url}/v2/health/ready", timeout=10).status_code == 200  # probes stay open
    finally:
        containers.remove_all()
        remove_image(engine, tag)


@pytest.mark.docker
def test_build_refuses_a_bad_tag_an_unknown_model_a_non_python_script_and_a_missing_engine_with_a_message(build_home):
    env = {**os.environ, "MODELDECK_HOME": str(build_home), "MODELDECK_RUNTIME": "docker", "PYTHONPATH": REPO}
    not_python = build_home / "score.txt"
    not_python.write_text("def init(): pass\n")
    cases = [(env, ["sklearn_mnist:1", "--tag", "Bad Tag"], "is not a valid Docker image name"),
             (env, ["no_such_model:9", "--tag", "x/y:1"], "no_such_model"),
             (env, ["sklearn_mnist:1", "--entry-script", str(not_python)], "is not a Python file"),
             ({**env, "DOCKER_HOST": "unix:///nonexistent/docker.sock"}, ["sklearn_mnist:1"],
              "no Docker engine answers at unix:///nonexistent/docker.sock")]
    for environment, args, message in cases:
        result = subprocess.run([sys.executable, "-m", "backend", "build", *args], env=environment,
                                capture_output=True, text=True, timeout=120)
        assert result.returncode != 0 and message in result.stderr and "Traceback" not in result.stderr


@pytest.mark.docker
def test_the_models_page_builds_an_image_and_shows_how_to_run_and_carry_it(engine, trained_home, tmp_path, monkeypatch):
    from .test_dashboard import app, button, dashboard_home

    build = "Build image of sklearn_mnist:1"
    for home in dashboard_home(trained_home, tmp_path, monkeypatch):
        monkeypatch.setenv("MODELDECK_RUNTIME", "docker")
        at = app(id="sklearn_mnist:1").switch_page("views/models.py").run()
        tag = next(t for t in at.text_input if t.label == "Image name")
        assert tag.value == "modeldeck/sklearn_mnist:1"
        tag.set_value("Not A Tag")
        button(at, build).click().run()
        assert not at.exception
        assert "Building an image of sklearn_mnist:1 failed" in at.error[0].value
        assert "is not a valid Docker image name" in at.error[0].value.replace("\\", "")

        tag = f"modeldeck-test/sklearn_mnist:page-{RUN}"
        next(t for t in at.text_input if t.label == "Image name").set_value(tag)
        next(c for c in at.checkbox if c.label == "Key auth").check()
        try:
            button(at, build).click().run()
            assert not at.exception and not at.error, [e.value for e in at.error]
            assert f"Built {tag} from sklearn_mnist:1" in at.success[0].value.replace("\\", "")
            assert engine.images.get(tag).labels[AUTH_LABEL] == "key"

            # a new session (a reload) lists the image with its commands and its keys
            reloaded = app(id="sklearn_mnist:1").switch_page("views/models.py").run()
            assert not reloaded.exception and not reloaded.success
            assert list(reloaded.dataframe[-1].value["image"]) == [tag]
            run_line, save_line = [c.value for c in reloaded.code if c.value.startswith("docker ")]
            keys = home / "image-keys"
            assert "--read-only" in run_line and f":{KEYS_PATH}:ro {tag}" in run_line and f"-v {keys}/" in run_line
            assert save_line.startswith(f"docker save {tag}")
            assert any(str(keys) in c.value for c in reloaded.caption)
        finally:
            remove_image(engine, tag)


@pytest.mark.docker
def test_an_image_of_the_tutorials_own_script_serves_it_unchanged_and_a_broken_one_says_why(
        engine, build_home, containers, sample_model, tmp_path):
    import tritonclient.http as triton

    fixtures = os.path.join(REPO, "tests", "fixtures")
    tags = (f"modeldeck-test/tutorial:{RUN}", f"modeldeck-test/broken:{RUN}")
    try:
        tutorial = cli_build(build_home, "sklearn_mnist:1", "--tag", tags[0],
                             "--entry-script", os.path.join(fixtures, "tutorial_score.py"))
        broken = cli_build(build_home, "sklearn_mnist:1", "--tag", tags[1],
                           "--entry-script", os.path.join(fixtures, "failing_init_score.py"))
        port = free_port()
        container = containers(tutorial["tag"], ports={"8000/tcp": ("127.0.0.1", port)}, **HARDENED)
        url = f"http://127.0.0.1:{port}"
        wait_ready(url, container)
        registry = ModelRegistry(build_home / "registry.sqlite3", build_home / "blobs")
        model = joblib.load(next(registry.materialize(sample_model, tmp_path / "model").glob("*.pkl")))
        X = load_mnist_test().X[:100]
        answer = requests.post(f"{url}/score", json={"data": X.tolist()}, timeout=30)
        assert answer.status_code == 200 and answer.json() == model.predict(X).tolist()
        assert requests.get(f"{url}/info", timeout=5).json()["script"] == "tutorial_score.py"
        client = triton.InferenceServerClient(f"127.0.0.1:{port}")  # V2 around a run()-only script
        tensor = triton.InferInput("input-0", list(X.shape), "FP32")
        tensor.set_data_from_numpy(X)
        assert client.infer("sklearn_mnist", [tensor]).as_numpy("predict").tolist() == model.predict(X).tolist()
        client.close()

        port = free_port()
        failing = containers(broken["tag"], ports={"8000/tcp": ("127.0.0.1", port)}, **HARDENED)
        deadline = time.monotonic() + 60
        while True:
            try:
                answer = requests.get(f"http://127.0.0.1:{port}/ready", timeout=2)
                break
            except requests.ConnectionError:
                assert time.monotonic() < deadline, failing.logs().decode()[-2000:]
                time.sleep(0.2)
        assert answer.status_code == 503
        assert answer.json()["init_failed"].startswith("init() failed: RuntimeError: cannot load the model in "
                                                       "/opt/modeldeck/bundle/model: weights are corrupt")
        failing.reload()
        assert failing.status == "running"  # it answers why, instead of a restart loop
    finally:
        containers.remove_all()
        for tag in tags:
            remove_image(engine, tag)
