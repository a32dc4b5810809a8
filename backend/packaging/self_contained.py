"""Self-contained images: one registered model, its scoring script and a manifest baked into the
model's environment image, so `docker run -p 127.0.0.1:PORT:8000 IMAGE` serves it anywhere, offline,
hardened as deployments are, and `docker save IMAGE` carries it to a machine with no network.

Options are read from the environment at start (see serving/__main__.py), so one image serves under
`docker run`, a Kubernetes Deployment and a KServe predictor alike.
"""

from __future__ import annotations

import hashlib
import json
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import ASSETS_DIR
from ..deployments import check_compatible, default_entry_script
from ..errors import ImageBuildError, InvalidImageTagError, ModelDeckError, RuntimeUnavailableError
from ..files import readable_by_all
from ..progress import Progress, quiet, step
from ..registry import Model, current_library_versions
from ..runtimes.base import Keys
from ..runtimes.docker import DockerRuntime
from ..runtimes.environment_images import BUILT_BY_LABEL, ImageBuilder

if TYPE_CHECKING:
    from ..context import ModelDeck

DOCKERFILE = ASSETS_DIR / "Dockerfile.model"
IMAGE_PORT = 8000
IMAGE_UID = 10001  # the server's user and group in every ModelDeck image (assets/Dockerfile)
IMAGE_USER = f"{IMAGE_UID}:{IMAGE_UID}"
KEYS_MOUNT_DIR = "/etc/modeldeck/keys"
KEYS_PATH = f"{KEYS_MOUNT_DIR}/keys.json"  # where an image built with key auth reads its keys (serving/__main__)
MODEL_LABEL = "modeldeck.model"  # "sklearn_mnist:1"
SHA256_LABEL = "modeldeck.model_sha256"
AUTH_LABEL = "modeldeck.auth"  # "key" or "none"
MODEL_IMAGE_LABEL = "modeldeck.model_image"
ENVIRONMENT_IMAGE_LABEL = "modeldeck.environment_image"
KEYS_HOME_DIR = "image-keys"  # under the home: keys made for images built with key auth, a folder per image name
# A Docker image reference: [registry[:port]/]path[:tag], path components lowercase.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REFERENCE = re.compile(rf"^(?:[a-zA-Z0-9.-]+(?::[0-9]+)?/)?{_COMPONENT}(?:/{_COMPONENT})*(?::[\w][\w.-]{{0,127}})?"
                        r"(?:@sha256:[a-f0-9]{64})?$")
BAD_TAG = ("image tag {tag!r} is not a valid Docker image name: use lowercase letters, digits and . _ - in the "
           "name, optionally a registry host first and a :tag (or @sha256:digest) after (for example "
           "modeldeck/sklearn_mnist:1)")


@dataclass(frozen=True)
class BuiltImage:
    """A self-contained image on the engine.

    Attributes:
        tag: the image's name, as given.
        image_id: the engine's id ("sha256:...").
        size_bytes: its size on the engine.
        model_id, model_sha256: what is baked in.
        auth: whether it wants keys (mounted at KEYS_PATH) to start.
        environment_image: the environment image it was built on.
        created: when the engine made it (ISO 8601).
        seconds: how long the build took (None for an image listed, not just built).
        keys_file: with auth, the keys made for it on this machine (to mount), else None.
        replaced: the model the name served before this build took it over, if another.
    """

    tag: str
    image_id: str
    size_bytes: int
    model_id: str
    model_sha256: str
    auth: bool
    environment_image: str
    created: str = ""
    seconds: float | None = None
    keys_file: Path | None = None
    replaced: str | None = None

    def run_command(self, port: int = IMAGE_PORT) -> str:
        """The `docker run` line that serves it on 127.0.0.1:`port`, hardened as ModelDeck deploys."""
        keys = f"-v {self.keys_file}:{KEYS_PATH}:ro " if self.keys_file else ""
        return (f"docker run -d --name {_container_name(self.tag)} -p 127.0.0.1:{port}:{IMAGE_PORT} --read-only "
                f"--tmpfs /tmp --cap-drop ALL --security-opt no-new-privileges {keys}{self.tag}")

    def save_command(self) -> str:
        """The line that writes it to one file for a machine with no registry (`docker load -i` there)."""
        return f"docker save {self.tag} | gzip > {_container_name(self.tag)}.tar.gz"


def _container_name(tag: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_.-]+", "-", tag.rsplit("/", 1)[-1]).strip("-.") or "model"


def _keys_folder(tag: str) -> str:
    """One folder per image name (a rebuild replaces its keys): readable, and distinct for distinct names."""
    return f"{_container_name(tag)}-{hashlib.sha256(tag.encode()).hexdigest()[:8]}"


def validate_tag(tag: str) -> str:
    """Checks an image reference such as `modeldeck/sklearn_mnist:1`, `registry.local:5000/m/x:v2` or one
    pinned by digest (`...@sha256:<64 hex>`).

    Raises:
        InvalidImageTagError: with the rule and the offending tag.
    """
    if not tag.strip():
        raise InvalidImageTagError("give an image name, for example modeldeck/sklearn_mnist:1")
    if len(tag) > 255 or not _REFERENCE.match(tag):
        raise InvalidImageTagError(BAD_TAG.format(tag=tag))
    return tag


def default_tag(model_name: str, version: int) -> str:
    """`modeldeck/<model name>:<version>`, the name lowercased to what image names allow."""
    name = re.sub(r"[^a-z0-9._-]+", "-", model_name.lower())
    name = re.sub(r"[._-]*([._-])[._-]*", r"\1", name).strip("._-") or "model"
    return f"modeldeck/{name}:{version}"


def image_manifest(model: Model, script_name: str, auth: bool) -> dict[str, Any]:
    """What is baked in, for /info (`image`) and for anyone who inspects the image: the model card,
    its files' digests and libraries, the scoring script and how the image is run."""
    signature = model.signature
    return {
        "model": {"id": model.id, "name": model.name, "version": model.version, "framework": model.framework,
                  "sha256": model.sha256, "description": model.description, "tags": dict(model.tags),
                  "metrics": dict(model.metrics), "created_at": model.created_at,
                  "files": [{"name": f.name, "sha256": f.sha256, "size": f.size} for f in model.files]},
        "libraries": dict(model.library_versions),
        "signature": {key: value for key, value in signature.to_dict().items() if key != "source"},
        "script": script_name,
        "auth": "key" if auth else "none",
        "port": IMAGE_PORT,
        "user": IMAGE_USER,
    }


def image_labels(model: Model, auth: bool, environment: str) -> dict[str, str]:
    """Labels that say what an image serves, readable with `docker inspect` without running it (the
    environment image's own label is blanked: this one is not an environment)."""
    return {MODEL_LABEL: model.id, SHA256_LABEL: model.sha256, AUTH_LABEL: "key" if auth else "none",
            MODEL_IMAGE_LABEL: "true", ENVIRONMENT_IMAGE_LABEL: environment, "modeldeck.environment": "",
            "org.opencontainers.image.title": model.id,
            "org.opencontainers.image.description": (model.description or f"ModelDeck image of {model.id}")[:500]}


def write_context(ctx: Path, model_dir: Path, script: Path, manifest: dict[str, Any]) -> None:
    """The build context: Dockerfile and bundle/{model/, app/<script>, manifest.json}, readable by all (the
    registry keeps its files private; in the image the server's user reads them, and nobody writes them)."""
    bundle = ctx / "bundle"
    for folder in (bundle / "model", bundle / "app"):
        folder.mkdir(parents=True)
    for path in sorted(model_dir.iterdir()):
        if path.is_file():
            shutil.copyfile(path, bundle / "model" / path.name)
    shutil.copyfile(script, bundle / "app" / script.name)
    (bundle / "manifest.json").write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    shutil.copyfile(DOCKERFILE, ctx / "Dockerfile")
    readable_by_all(ctx)


def write_keys(folder: Path) -> Path:
    """Fresh keys as `folder`/keys.json, to mount into an image built with key auth. The folder is
    private (0700) and the file 0644: a bind-mounted file keeps its host mode, and the server runs as
    user 10001, not as the owner."""
    folder.mkdir(parents=True, exist_ok=True)
    folder.chmod(0o700)
    path = folder / "keys.json"
    path.write_text(Keys.generate().to_json())
    path.chmod(0o644)
    return path


def build_image(deck: ModelDeck, model: Model, tag: str, *, entry_script: Path | None = None, auth: bool = False,
                progress: Progress = quiet) -> BuiltImage:
    """Builds the self-contained image `tag` of `model` on the Docker engine: the model's environment
    image (built first when missing) plus the model files, the scoring script and a manifest.

    Args:
        entry_script: a scoring script with init()/run(raw_data); default: the model's own score.py
            when it was registered with one, else the built-in scikit-learn script.
        auth: the image then wants keys (a JSON file at KEYS_PATH) to start; fresh ones are written
            under the home for `docker run` (BuiltImage.keys_file).

    Raises:
        InvalidImageTagError, RuntimeUnavailableError (no engine), IncompatibleModelError,
        ChecksumMismatchError, BaseImageMissingError, WheelDownloadError, ImageBuildError.
    """
    validate_tag(tag)
    if entry_script is not None and (not entry_script.is_file() or entry_script.suffix != ".py"):
        raise ImageBuildError(f"entry script {entry_script} is not a Python file: give a .py file with init() "
                              "and run(raw_data)")
    runtime = deck.runtimes.open("docker")
    if not isinstance(runtime, DockerRuntime):
        raise RuntimeUnavailableError("building an image needs a Docker engine")
    import docker.errors
    import requests

    try:
        return _build(deck, runtime, model, tag, entry_script, auth, progress)
    except ModelDeckError:
        raise
    except docker.errors.APIError as e:
        raise ImageBuildError(f"building {tag} failed: the Docker engine refused: {e.explanation or e}") from e
    except (requests.ConnectionError, docker.errors.DockerException) as e:
        raise RuntimeUnavailableError(
            f"the Docker engine at {runtime.endpoint} stopped answering while building {tag} ({type(e).__name__}): "
            "start it again (scripts/setup.sh or `sudo systemctl start docker`)") from e


def _build(deck: ModelDeck, runtime: DockerRuntime, model: Model, tag: str, entry_script: Path | None, auth: bool,
           progress: Progress) -> BuiltImage:
    started = time.monotonic()
    check_compatible(model, runtime.environment_versions(model))
    replaced = _serves(runtime, tag)
    if replaced == model.id:
        replaced = None
    elif replaced is not None:
        step(progress, f"{tag} serves {replaced} now: this build gives the name to {model.id}")
    builder: ImageBuilder = runtime.images
    environment = builder.ensure(model, current_library_versions(), progress)
    with tempfile.TemporaryDirectory(prefix="modeldeck-image-") as ctx_dir:
        ctx = Path(ctx_dir)
        step(progress, f"checking and copying {len(model.files)} file(s) of {model.id}")
        model_dir = deck.registry.materialize(model, ctx / "model-files")
        script = entry_script or default_entry_script(model_dir)
        write_context(ctx / "context", model_dir, script, image_manifest(model, script.name, auth))
        step(progress, f"building {tag} on {environment} (scoring script {script.name}"
                       + (", key auth" if auth else "") + ")")
        builder.build(ctx / "context", tag, {"ENVIRONMENT_IMAGE": environment, "SCRIPT": script.name,
                                             "MODEL_ID": model.id, "AUTH": "key" if auth else "none"},
                      image_labels(model, auth, environment), progress)
    if auth:
        write_keys(deck.home.path / KEYS_HOME_DIR / _keys_folder(tag))
    built = replace(_as_built(deck, tag, runtime.client.images.get(tag)), seconds=time.monotonic() - started,
                    replaced=replaced)
    step(progress, f"built {tag} ({built.size_bytes / 1e6:,.0f} MB) in {built.seconds:.1f} s")
    return built


def _serves(runtime: DockerRuntime, tag: str) -> str | None:
    """The model an image of that name serves now (None: no such image, or not a ModelDeck one)."""
    import docker.errors

    try:
        return (runtime.client.images.get(tag).labels or {}).get(MODEL_LABEL)
    except docker.errors.ImageNotFound:
        return None


def _as_built(deck: ModelDeck, tag: str, image: Any) -> BuiltImage:
    labels = image.labels or {}
    keys = deck.home.path / KEYS_HOME_DIR / _keys_folder(tag) / "keys.json"
    auth = labels.get(AUTH_LABEL) == "key"
    return BuiltImage(tag=tag, image_id=image.id, size_bytes=int(image.attrs.get("Size") or 0),
                      model_id=labels.get(MODEL_LABEL, ""), model_sha256=labels.get(SHA256_LABEL, ""), auth=auth,
                      environment_image=labels.get(ENVIRONMENT_IMAGE_LABEL, ""),
                      created=str(image.attrs.get("Created", ""))[:19],
                      keys_file=keys if auth and keys.is_file() else None)


def built_images(deck: ModelDeck, model: Model) -> list[BuiltImage]:
    """The self-contained images of `model` on the engine that this home built, newest first (each name
    once). Reads only.

    Raises:
        RuntimeUnavailableError: no engine answers.
    """
    import docker.errors
    import requests

    runtime = deck.runtimes.open("docker")
    if not isinstance(runtime, DockerRuntime):
        raise RuntimeUnavailableError("listing images needs a Docker engine")
    wanted = [f"{MODEL_IMAGE_LABEL}=true", f"{MODEL_LABEL}={model.id}", f"{BUILT_BY_LABEL}={deck.home.path}"]
    try:
        images = runtime.client.images.list(filters={"label": wanted})
    except (requests.ConnectionError, docker.errors.DockerException) as e:
        raise RuntimeUnavailableError(f"the Docker engine at {runtime.endpoint} did not answer ({type(e).__name__})") from e
    found = [_as_built(deck, tag, image) for image in images for tag in image.tags]
    return sorted(found, key=lambda image: (image.created, image.tag), reverse=True)

