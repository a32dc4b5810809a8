"""The FastAPI app of a scoring server: POST /score (answered by fast_path.ScoreEndpoint; documented
here), GET /health, /ready, /info and /metrics, the V2 routes (v2_routes), OpenAPI at /docs; and the
app that answers when init() failed."""

from __future__ import annotations

import os
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from . import crashloop, deadline
from .access import AccessLog
from .answers import Unauthorized, answer, response
from .auth import KeyFile
from .bodies import BodyBudget, worker_budget
from .fast_path import ScoreEndpoint, ScoringApp
from .handlers import NPY_TYPE
from .metrics import METRICS_PATH, MetricsMiddleware, ServerMetrics
from .script import ScoringScript
from .v2 import served_model
from .v2_routes import add_v2_routes

DEFAULT_MAX_BODY_BYTES = 64 * 2**20
FLOAT32_MAX = 3.4e38
_SCORE_DOC = """Scores a batch with the deployment's scoring script.

* `application/json` (the tutorial's contract): `{"data": [[...784 floats...], ...]}`, passed unchanged
  as a string to the script's `run(raw_data)`; answers with what `run` returns, as JSON. For a model
  fitted on named columns (/info: `feature_names`, `records`), rows may also be objects of those columns:
  `{"data": [{"mean radius": 14.1, ...}]}`, or a table in pandas' split form (`DataFrame.to_dict(orient="split")`):
  `{"data": {"columns": ["mean radius", ...], "data": [[14.1, ...], ...]}}` (columns in any order).
* `application/x-npy`: a 2-D array saved with `numpy.save` (float32 or uint8), passed to the
  script's `run_array(array)` (the built-in scikit-learn script has one). Much faster for big batches.

Confidence: `"proba": true` in the JSON body, or `?proba=true` with an .npy body, makes scripts that
support it (/info: `probabilities`) answer `{"predictions": [...], "probabilities": [[...], ...],
"classes": [...]}`: per row the probability of every class, in the order of `classes`. Scripts that
return labels only (the tutorial's) ignore the question.

Bad input answers 400 (415 for an unsupported content type, 413 above the body limit in /info) with
`{"error": ..., "type": ...}`; an error raised inside the scoring script answers 500 with a request id
(the traceback is in the deployment's logs, under that id).
"""


def _json(status: int, payload: Any) -> Response:
    return Response(content=orjson.dumps(payload), status_code=status, media_type="application/json")


def _openapi_body(n_features: int | None, columns: list[str] | None) -> dict[str, Any]:
    # float32 holds what the model sees: a larger number would become infinity and be refused
    number = {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}
    row: dict[str, Any] = {"type": "array", "items": number}
    if n_features:
        row.update(minItems=n_features, maxItems=n_features)
    if columns:  # or an object of the model's columns (every row of a body one form or the other)
        row = {"oneOf": [row, {"type": "object", "required": columns, "additionalProperties": False,
                               "properties": {name: number for name in columns}}]}
    data: dict[str, Any] = {"type": "array", "minItems": 1, "items": row}
    if columns:  # or pandas' split form of a table of those columns
        split = {"type": "object", "required": ["columns", "data"], "properties": {
            "columns": {"type": "array", "items": {"type": "string", "enum": columns}, "minItems": len(columns),
                        "maxItems": len(columns), "uniqueItems": True},
            "data": {"type": "array", "minItems": 1, "items": {"type": "array", "items": number,
                                                                "minItems": len(columns), "maxItems": len(columns)}},
            "index": {"type": "array"}}}
        data = {"oneOf": [data, split]}
    return {"required": True, "content": {
        "application/json": {
            "schema": {"type": "object", "required": ["data"], "properties": {
                "data": data,
                "proba": {"type": "boolean", "description": "answer class probabilities too (scripts that "
                          "support it; /info says `probabilities`): {predictions, probabilities, classes}"}}},
            "example": {"data": [[0.0] * (n_features or 4)]}}}}


def create_app(script: ScoringScript, info: dict[str, Any] | None = None, keys: KeyFile | None = None,
               metrics: ServerMetrics | None = None, access_log: AccessLog | None = None) -> FastAPI:
    """An app serving `script`, whose `init()` has already returned; with `keys`, /score, /info and
    /metrics want one of them as a Bearer token. Every request is counted in `metrics` (made here when
    not given) and, but probes and scrapes, written to `access_log` when given (serve it with uvicorn's
    own access log off)."""
    metrics = metrics or ServerMetrics()
    info = dict(info or {})
    info.setdefault("n_features", script.n_features)
    limit = int(info.get("max_body_bytes") or DEFAULT_MAX_BODY_BYTES)
    run_timeout = float(info.setdefault("run_timeout_seconds", deadline.DEFAULT_RUN_TIMEOUT_SECONDS))
    takes_arrays = script.run_array is not None and not script.categories  # text columns: JSON rows only
    info["content_types"] = ["application/json"] + ([NPY_TYPE] if takes_arrays else [])
    if takes_arrays:  # what an .npy body may hold: uint8 pixels where the script scales them
        info["npy_dtypes"] = ["float32"] + (["uint8"] if script.accepts_uint8 else [])
    info["auth"] = "key" if keys is not None else "none"
    info["probabilities"] = script.supports_proba
    info["records"] = script.records_of is not None  # rows as objects of `feature_names` too
    served = served_model(info, script)
    info["protocols"] = ["azureml", "v2"]
    info["v2_model"] = {"name": served.name, "version": served.version, "outputs": list(served.outputs)}
    app = ScoringApp(title="ModelDeck scoring server", version="1", description=info.get("description", ""))
    budget = BodyBudget(worker_budget(int(info.get("workers") or 1)))  # after init(): what the model left
    info["body_memory_bytes"] = budget.total
    endpoint = ScoreEndpoint(script, keys, metrics, limit, access_log, budget, run_timeout)
    errors = {"400": {"description": "bad input, with a message"},
              "408": {"description": "the body did not arrive in time"},
              "413": {"description": "the body is larger than the deployment's limit (see /info), or its parse would "
                                     "take more memory than the deployment gives one request (send .npy)"},
              "415": {"description": "unsupported content type"},
              "500": {"description": "the scoring script raised: the message has a request id, the "
                                     "deployment's logs the traceback"},
              "503": {"description": "not run, retry after the Retry-After header's seconds: the worker's memory "
                                     "for bodies is taken by others in flight, the worker is being replaced, or "
                                     "the server is restarting a crashed worker (the message says why)"},
              "504": {"description": "not answered within the deployment's run() time limit (see /info): the "
                                     "message has a request id"}}
    secured: dict[str, Any] = {}
    if keys is not None:
        errors["401"] = {"description": "no key, or not one of the deployment's keys"}
        secured = {"security": [{"key": []}]}

    def denied(request: Request) -> Response | None:
        if keys is None:
            return None
        try:
            keys.admit(request.headers.get("authorization"))
        except Unauthorized as refusal:
            return response(answer(refusal))
        return None

    @app.post("/score", summary="Score a batch", description=_SCORE_DOC, openapi_extra={
        "requestBody": _openapi_body(info.get("n_features"), script.records_of), "responses": errors, **secured,
        "parameters": [{"name": "proba", "in": "query", "required": False, "schema": {"type": "boolean"},
                        "description": "with an .npy body: answer class probabilities too"}]})
    async def score(request: Request) -> Response:
        # Reached only when score_endpoint is unset: ScoringApp answers POST /score with it first.
        return response(await endpoint.answer(request.scope, request.receive))

    @app.get("/health", summary="Liveness: the server answers (even while run() is busy)")
    async def health() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/ready", summary="Readiness: init() has returned and /score answers (even while run() is busy); "
             "503 with `crash_loop` while workers keep dying", response_model=None)
    async def ready() -> Response:
        # The app is only created once init() succeeded (see __main__), so answering means ready, unless
        # this worker was forked in a crash loop and has not yet lived long enough to count as well.
        failing = crashloop.ready_failure()
        if failing is not None:
            return _json(503, {"ready": False, "crash_loop": failing, "error": failing, "type": "CrashLoop"})
        return _json(200, {"ready": True})

    @app.get("/info", summary="What this endpoint serves",
             openapi_extra={"responses": {k: v for k, v in errors.items() if k == "401"}, **secured})
    async def get_info(request: Request) -> Response:
        return denied(request) or _json(200, {**info, "worker_pid": os.getpid()})

    @app.get(METRICS_PATH, include_in_schema=False)
    async def get_metrics(request: Request) -> Response:
        # Prometheus text format, every worker summed; with key auth it wants the key as /info does.
        refused = denied(request)
        if refused is not None:
            return refused
        content, media_type = metrics.exposition()
        return Response(content=content, media_type=media_type)

    add_v2_routes(app, script, served, keys, metrics, limit, budget, errors, secured, run_timeout)

    if keys is not None:
        schema = app.openapi()
        schema.setdefault("components", {})["securitySchemes"] = {
            "key": {"type": "http", "scheme": "bearer", "description": "the deployment's primary or secondary key"}}
    app.add_middleware(MetricsMiddleware, metrics=metrics, access_log=access_log)
    app.score_endpoint = endpoint
    return app


def create_failed_app(reason: str) -> FastAPI:
    """What answers when init() failed: 503 with the reason everywhere, so the runtime can tell a
    failed start from a slow one (the traceback is in the log)."""
    app = FastAPI(title="ModelDeck scoring server (init() failed)", openapi_url=None)
    failure = {"ready": False, "init_failed": reason, "error": reason, "type": "InitFailed"}

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def failed(path: str) -> Response:
        return _json(503, failure)

    return app
