"""Exports as files: the manifests as YAML (one object per file) and a README, written into a folder for
`kubectl apply -f DIR`, or zipped in memory for the dashboard's download."""

from __future__ import annotations

import io
import os
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ExportError
from ..runtimes.base import SCORING_PORT, DeployConfig, DeploymentRecord, Keys
from . import kserve, kubernetes
from .kubernetes import ExportOptions, Manifest, ModelIdentity
from .self_contained import AUTH_LABEL, MODEL_LABEL

TARGETS = ("kubernetes", "kserve")
README = "README.txt"
KUBERNETES_VERSION = "1.34"  # the API version the manifests are written for (and tested against)
_BUILDERS: dict[str, Callable[[ModelIdentity, ExportOptions, Keys | None], dict[str, Manifest]]] = {
    "kubernetes": kubernetes.kubernetes_manifests, "kserve": kserve.kserve_manifests}
_OWN_FILES = frozenset({*kubernetes.FILE_NAMES, *kserve.FILE_NAMES, README})


@dataclass(frozen=True)
class ExportBundle:
    """One export: what is served, how, and the manifests by file name (in apply order).

    Attributes:
        keys: the keys in its Secret (None without auth); freshly generated unless given.
    """

    target: str
    model: ModelIdentity
    options: ExportOptions
    manifests: dict[str, Manifest]
    keys: Keys | None = None

    def files(self, folder: str) -> dict[str, str]:
        """Every file's text by name: the YAML manifests, then README.txt (which names `folder`)."""
        texts = {name: to_yaml(manifest, self.model, self.options, self.target)
                 for name, manifest in self.manifests.items()}
        texts[README] = readme(self, folder)
        return texts

    @property
    def default_folder(self) -> str:
        return f"{self.options.name}-{self.target}"


def build_export(target: str, model: ModelIdentity, options: ExportOptions, keys: Keys | None = None) -> ExportBundle:
    """The manifests of `target` ("kubernetes" or "kserve") for `model` run as `options`.

    Args:
        keys: the keys for the Secret when auth is on (default: `Keys.generate()`).

    Raises:
        ExportError: an unknown target, or options the target cannot take.
    """
    if target not in _BUILDERS:
        raise ExportError(f"unknown export target {target!r}: use {' or '.join(TARGETS)}")
    if options.config.auth_enabled and keys is None:
        keys = Keys.generate()
    used = keys if options.config.auth_enabled else None
    return ExportBundle(target, model, options, _BUILDERS[target](model, options, used), used)


def to_yaml(manifest: Manifest, model: ModelIdentity, options: ExportOptions, target: str) -> str:
    import yaml  # here: only an export writes YAML

    head = f"# modeldeck export {target}: {model.id} as {options.name} (image {options.image})\n"
    return head + yaml.safe_dump(manifest, sort_keys=False, default_flow_style=False, allow_unicode=True, width=1000)


def write_export(bundle: ExportBundle, out_dir: Path) -> list[Path]:
    """Writes the bundle's files into `out_dir` (made when missing).

    A folder of an earlier export is reused: its files are replaced, and the ones this export does not
    write (an HPA no longer asked for) are removed, so `kubectl apply -f DIR` applies exactly this export.

    Returns:
        The paths written, in apply order, README.txt last.

    Raises:
        ExportError: `out_dir` is a file, cannot be written, or holds files no export wrote.
    """
    if out_dir.exists() and not out_dir.is_dir():
        raise ExportError(f"{out_dir} is a file: give a folder for the manifests")
    if out_dir.is_dir():
        others = sorted(p.name for p in out_dir.iterdir() if p.name not in _OWN_FILES)
        if others:
            raise ExportError(f"{out_dir} holds other files ({', '.join(others[:5])}): `kubectl apply -f` would apply "
                              "them too. Choose an empty or new folder")
    files = bundle.files(str(out_dir))
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        for stale in (out_dir / name for name in _OWN_FILES - set(files)):
            stale.unlink(missing_ok=True)
        written = []
        for name, text in files.items():
            path = out_dir / name
            mode = 0o600 if name == kubernetes.SECRET_FILE else 0o644  # the keys are in clear text
            path.unlink(missing_ok=True)  # made anew with its mode: never readable by others, not even briefly
            with open(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode), "w", encoding="utf-8") as handle:
                handle.write(text)
            written.append(path)
    except OSError as e:
        raise ExportError(f"cannot write the manifests into {out_dir}: {e.strerror or e}") from None
    return written


def zip_export(bundle: ExportBundle, folder: str | None = None) -> bytes:
    """The bundle's files as a zip, inside one folder (default NAME-TARGET): unzip, then `kubectl apply -f` it."""
    folder = folder or bundle.default_folder
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name, text in bundle.files(folder).items():
            archive.writestr(f"{folder}/{name}", text)
    return buffer.getvalue()


def apply_command(folder: str) -> str:
    return f"kubectl apply -f {folder}"


def keys_command(options: ExportOptions, which: str = "primary") -> str:
    """The shell line that reads a key back from the cluster's Secret."""
    namespace = f" -n {options.namespace}" if options.namespace else ""
    return (f"kubectl get secret {kubernetes.secret_name(options)}{namespace} -o jsonpath='{{.data.keys\\.json}}' "
            f"| base64 -d | python3 -c 'import json, sys; print(json.load(sys.stdin)[\"{which}\"])'")


def build_command(model: ModelIdentity, options: ExportOptions) -> str:
    return f"modeldeck build {model.id} --tag {options.image}" + (" --auth key" if options.config.auth_enabled else "")


def _curl_lines(model: ModelIdentity, url: str, auth: bool, path: str = "/score") -> list[str]:
    n = model.n_features
    row = f"$(python3 -c 'print(\", \".join([\"0.0\"] * {n}))')" if n else "<one row of the model's input values>"
    header = " -H \"Authorization: Bearer $KEY\"" if auth else ""
    return [f"     curl -s {url}{path} -H 'Content-Type: application/json'{header} \\",
            f"       -d \"{{\\\"data\\\": [[{row}]]}}\""]


def readme(bundle: ExportBundle, folder: str) -> str:
    """README.txt: what this is, how to make the image available, apply, reach it and read the keys."""
    model, options = bundle.model, bundle.options
    ns = f" -n {options.namespace}" if options.namespace else ""
    auth = options.config.auth_enabled
    kserve_target = bundle.target == "kserve"
    lines = [f"ModelDeck export ({'KServe InferenceService' if kserve_target else 'Kubernetes'}): {model.id} as "
             f"{options.name!r}", f"Image: {options.image}", "",
             "1. Make the image (on a machine with Docker and this ModelDeck home):",
             f"     {build_command(model, options)}",
             "   The cluster must be able to pull it or find it on its nodes. Without a registry, load it:",
             f"     kind:      kind load docker-image {options.image}",
             f"     minikube:  minikube image load {options.image}",
             f"     k3s:       docker save {options.image} | sudo k3s ctr images import -",
             f"   With a registry: docker tag {options.image} REGISTRY/{options.image} && docker push "
             f"REGISTRY/{options.image}, then set that name as `image:` in the manifest.", ""]
    if kserve_target:
        lines += ["2. Apply (KServe must be installed in the cluster; RawDeployment mode is used, no Knative needed):",
                  f"     {apply_command(folder)}",
                  f"     kubectl get inferenceservice {options.name}{ns}   # READY True once the model is loaded", "",
                  "3. Reach it (KServe's Service listens on port 80):",
                  f"     kubectl port-forward{ns} svc/{kserve.predictor_name(options)} {SCORING_PORT}:{kserve.SERVICE_PORT}"]
    else:
        lines += ["2. Apply:", f"     {apply_command(folder)}",
                  f"     kubectl rollout status{ns} deployment/{options.name}", "",
                  "3. Reach it:", f"     kubectl port-forward{ns} svc/{options.name} {SCORING_PORT}:{SCORING_PORT}"]
    url = f"http://127.0.0.1:{SCORING_PORT}"
    lines += ["   then, in another shell:" + ("  (KEY: see 4)" if auth else ""), *_curl_lines(model, url, auth),
              f"   Also: {url}/info, {url}/metrics, and the Open Inference Protocol at "
              f"{url}/v2/models/{options.name}/infer.", ""]
    if auth:
        lines += ["4. Keys: the image was built with key auth and refuses to start without its keys file; the",
                  f"   Secret {kubernetes.secret_name(options)} ({kubernetes.SECRET_FILE}) holds two fresh keys. Read one back:",
                  f"     KEY=$({keys_command(options)})",
                  f"   {kubernetes.SECRET_FILE} holds the keys in clear text: keep it out of version control.", ""]
    lines += ["Files:"]
    lines += [f"  {name:<26} {_describe(manifest)}" for name, manifest in bundle.manifests.items()]
    lines += ["", f"Written for the Kubernetes {KUBERNETES_VERSION} API and checked against its schemas; "
              "not tried against a live cluster by ModelDeck."]
    return "\n".join(lines) + "\n"


def _describe(manifest: Manifest) -> str:
    kind = str(manifest["kind"])
    name = manifest["metadata"]["name"]
    return f"{kind} {name}"


def image_warnings(image: str, model: ModelIdentity, auth_enabled: bool, client: Any | None) -> list[str]:
    """Warnings when `image` is on the local Docker engine (`client`) and was built for another model, or
    with key auth when the export has none (its pods would never start: no keys file is mounted).

    Nothing (never an error) when there is no engine (`client` None) or no such image: the image may live
    only in a registry, or be built later. An image built without auth under a keyed export is fine: the
    export's MODELDECK_KEYS_FILE turns key auth on in any image.
    """
    if client is None:
        return []
    try:
        found = client.images.get(image).labels or {}
    except Exception:  # not there, or the engine stopped answering: nothing to say
        return []
    warnings = []
    built_for = found.get(MODEL_LABEL)
    if built_for is not None and built_for != model.id:
        warnings.append(f"the local image {image} serves {built_for}, not {model.id}: rebuild it with "
                        f"`modeldeck build {model.id} --tag {image}`")
    if found.get(AUTH_LABEL) == "key" and not auth_enabled:
        warnings.append(f"the local image {image} was built with key auth and refuses to start without a keys "
                        "file, and this export writes none: export with --auth key, or rebuild without it")
    return warnings


def export_deployment(target: str, record: DeploymentRecord, model: ModelIdentity, image: str, *, replicas: int = 1,
                      autoscale: tuple[int, int] | None = None, namespace: str | None = None,
                      keys: Keys | None = None) -> ExportBundle:
    """The export of a deployment of this home: its name, cpu, memory, body limit and auth as deployed.

    Raises:
        ExportError, InvalidDeployConfigError: options out of their rules (a deployment name that is not
            a DNS-1035 label, a config made under other ranges).
    """
    config = DeployConfig(cpu_cores=record.config.cpu_cores, memory_gb=record.config.memory_gb,
                          max_body_mb=record.config.max_body_mb, auth_enabled=record.config.auth_enabled)
    options = ExportOptions(name=record.name, image=image, config=config, replicas=replicas, autoscale=autoscale,
                            namespace=namespace or None)
    return build_export(target, model, options, keys)
