"""The Open Inference Protocol's REST routes beside /score (see v2 for the protocol itself): health,
metadata, readiness, infer."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from . import crashloop, deadline, v2
from .answers import ClientGone, Refusal, UnsupportedMediaType, answer, response
from .auth import KeyFile
from .bodies import SEND_BINARY, BodyBudget, read_body, release_memory, reserve_parse, v2_cost
from .metrics import ServerMetrics
from .scoring_thread import on_scoring_thread
from .script import ScoringScript

V2_TAG = "Open Inference Protocol (V2)"
_V2_INFER_DOC = """Scores a batch in the Open Inference Protocol (KServe / Triton / MLServer "V2"), as
`tritonclient.http` and other V2 clients send it.

* One input tensor (any name; metadata calls it `input-0`): FP32, FP64 or UINT8 (pixels 0..255, scaled
  to 0..1), shape `[N, n_features]`, `[n_features]` for one row, or `[N, ...]` whose trailing dims
  multiply to n_features (`[N, 28, 28]`). `data` flat or nested, row-major.
* Outputs: `predict` (labels: INT64, or BYTES for class names) and, where the script answers
  probabilities, `predict_proba` (FP64 `[N, n_classes]`). All when `outputs` names none.
* Binary tensor data extension: inputs with `parameters.binary_data_size` carry their bytes after the
  JSON part, whose length the `Inference-Header-Content-Length` header gives; outputs with
  `parameters.binary_data: true` (or, for all, the request's `parameters.binary_data_output`) come back
  the same way.

A schema-valid body can still be refused with 400 when its `shape` and `data` disagree (JSON Schema
cannot say that). Errors are `{"error": message}`.
"""


def _v2_infer_body(served: v2.ServedModel) -> dict[str, Any]:
    width = served.n_features or 4
    flag = {"type": "boolean"}
    tensor = {"type": "object", "required": ["name", "datatype", "shape"], "properties": {
        "name": {"type": "string"},
        "datatype": {"type": "string", "enum": sorted(v2.INPUT_DTYPES)},
        "shape": {"type": "array", "minItems": 1, "items": {"type": "integer", "minimum": 1}},
        "data": {"type": "array", "description": "row-major values, flat or nested as rows", "items": {}},
        "parameters": {"type": "object", "properties": {"binary_data_size": {"type": "integer", "minimum": 0}}}}}
    output = {"type": "object", "required": ["name"], "properties": {
        "name": {"type": "string", "enum": list(served.outputs)},
        "parameters": {"type": "object", "properties": {"binary_data": flag}}}}
    schema = {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "inputs": {"type": "array", "minItems": 1, "maxItems": 1, "items": tensor},
        "outputs": {"type": "array", "items": output},
        "parameters": {"type": "object", "properties": {"binary_data_output": flag}}}}
    example = {"inputs": [{"name": v2.INPUT_NAME, "datatype": "FP32", "shape": [1, width], "data": [0.0] * width}]}
    return {"required": True, "content": {"application/json": {"schema": schema, "example": example}}}


def _v2_path(served: v2.ServedModel, version: bool) -> list[dict[str, Any]]:
    names = [served.name, *served.aliases]
    parameters = [{"name": "model_name", "in": "path", "required": True, "description": "the model's name (or the "
                   "deployment's)", "schema": {"type": "string", "enum": names}}]
    if version:
        parameters.append({"name": "model_version", "in": "path", "required": True,
                           "schema": {"type": "string", "enum": [served.version]}})
    return parameters


def add_v2_routes(app: FastAPI, script: ScoringScript, served: v2.ServedModel, keys: KeyFile | None,
                  metrics: ServerMetrics, limit: int, budget: BodyBudget, errors: dict[str, Any],
                  secured: dict[str, Any], run_timeout: float = deadline.DEFAULT_RUN_TIMEOUT_SECONDS) -> None:
    """The Open Inference Protocol's REST routes beside /score: health, metadata, readiness, infer;
    `errors` and `secured` are /score's OpenAPI responses and security."""
    metadata = orjson.dumps(v2.model_metadata(served))
    ready = orjson.dumps(v2.model_ready(served))
    not_found = {"404": {"description": "no such model or version here: the message names the served one"}}
    keyed = {k: v for k, v in errors.items() if k == "401"}
    answered = {"description": "the outputs: JSON, or (with binary outputs) the JSON part then the tensors' bytes, "
                               "its length in the Inference-Header-Content-Length header",
                "content": {"application/json": {"schema": {"type": "object"}},
                            v2.BINARY_TYPE: {"schema": {"type": "string", "format": "binary"}}}}

    def admit(request: Request) -> None:
        """Raises Unauthorized (without one of `keys`) or ModelNotFound (another model or version)."""
        if keys is not None:
            keys.admit(request.headers.get("authorization"))
        v2.resolve(served, request.path_params["model_name"], request.path_params.get("model_version"))

    def describing(content: bytes) -> Callable[[Request], Awaitable[Response]]:
        """A route answering `content` (JSON) to a request for the served model."""
        async def route(request: Request) -> Response:
            try:
                admit(request)
            except Refusal as refusal:
                return response(answer(refusal, v2=True))
            return Response(content=content, media_type="application/json")
        return route

    @app.get("/v2/health/live", summary="V2 liveness: the server answers (even while run() is busy)", tags=[V2_TAG])
    async def v2_live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", summary="V2 readiness: init() has returned and inference answers", tags=[V2_TAG])
    async def v2_ready() -> dict[str, bool]:
        return {"ready": True}  # the app exists only once init() returned (see __main__)

    @app.get("/v2", summary="V2 server metadata: name, version, extensions", tags=[V2_TAG])
    async def v2_server() -> dict[str, Any]:
        return v2.server_metadata()

    async def v2_infer(request: Request) -> Response:
        try:
            admit(request)
            encoding = request.headers.get("content-encoding", "identity").strip().lower()
            if encoding not in ("", "identity"):
                raise UnsupportedMediaType(f"Content-Encoding {encoding[:20]!r} is not supported: send the body "
                                           "uncompressed")
            body, held = await read_body(request.receive, request.headers.get("content-length", ""), limit, budget)
        except Refusal as refusal:
            return response(answer(refusal, v2=True))
        except ClientGone:
            return Response(status_code=499)  # nobody to answer: the client left before its body arrived
        header_length = request.headers.get(v2.HEADER_LENGTH)
        try:
            if held:  # a big body: its parse must fit the budget too
                cost = await asyncio.to_thread(v2_cost, body, header_length)  # the loop answers meanwhile
                held += await reserve_parse(budget, cost, held, f"inference request ({len(body) / 2**20:,.1f} MiB)",
                                            SEND_BINARY if header_length is None else "")
            inferred = await on_scoring_thread(lambda: v2.infer(script, served, body, header_length),
                                              run_timeout, request.receive)
        except ClientGone:
            return Response(status_code=499)  # nobody to answer: the request was dropped before it ran
        except Refusal as refusal:
            return response(answer(refusal, v2=True))
        finally:
            if held:
                budget.give_back(held)
                del body
                release_memory()
        if inferred.rows:
            metrics.scored(inferred.rows)
        if inferred.status == 200 and crashloop.state is not None:
            crashloop.note_served()  # an inference answered ends a crash loop, as a score does
        return response(inferred)

    for versioned in (False, True):
        base = "/v2/models/{model_name}" + ("/versions/{model_version}" if versioned else "")
        which = " (this version)" if versioned else ""
        app.add_api_route(base, describing(metadata), name="v2_model", methods=["GET"], tags=[V2_TAG],
                          summary=f"V2 model metadata{which}: name, versions, platform, inputs, outputs",
                          openapi_extra={"parameters": _v2_path(served, versioned),
                                         "responses": {**keyed, **not_found}, **secured})
        app.add_api_route(base + "/ready", describing(ready), name="v2_model_ready", methods=["GET"],
                          tags=[V2_TAG],
                          summary=f"V2 model readiness{which}",
                          openapi_extra={"parameters": _v2_path(served, versioned),
                                         "responses": {**keyed, **not_found}, **secured})
        app.add_api_route(base + "/infer", v2_infer, methods=["POST"], tags=[V2_TAG],
                          summary=f"V2 inference{which}: tensors in, labels and probabilities out",
                          description=_V2_INFER_DOC,
                          openapi_extra={"parameters": _v2_path(served, versioned), "requestBody": _v2_infer_body(served),
                                         "responses": {"200": answered, **errors, **not_found}, **secured})
