"""A KServe InferenceService (serving.kserve.io/v1beta1) whose predictor is the self-contained image.

KServe's custom predictor is a core/v1 PodSpec inlined under `spec.predictor` beside KServe's own fields
(minReplicas, maxReplicas, ...); the first container is the predictor, named `kserve-container`. The
`PROTOCOL` variable of that container tells KServe which protocol it speaks (`v2`: the Open Inference
Protocol, which the image serves under /v2 beside the tutorial's /score).

Deployment mode: RawDeployment (annotation `serving.kserve.io/deploymentMode`). KServe then makes a plain
Deployment, a Service `NAME-predictor` (port 80 to the container's first port) and an HPA, so the whole
hardened pod spec applies as written: Knative (the serverless mode) refuses or needs feature flags for
fsGroup, several volumes and a memory-backed emptyDir. KServe 0.16 renamed the mode to `Standard` and
still accepts `RawDeployment`, normalising it. No `scaleMetric`/`scaleTarget` is written: their default
in this mode is CPU utilisation (80 %), and KServe 0.16's validator rejects `scaleMetric: cpu` beside the
legacy mode name.

Only the predictor's pod spec can be checked against the Kubernetes API schema here (as a Pod): the
InferenceService itself is a CRD that the API schemas do not know. Pure functions, as in `kubernetes`.
"""

from __future__ import annotations

from ..errors import ExportError
from ..runtimes.base import SCORING_PORT, Keys
from .kubernetes import (
    SECRET_FILE,
    ExportOptions,
    Manifest,
    ModelIdentity,
    container_spec,
    first_manifests,
    labels,
    model_annotations,
    pod_spec,
)

API_VERSION = "serving.kserve.io/v1beta1"
CONTAINER_NAME = "kserve-container"  # KServe looks for its predictor container by this name
PORT_NAME = "http1"  # the port name Knative and KServe read as HTTP/1
DEPLOYMENT_MODE = "RawDeployment"
PREDICTOR_SUFFIX = "-predictor"  # KServe's Service and Deployment: NAME-predictor
SERVICE_PORT = 80  # the port of KServe's predictor Service (to the container's 8000)
FILE_NAMES = ("00-namespace.yaml", SECRET_FILE, "20-inferenceservice.yaml")


def predictor_name(options: ExportOptions) -> str:
    return options.name + PREDICTOR_SUFFIX


def predictor_spec(options: ExportOptions) -> Manifest:
    """`spec.predictor`: replicas (min = max = the replicas unless autoscaled) and the pod spec around the container,
    which speaks the Open Inference Protocol (`PROTOCOL=v2`)."""
    container = container_spec(options, container_name=CONTAINER_NAME, port_name=PORT_NAME,
                               probe_port=SCORING_PORT)  # Knative takes only the serving port, by number
    container["env"] = [*container["env"], {"name": "PROTOCOL", "value": "v2"}]
    low, high = options.autoscale or (options.replicas, options.replicas)
    return {"minReplicas": low, "maxReplicas": high, **pod_spec(options, container)}


def inference_service_manifest(model: ModelIdentity, options: ExportOptions) -> Manifest:
    meta: Manifest = {"name": options.name}
    if options.namespace:
        meta["namespace"] = options.namespace
    meta["labels"] = labels(model, options)
    notes = {"serving.kserve.io/deploymentMode": DEPLOYMENT_MODE, **model_annotations(model, options)}
    if options.autoscale:
        notes["serving.kserve.io/autoscalerClass"] = "hpa"
    meta["annotations"] = notes
    return {"apiVersion": API_VERSION, "kind": "InferenceService", "metadata": meta,
            "spec": {"predictor": predictor_spec(options)}}


def kserve_manifests(model: ModelIdentity, options: ExportOptions, keys: Keys | None = None) -> dict[str, Manifest]:
    """What `kubectl apply -f DIR` needs on a cluster with KServe installed, by file name (in apply order).

    Returns:
        {file name: manifest}: Namespace (with a namespace), Secret (with auth), InferenceService.

    Raises:
        ExportError: a name too long for KServe's `NAME-predictor` objects, or auth on without keys.
    """
    if len(predictor_name(options)) > 63:
        raise ExportError(f"name {options.name!r} is too long for KServe: it makes {predictor_name(options)!r}, "
                          f"and names stop at 63 characters (use at most {63 - len(PREDICTOR_SUFFIX)})")
    files = first_manifests(model, options, keys)
    files["20-inferenceservice.yaml"] = inference_service_manifest(model, options)
    return files
