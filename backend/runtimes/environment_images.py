"""Environment images: a scoring server plus the model's pinned libraries, built offline and cached.

The tag is a hash of everything that goes in (Dockerfile, base image id, requirements, serving code),
so an environment is built once and every later deployment of a model that needs it reuses it.
Wheels are fetched on the host with `pip download` for the image's Python and the engine's
architecture; the build itself runs with no network.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import ASSETS_DIR, DEFAULT_BASE_IMAGE, OFFLINE_BASE_IMAGE
from ..errors import BaseImageMissingError, ImageBuildError, ImageError, WheelDownloadError
from ..files import atomic_write, readable_by_all
from ..progress import Progress, ProgressEvent, ProgressKind, step
from ..registry import Model

SERVING_DIR = Path(__file__).resolve().parent.parent / "serving"
DOCKERFILE = ASSETS_DIR / "Dockerfile"
SERVING_REQUIREMENTS = ASSETS_DIR / "requirements-serving.txt"
MODEL_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib")
IMAGE_REPOSITORY = "modeldeck/env"
BUILT_BY_LABEL = "modeldeck.built_by"
BUILD_LOG_TAIL = 25


@dataclass(frozen=True)
class BasePython:
    """What the base image runs: Python version, glibc version and machine."""

    version: str  # "3.11"
    glibc: str  # "2.36"
    machine: str  # "x86_64"

    def pip_platforms(self) -> list[str]:
        """Every manylinux tag this glibc runs, newest first (pip does not expand --platform itself)."""
        major, minor = (int(part) for part in self.glibc.split(".")[:2])
        tags = [f"manylinux_{major}_{m}_{self.machine}" for m in range(minor, 4, -1)]
        legacy = {17: "manylinux2014", 12: "manylinux2010", 5: "manylinux1"}
        return tags + [f"{alias}_{self.machine}" for m, alias in legacy.items() if major == 2 and minor >= m]


def requirements_for(model: Model, host_versions: dict[str, str], serving_requirements: str) -> str:
    """The image's requirements: the serving stack's pins, and the model's libraries at the versions
    that saved it (the host's where the model recorded none)."""
    lines = [line.strip() for line in serving_requirements.splitlines() if line.strip() and not line.startswith("#")]
    for library in MODEL_LIBRARIES:
        version = model.library_versions.get(library) or host_versions.get(library)
        lines.append(f"{library}=={version}" if version else library)
    return "\n".join(sorted(lines, key=str.lower)) + "\n"


def environment_tag(base_image_id: str, requirements: str, files: Iterable[tuple[str, bytes]]) -> str:
    """`modeldeck/env:<16 hex>`: a hash of the base image id, requirements and every file copied in."""
    digest = hashlib.sha256()
    digest.update(base_image_id.encode() + b"\0" + requirements.encode() + b"\0")
    for name, content in sorted(files):
        digest.update(name.encode() + b"\0" + hashlib.sha256(content).digest())
    return f"{IMAGE_REPOSITORY}:{digest.hexdigest()[:16]}"


def serving_files() -> list[tuple[str, bytes]]:
    """The files that go into the build context besides wheels/ and requirements.txt."""
    files = [("Dockerfile", DOCKERFILE.read_bytes())]
    for path in sorted(SERVING_DIR.rglob("*.py")):
        files.append((f"serving/{path.relative_to(SERVING_DIR)}", path.read_bytes()))
    return files


def choose_base_image(configured: str | None, present: Callable[[str], bool]) -> str:
    """The configured base image, else python:3.11-slim if present, else the offline-built one.

    Raises:
        BaseImageMissingError: none of them is on the engine, with how to get one.
    """
    candidates = [configured] if configured else [DEFAULT_BASE_IMAGE, OFFLINE_BASE_IMAGE]
    for name in candidates:
        if present(name):
            return name
    wanted = " or ".join(candidates)
    raise BaseImageMissingError(
        f"base image {wanted} is not on this Docker engine, and ModelDeck pulls nothing at run time. "
        f"Build one offline with scripts/build-base-image.sh (makes {OFFLINE_BASE_IMAGE} with debootstrap), "
        f"or `docker pull {DEFAULT_BASE_IMAGE}` where a registry is reachable, or set MODELDECK_BASE_IMAGE")


def _pip_target_options(python: BasePython) -> list[str]:
    """pip's options that choose wheels for the image's Python and platform, not the host's."""
    nodot = python.version.replace(".", "")
    options = ["--only-binary=:all:", "--python-version", python.version, "--implementation", "cp",
               "--abi", f"cp{nodot}"]
    for platform in python.pip_platforms():
        options += ["--platform", platform]
    return options


def _pip(command: list[str]) -> str | None:
    """Runs pip; None when it succeeded, else its last lines (its warnings left out)."""
    result = subprocess.run([sys.executable, "-m", "pip", *command, "--disable-pip-version-check"],
                            capture_output=True, text=True)
    if result.returncode == 0:
        return None
    lines = [line for line in (result.stdout + result.stderr).splitlines() if not line.startswith("WARNING")]
    return "\n".join(lines[-12:])


def download_wheels(requirements: str, python: BasePython, dest: Path, progress: Progress) -> None:
    """`pip download` of every wheel the requirements need, for the image's Python and platform.

    Raises:
        WheelDownloadError: with pip's last lines (for example: no wheel of that version).
    """
    dest.mkdir(parents=True, exist_ok=True)
    req = dest.parent / "requirements.txt"
    req.write_text(requirements)
    step(progress, f"fetching wheels for Python {python.version} / {python.machine} (pip download)")
    failed = _pip(["download", *_pip_target_options(python), "-d", str(dest), "-r", str(req)])
    if failed is not None:
        raise WheelDownloadError(
            f"pip download could not fetch the wheels for Python {python.version} on {python.machine}:\n{failed}")
    step(progress, f"{len(list(dest.glob('*.whl')))} wheels ready")


def unpack_wheels(wheelhouse: Path, python: BasePython, dest: Path, progress: Progress) -> None:
    """Installs the wheels `download_wheels` fetched (and their requirements.txt beside them) into `dest`
    with `pip install --target`: the image's site-packages, made on the host (no pip runs in the image).
    Not compiled here: the image's Python compiles them. Everything is made readable by all, whatever
    this process's umask: the server runs as another user.

    Raises:
        ImageBuildError: with pip's last lines.
    """
    step(progress, f"unpacking {len(list(wheelhouse.glob('*.whl')))} wheels for the image (pip install --target)")
    dest.mkdir(parents=True, exist_ok=True)  # pip makes none for no requirements
    failed = _pip(["install", "--no-index", "--find-links", str(wheelhouse), "--no-compile", "--target", str(dest),
                   *_pip_target_options(python), "-r", str(wheelhouse.parent / "requirements.txt")])
    if failed is not None:
        raise ImageBuildError(f"pip could not unpack the wheels for Python {python.version}:\n{failed}")
    shutil.rmtree(dest / "bin", ignore_errors=True)  # console scripts, written for the host's Python
    readable_by_all(dest)


class ImageBuilder:
    """Makes environment images on a Docker engine (docker SDK client passed in)."""

    def __init__(self, client: Any, cache_dir: Path, base_image: str | None = None, built_by: str = "") -> None:
        self.client = client
        self.cache_dir = Path(cache_dir)
        self.configured_base = base_image
        self.built_by = built_by  # the home that builds, recorded as a label on the image

    def _present(self, name: str) -> bool:
        import docker.errors

        try:
            self.client.images.get(name)
            return True
        except docker.errors.ImageNotFound:
            return False

    def base_image(self) -> str:
        return choose_base_image(self.configured_base, self._present)

    def base_python(self, base: str) -> BasePython:
        """Python version, glibc and machine of the base image (asked once per image id, then cached)."""
        image_id = self.client.images.get(base).id
        cache = self.cache_dir / "base-python" / f"{image_id.replace(':', '-')}.json"
        if cache.is_file():
            return BasePython(**json.loads(cache.read_text()))
        probe = ("import json, platform, sys; print(json.dumps({'version': '%d.%d' % sys.version_info[:2], "
                 "'glibc': platform.libc_ver()[1], 'machine': platform.machine()}))")
        try:
            out = self.client.containers.run(base, ["python3", "-c", probe], remove=True, network_disabled=True)
            found = BasePython(**json.loads(out.decode().strip().splitlines()[-1]))
        except Exception as e:  # any failure here means the base cannot serve Python
            raise ImageError(f"base image {base} cannot run python3: {e}") from e
        cache.parent.mkdir(parents=True, exist_ok=True)
        with atomic_write(cache) as handle:  # another process may read it meanwhile
            handle.write(json.dumps(found.__dict__).encode())
        return found

    def ensure(self, model: Model, host_versions: dict[str, str], progress: Progress) -> str:
        """The tag of the environment image for `model`, built only when no image has that hash yet.

        Raises:
            BaseImageMissingError, WheelDownloadError, ImageBuildError.
        """
        base = self.base_image()
        requirements = requirements_for(model, host_versions, SERVING_REQUIREMENTS.read_text())
        files = serving_files()
        tag = environment_tag(self.client.images.get(base).id, requirements, files)
        if self._present(tag):
            step(progress, f"environment image {tag} is built already: reusing it")
            return tag
        step(progress, f"building environment image {tag} from {base}")
        python = self.base_python(base)
        key = hashlib.sha256(f"{requirements}{python}".encode()).hexdigest()[:16]
        wheelhouse = self.cache_dir / "wheels" / key / "wheels"
        if not (wheelhouse.parent / "complete").exists():
            shutil.rmtree(wheelhouse.parent, ignore_errors=True)
            download_wheels(requirements, python, wheelhouse, progress)
            (wheelhouse.parent / "complete").touch()
        else:
            step(progress, f"wheels cached in {wheelhouse}")
        with tempfile.TemporaryDirectory(prefix="modeldeck-build-") as ctx_dir:
            ctx = Path(ctx_dir)
            for name, content in files:
                (ctx / name).parent.mkdir(parents=True, exist_ok=True)
                (ctx / name).write_bytes(content)
            readable_by_all(ctx / "serving")
            unpack_wheels(wheelhouse, python, ctx / "site-packages", progress)
            self.build(ctx, tag, {"BASE_IMAGE": base, "PYTHON_VERSION": python.version},
                       {"modeldeck.environment": "true"}, progress)
        return tag

    def build(self, ctx: Path, tag: str, buildargs: dict[str, str], labels: dict[str, str],
              progress: Progress) -> None:
        """Builds the Dockerfile in `ctx` as `tag` with no network, streaming its log to `progress`; the
        image is labelled with `labels` and the home that built it.

        Raises:
            ImageBuildError: the build failed, with the last lines of its log.
        """
        import docker.errors

        log: list[str] = []
        try:
            stream = self.client.api.build(path=str(ctx), tag=tag, buildargs=buildargs, rm=True,
                                           forcerm=True, pull=False, network_mode="none", decode=True,
                                           labels={**labels, BUILT_BY_LABEL: self.built_by})
            for chunk in stream:
                if "stream" in chunk:
                    for line in chunk["stream"].splitlines():
                        if line.strip():
                            log.append(line)
                            progress(ProgressEvent(ProgressKind.BUILD_LOG, line))
                if "error" in chunk:
                    log.append(chunk["error"].strip())
                    raise ImageBuildError(
                        f"building {tag} failed: {chunk['error'].strip()}\n--- build log ---\n"
                        + "\n".join(log[-BUILD_LOG_TAIL:]))
        except docker.errors.APIError as e:
            raise ImageBuildError(f"building {tag} failed: {e.explanation or e}") from e
