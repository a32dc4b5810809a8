"""Plain Kubernetes manifests for one model served by a self-contained ModelDeck image.

Pure functions: options (and the keys, when auth is on) in, manifest dicts out, one object per file;
nothing here talks to a cluster or an engine. `kubernetes_manifests` is what `modeldeck export kubernetes`
writes; the pod template pieces (`container_spec`, `pod_spec`) are shared with the KServe export.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from typing import Any

from ..errors import ExportError
from ..registry import Model
from ..runtimes.base import SCORING_PORT, DeployConfig, Keys, serving_environment, worker_plan
from .self_contained import IMAGE_UID, KEYS_MOUNT_DIR, KEYS_PATH, validate_tag

Manifest = dict[str, Any]

SERVER_UID = IMAGE_UID  # the image's user and group
KEYS_DIR, KEYS_FILE = KEYS_MOUNT_DIR, KEYS_PATH
KEYS_FILE_MODE = 0o440  # read-only for owner and group; with fsGroup 10001 the server's group owns the file
TMP_SIZE = "64Mi"  # the server's multi-worker metrics; a Memory emptyDir counts against the memory limit
TERMINATION_GRACE_SECONDS = 15
CPU_TARGET_UTILIZATION = 70  # percent of the CPU request, the HPA's target
PORT_NAME = "http"
MANAGED_BY = "modeldeck"
LABEL_DOMAIN = "modeldeck.io"
SYSTEM_NAMESPACES = frozenset({"kube-system", "kube-public", "kube-node-lease"})

# DNS-1035 label: a Service name must start with a letter (a DNS-1123 label may start with a digit);
# the same name goes on every object, so the stricter rule applies to all of them.
_NAME_RULE = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
_NAMESPACE_RULE = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")  # DNS-1123 label
_LABEL_VALUE_INVALID = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class ModelIdentity:
    """What the manifests say about the model: name, version, digest, description."""

    name: str
    version: int
    sha256: str
    description: str = ""
    n_features: int | None = None  # values per input row, when known (for the README's example request)

    @property
    def id(self) -> str:
        return f"{self.name}:{self.version}"

    @classmethod
    def of(cls, model: Model) -> "ModelIdentity":
        return cls(model.name, model.version, model.sha256, model.description, model.signature.n_features)


@dataclass(frozen=True)
class ExportOptions:
    """How the model is to run on the cluster.

    Attributes:
        name: the name of every object (a DNS-1035 label: 1-63 of a-z, 0-9 and '-', starting with a letter).
        image: the self-contained image (`modeldeck build MODEL:VERSION --tag IMAGE`).
        config: cpu, memory, request body limit and auth, checked by DeployConfig's one rule.
        replicas: pods when not autoscaled (at least 1).
        autoscale: (min, max) pods for a HorizontalPodAutoscaler on CPU, or None.
        namespace: the namespace (created by the export, not one of Kubernetes' own) or None for the current one.

    Raises:
        ExportError: a name, namespace, replica count or autoscale range out of its rule, or both replicas
            and autoscale. InvalidImageTagError: an image name Docker would refuse.
    """

    name: str
    image: str
    config: DeployConfig = field(default_factory=DeployConfig)
    replicas: int = 1
    autoscale: tuple[int, int] | None = None
    namespace: str | None = None

    def __post_init__(self) -> None:
        check_object_name(self.name)
        if self.namespace is not None and not _NAMESPACE_RULE.match(self.namespace):
            raise ExportError(f"namespace {self.namespace!r} is not a DNS-1123 label: use 1 to 63 lowercase "
                              "letters, digits and '-', starting and ending with a letter or digit")
        validate_tag(self.image)
        if isinstance(self.replicas, bool) or not isinstance(self.replicas, int) or self.replicas < 1:
            raise ExportError(f"replicas must be a whole number of at least 1, got {self.replicas!r}")
        if self.autoscale is not None:
            low, high = self.autoscale
            if low < 1 or high < low:
                raise ExportError(f"autoscale {low}:{high} is not a range: MIN must be at least 1 and at most MAX")
            if self.replicas != 1:
                raise ExportError(f"give replicas ({self.replicas}) or autoscale ({low}:{high}), not both: with "
                                  "autoscale the pods number from MIN to MAX")
        if self.namespace in SYSTEM_NAMESPACES:
            raise ExportError(f"namespace {self.namespace!r} belongs to Kubernetes itself: use one of the model's own "
                              "(the export creates it)")



def check_object_name(name: str) -> str:
    """Checks a name every exported object can carry (Services want a DNS-1035 label).

    Raises:
        ExportError: with the rule and the offending name.
    """
    if not _NAME_RULE.match(name or ""):
        raise ExportError(f"name {name!r} is not a DNS-1035 label: use 1 to 63 lowercase letters, digits and '-', "
                          "starting with a letter and ending with a letter or digit (for example 'mnist-demo')")
    return name


def parse_autoscale(text: str) -> tuple[int, int]:
    """"MIN:MAX" as (min, max).

    Raises:
        ExportError: not two whole numbers, MIN below 1 or above MAX.
    """
    low, sep, high = text.partition(":")
    if not sep or not low.strip().isdigit() or not high.strip().isdigit():
        raise ExportError(f"autoscale must be MIN:MAX (two whole numbers, for example 2:5), got {text!r}")
    bounds = int(low), int(high)
    if bounds[0] < 1 or bounds[1] < bounds[0]:
        raise ExportError(f"autoscale {text} is not a range: MIN must be at least 1 and at most MAX")
    return bounds


def label_value(text: str) -> str:
    """`text` as a valid label value: at most 63 of A-Z, a-z, 0-9, '.', '_', '-', starting and ending with a
    letter or digit ('sklearn_mnist' stays as it is; other characters become '-')."""
    value = _LABEL_VALUE_INVALID.sub("-", text)[:63]
    return value.strip("._-")


def cpu_quantity(cores: float) -> str:
    """Cores as a Kubernetes quantity: "2" for whole cores, else millicores ("250m")."""
    millis = max(1, round(cores * 1000))
    return str(millis // 1000) if millis % 1000 == 0 else f"{millis}m"


def memory_quantity(gb: float) -> str:
    """GiB as a Kubernetes quantity in Mi (rounded up: the limit is never below what was asked)."""
    return f"{math.ceil(gb * 1024 - 1e-9)}Mi"


def labels(model: ModelIdentity, options: ExportOptions) -> dict[str, str]:
    """Labels of every object and pod (label values: no ':', so model and version are two labels)."""
    return {"app.kubernetes.io/name": options.name, "app.kubernetes.io/managed-by": MANAGED_BY,
            f"{LABEL_DOMAIN}/model": label_value(model.name), f"{LABEL_DOMAIN}/version": str(model.version)}


def selector(options: ExportOptions) -> dict[str, str]:
    """What selects the pods: the name only. A Deployment's selector cannot change, and a new model
    version exported under the same name must roll out with a plain `kubectl apply`."""
    return {"app.kubernetes.io/name": options.name}


def model_annotations(model: ModelIdentity, options: ExportOptions) -> dict[str, str]:
    found = {f"{LABEL_DOMAIN}/model-id": model.id, f"{LABEL_DOMAIN}/model-sha256": model.sha256,
             f"{LABEL_DOMAIN}/image": options.image,
             f"{LABEL_DOMAIN}/auth": "key" if options.config.auth_enabled else "none"}
    if model.description:
        found[f"{LABEL_DOMAIN}/description"] = model.description
    return found


def metadata(name: str, model: ModelIdentity, options: ExportOptions, *, with_annotations: bool = False) -> Manifest:
    meta: Manifest = {"name": name}
    if options.namespace:
        meta["namespace"] = options.namespace
    meta["labels"] = labels(model, options)
    if with_annotations:
        meta["annotations"] = model_annotations(model, options)
    return meta


def secret_name(options: ExportOptions) -> str:
    return f"{options.name}-keys"


def environment(options: ExportOptions) -> list[dict[str, str]]:
    """The image's environment: deployment name (also the V2 model name alias), workers from the CPU limit,
    the body limit the memory holds, the run() time limit, one BLAS thread per worker, the keys file with auth."""
    workers, _ = worker_plan(options.config.cpu_cores)
    env = {"MODELDECK_DEPLOYMENT": options.name, "MODELDECK_WORKERS": str(workers),
           "MODELDECK_MAX_BODY_MB": f"{options.config.body_limit_mb:g}",
           "MODELDECK_RUN_TIMEOUT": f"{options.config.run_timeout_s:g}"}
    env.update({key: value for key, value in serving_environment(options.config.cpu_cores, "").items()
                if key.endswith("_NUM_THREADS")})  # the image knows its own model folder
    if options.config.auth_enabled:
        env["MODELDECK_KEYS_FILE"] = KEYS_FILE
    return [{"name": key, "value": value} for key, value in env.items()]


def resources(config: DeployConfig) -> Manifest:
    """Requests equal to limits: the pod gets the Guaranteed QoS class, and the worker count derived
    from the CPU limit matches what it really has."""
    amounts = {"cpu": cpu_quantity(config.cpu_cores), "memory": memory_quantity(config.memory_gb)}
    return {"requests": dict(amounts), "limits": dict(amounts)}


def container_security_context() -> Manifest:
    return {"runAsNonRoot": True, "runAsUser": SERVER_UID, "runAsGroup": SERVER_UID,
            "readOnlyRootFilesystem": True, "allowPrivilegeEscalation": False, "privileged": False,
            "capabilities": {"drop": ["ALL"]}, "seccompProfile": {"type": "RuntimeDefault"}}


def probes(port: int | str) -> Manifest:
    """Startup, readiness and liveness on the server's own endpoints.

    /health answers as soon as the server listens (and never waits for a request in `run()`); /ready
    only once the model is loaded. The startup probe gives a slow start (a large model unpickled) up to
    two minutes before liveness counts, so liveness itself can be strict without killing a pod that is
    still loading; readiness takes a pod out of the Service at once when its model is not ready.
    """
    def get(path: str) -> Manifest:
        return {"path": path, "port": port, "scheme": "HTTP"}

    return {"startupProbe": {"httpGet": get("/health"), "periodSeconds": 2, "timeoutSeconds": 2,
                             "failureThreshold": 60},
            "readinessProbe": {"httpGet": get("/ready"), "periodSeconds": 5, "timeoutSeconds": 2,
                               "successThreshold": 1, "failureThreshold": 3},
            "livenessProbe": {"httpGet": get("/health"), "periodSeconds": 10, "timeoutSeconds": 3,
                              "failureThreshold": 3}}


def container_spec(options: ExportOptions, *, container_name: str = "scoring", port_name: str = PORT_NAME,
                   probe_port: int | str = PORT_NAME) -> Manifest:
    """The scoring container (KServe names it `kserve-container` and its port `http1`)."""
    mounts: list[Manifest] = [{"name": "tmp", "mountPath": "/tmp"}]
    if options.config.auth_enabled:
        mounts.append({"name": "keys", "mountPath": KEYS_DIR, "readOnly": True})
    return {"name": container_name, "image": options.image, "imagePullPolicy": "IfNotPresent",
            "ports": [{"name": port_name, "containerPort": SCORING_PORT, "protocol": "TCP"}],
            "env": environment(options), "resources": resources(options.config),
            "securityContext": container_security_context(), **probes(probe_port), "volumeMounts": mounts}


def pod_spec(options: ExportOptions, container: Manifest) -> Manifest:
    """The pod around the scoring container: non-root with fsGroup 10001 (so the keys file is the server's
    group's), no service account token (the server never talks to the API), a small grace period
    (a request in flight ends well within it), a memory-backed /tmp and the keys Secret with auth."""
    volumes: list[Manifest] = [{"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": TMP_SIZE}}]
    if options.config.auth_enabled:
        volumes.append({"name": "keys", "secret": {"secretName": secret_name(options), "defaultMode": KEYS_FILE_MODE,
                                                   "items": [{"key": "keys.json", "path": "keys.json"}]}})
    return {"automountServiceAccountToken": False, "enableServiceLinks": False,
            "terminationGracePeriodSeconds": TERMINATION_GRACE_SECONDS,
            "securityContext": {"runAsNonRoot": True, "runAsUser": SERVER_UID, "runAsGroup": SERVER_UID,
                                "fsGroup": SERVER_UID, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [container], "volumes": volumes}


def namespace_manifest(model: ModelIdentity, options: ExportOptions) -> Manifest:
    """The namespace, so `kubectl apply` works on an empty cluster. Pod Security `restricted` (which the
    pod meets) is set to warn and audit, not enforce: the namespace may be shared already, and applying
    this must not start refusing other teams' pods there."""
    assert options.namespace is not None
    return {"apiVersion": "v1", "kind": "Namespace",
            "metadata": {"name": options.namespace,
                         "labels": {"pod-security.kubernetes.io/warn": "restricted",
                                    "pod-security.kubernetes.io/audit": "restricted"}}}


def secret_manifest(model: ModelIdentity, options: ExportOptions, keys: Keys) -> Manifest:
    """The two keys as the image reads them (`{"primary": ..., "secondary": ...}`)."""
    return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata(secret_name(options), model, options),
            "type": "Opaque", "stringData": {"keys.json": keys.to_json()}}


def deployment_manifest(model: ModelIdentity, options: ExportOptions) -> Manifest:
    template_meta = {"labels": labels(model, options), "annotations": model_annotations(model, options)}
    return {"apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": metadata(options.name, model, options, with_annotations=True),
            # No replicas when autoscaled: the HPA owns the count, and a re-apply (a new version) would
            # otherwise reset a scaled-up Deployment to what the file says.
            "spec": {**({} if options.autoscale else {"replicas": options.replicas}), "revisionHistoryLimit": 3,
                     "selector": {"matchLabels": selector(options)},
                     # a new version comes up (and is ready) before an old pod goes
                     "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
                     "template": {"metadata": template_meta, "spec": pod_spec(options, container_spec(options))}}}


def service_manifest(model: ModelIdentity, options: ExportOptions) -> Manifest:
    return {"apiVersion": "v1", "kind": "Service", "metadata": metadata(options.name, model, options),
            "spec": {"type": "ClusterIP", "selector": selector(options),
                     "ports": [{"name": PORT_NAME, "port": SCORING_PORT, "targetPort": PORT_NAME, "protocol": "TCP"}]}}


def autoscaler_manifest(model: ModelIdentity, options: ExportOptions) -> Manifest:
    assert options.autoscale is not None
    low, high = options.autoscale
    return {"apiVersion": "autoscaling/v2", "kind": "HorizontalPodAutoscaler",
            "metadata": metadata(options.name, model, options),
            "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": options.name},
                     "minReplicas": low, "maxReplicas": high,
                     "metrics": [{"type": "Resource", "resource": {
                         "name": "cpu", "target": {"type": "Utilization",
                                                   "averageUtilization": CPU_TARGET_UTILIZATION}}}]}}


def disruption_budget_manifest(model: ModelIdentity, options: ExportOptions) -> Manifest:
    """At most one pod down at a time for voluntary disruptions (node drains, upgrades).

    maxUnavailable 1, not minAvailable: with one replica, minAvailable 1 would forbid evicting the only pod
    and so block every node drain forever; maxUnavailable 1 lets a drain move it (a short gap, which is
    what one replica means), and with two or more replicas keeps all but one serving. Pods that are not
    ready may always be evicted (unhealthyPodEvictionPolicy), so a crash-looping pod never blocks a drain.
    """
    return {"apiVersion": "policy/v1", "kind": "PodDisruptionBudget", "metadata": metadata(options.name, model, options),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector(options)},
                     "unhealthyPodEvictionPolicy": "AlwaysAllow"}}


def network_policy_manifest(model: ModelIdentity, options: ExportOptions) -> Manifest:
    """Ingress only on the scoring port (from anywhere in the cluster: clients and ingress controllers
    are the cluster's business), and no egress at all: the server loads its model from the image and
    calls nothing, not even DNS. Kubelet probes come from the node and are not subject to it."""
    return {"apiVersion": "networking.k8s.io/v1", "kind": "NetworkPolicy",
            "metadata": metadata(options.name, model, options),
            "spec": {"podSelector": {"matchLabels": selector(options)}, "policyTypes": ["Ingress", "Egress"],
                     "ingress": [{"ports": [{"protocol": "TCP", "port": SCORING_PORT}]}], "egress": []}}


# File names sort in apply order: the namespace before what lives in it, the Secret before the pods mount it.
SECRET_FILE = "10-secret.yaml"
FILE_NAMES = ("00-namespace.yaml", SECRET_FILE, "20-deployment.yaml", "30-service.yaml", "40-hpa.yaml",
              "50-pdb.yaml", "60-networkpolicy.yaml")


def first_manifests(model: ModelIdentity, options: ExportOptions, keys: Keys | None) -> dict[str, Manifest]:
    """What every export applies first: the Namespace (with a namespace) and the keys' Secret (with auth).

    Raises:
        ExportError: auth is on and no keys were given.
    """
    if options.config.auth_enabled and keys is None:
        raise ExportError("key auth is on: the export needs the keys to put in its Secret")
    files: dict[str, Manifest] = {}
    if options.namespace:
        files["00-namespace.yaml"] = namespace_manifest(model, options)
    if keys is not None and options.config.auth_enabled:
        files[SECRET_FILE] = secret_manifest(model, options, keys)
    return files


def kubernetes_manifests(model: ModelIdentity, options: ExportOptions, keys: Keys | None = None) -> dict[str, Manifest]:
    """Every object `kubectl apply -f DIR` needs, by file name (in apply order).

    Args:
        model: what is served (labels and annotations).
        options: how it runs.
        keys: the keys to put in the Secret; required when `options.config.auth_enabled`.

    Returns:
        {file name: manifest}: Namespace (with a namespace), Secret (with auth), Deployment, Service,
        HorizontalPodAutoscaler (with autoscale), PodDisruptionBudget, NetworkPolicy.

    Raises:
        ExportError: auth is on and no keys were given.
    """
    files = first_manifests(model, options, keys)
    files["20-deployment.yaml"] = deployment_manifest(model, options)
    files["30-service.yaml"] = service_manifest(model, options)
    if options.autoscale:
        files["40-hpa.yaml"] = autoscaler_manifest(model, options)
    files["50-pdb.yaml"] = disruption_budget_manifest(model, options)
    files["60-networkpolicy.yaml"] = network_policy_manifest(model, options)
    return files

