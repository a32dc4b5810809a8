"""The FastAPI app: POST /score, GET /health, GET /ready, GET /info, OpenAPI at /docs."""

from __future__ import annotations

import os
from types import ModuleType
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool

from .handlers import NPY_TYPE, Result, handle_score

INLINE_BODY_BYTES = 64 * 1024
_SCORE_DOC = """Scores a batch with the deployment's scoring script.

* `application/json` (the tutorial's contract): `{"data": [[...784 floats...], ...]}`, passed unchanged
  as a string to the script's `run(raw_data)`; answers with what `run` returns, as JSON.
* `application/x-npy`: a 2-D array saved with `numpy.save` (float32 or uint8), passed to the
  script's `run_array(array)` (the built-in scikit-learn script has one). Much faster for big batches.

Bad input answers 400 (415 for an unsupported content type) with `{"error": ..., "type": ...}`.
"""


def _json(status: int, payload: Any) -> Response:
    try:
        content = orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)
    except TypeError as e:
        status = 500
        content = orjson.dumps({"error": f"run() returned a value that is not JSON-serialisable: {e}",
                                "type": "TypeError"})
    return Response(content=content, status_code=status, media_type="application/json")


def create_app(script: ModuleType, info: dict[str, Any] | None = None) -> FastAPI:
    """An app serving `script`, whose `init()` has already returned."""
    info = dict(info or {})
    info["content_types"] = ["application/json"] + ([NPY_TYPE] if callable(getattr(script, "run_array", None)) else [])
    app = FastAPI(title="ModelDeck scoring server", version="1", description=info.get("description", ""))

    @app.post("/score", summary="Score a batch", description=_SCORE_DOC, openapi_extra={
        "requestBody": {"required": True, "content": {
            "application/json": {"schema": {"type": "object", "properties": {"data": {
                "type": "array", "items": {"type": "array", "items": {"type": "number"}}}}},
                "example": {"data": [[0.0] * 4]}},
            NPY_TYPE: {"schema": {"type": "string", "format": "binary"}}}},
        "responses": {"400": {"description": "bad input, with a message"},
                      "415": {"description": "unsupported content type"}}})
    async def score(request: Request) -> Response:
        body = await request.body()
        content_type = request.headers.get("content-type", "")
        if len(body) <= INLINE_BODY_BYTES:
            # A few rows score in well under a millisecond: a thread hop would cost more than the work.
            result: Result = handle_score(script, body, content_type)
        else:
            result = await run_in_threadpool(handle_score, script, body, content_type)
        return _json(result.status, result.payload)

    @app.get("/health", summary="Liveness: the server answers")
    def health() -> dict[str, str]:
        return {"status": "alive"}

    @app.get("/ready", summary="Readiness: init() has returned and /score answers")
    def ready() -> dict[str, bool]:
        # The app is only created once init() succeeded (see __main__), so answering means ready.
        return {"ready": True}

    @app.get("/info", summary="What this endpoint serves")
    def get_info() -> dict[str, Any]:
        return {**info, "worker_pid": os.getpid()}

    return app
