"""A model beyond this machine: its self-contained image built on the engine, and manifests for a
Kubernetes cluster or KServe (of a registered version, or of a deployment as it is deployed here)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import RuntimeUnavailableError
from ..packaging.kubernetes import ExportOptions, ModelIdentity
from ..packaging.self_contained import BuiltImage, build_image, built_images, default_tag
from ..packaging.writer import ExportBundle, build_export, export_deployment, image_warnings, write_export
from ..progress import Progress, quiet
from ..registry import Model
from ..runtimes.base import Deployment, Keys

if TYPE_CHECKING:
    from ..context import ModelDeck


def build(deck: ModelDeck, ref: str, tag: str | None = None, *, entry_script: Path | None = None, auth: bool = False,
          progress: Progress = quiet) -> BuiltImage:
    """The self-contained image of model `ref` ("NAME[:VERSION]"), named `tag` (default `default_tag`).

    Raises:
        ModelNotFoundError, and what `build_image` raises.
    """
    model = deck.registry.get_ref(ref)
    return build_image(deck, model, tag or default_tag(model.name, model.version), entry_script=entry_script,
                       auth=auth, progress=progress)


def images_of(deck: ModelDeck, model: Model) -> list[BuiltImage]:
    """The model's self-contained images this home built, newest first. Reads only.

    Raises:
        RuntimeUnavailableError: no engine answers.
    """
    return built_images(deck, model)


@dataclass(frozen=True)
class Export:
    """An export: its manifests, the files they were written to, and what to warn of (an image of that name
    built for another model...)."""

    bundle: ExportBundle
    written: tuple[Path, ...]
    warnings: tuple[str, ...]


def export_model(deck: ModelDeck, ref: str, target: str, options: ExportOptions, out_dir: Path) -> Export:
    """Manifests serving model `ref` as `options` say, written into `out_dir` (an earlier export there is
    replaced), checked against the local image of that name when an engine answers.

    Raises:
        ModelNotFoundError, ExportError.
    """
    model = ModelIdentity.of(deck.registry.get_ref(ref))
    bundle = build_export(target, model, options)
    try:  # the image check asks the local engine, when one answers
        engine = getattr(deck.runtimes.open("docker"), "client", None)
    except RuntimeUnavailableError:
        engine = None
    warnings = tuple(image_warnings(options.image, model, options.config.auth_enabled, engine))
    return Export(bundle, tuple(write_export(bundle, out_dir)), warnings)


def export_of(deck: ModelDeck, deployment: Deployment, target: str, image: str | None = None, *, replicas: int = 1,
              autoscale: tuple[int, int] | None = None, namespace: str | None = None,
              keys: Keys | None = None) -> ExportBundle:
    """Manifests for a deployment of this home: its name, cpu, memory, body limit and auth as deployed,
    in `image` (default: its model's `default_tag`).

    Raises:
        ModelNotFoundError (its model left the registry), ExportError, InvalidDeployConfigError.
    """
    model = ModelIdentity.of(deck.registry.get(deployment.record.model_name, deployment.record.model_version))
    return export_deployment(target, deployment.record, model, image or default_tag(model.name, model.version),
                             replicas=replicas, autoscale=autoscale, namespace=namespace, keys=keys)

