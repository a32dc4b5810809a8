"""POST /score answered as a plain ASGI app, below FastAPI's per-request machinery (its middleware stack,
routing, dependency solving, Request and Response objects: about a third of a single-row request's time
before): `ScoreEndpoint`, and the `ScoringApp` that hands it every POST /score first."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI

from . import crashloop, deadline
from .access import AccessLog
from .answers import Answer, ClientGone, Refusal, answer, server_fault
from .auth import KeyFile
from .bodies import SEND_NPY, BodyBudget, read_body, release_memory, reserve_parse, score_cost, worker_budget
from .handlers import NPY_TYPE, score
from .metrics import ServerMetrics
from .scoring_thread import on_scoring_thread
from .script import ScoringScript

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("modeldeck.serving")
BAD_PROBA = "the query parameter proba must be true or false"
_JSON_TYPE = (b"content-type", b"application/json")


def _proba(query_string: bytes) -> bool:
    """Whether `?proba=` asks for probabilities.

    Raises:
        Refusal: a value other than true, false, 1 or 0 (BAD_PROBA).
    """
    asked = {value.lower() for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True)
             if name == "proba"}
    if not asked <= {"true", "false", "1", "0"}:
        raise Refusal(BAD_PROBA)
    return bool(asked & {"true", "1"})


ENDPOINT_HEADER = b"x-modeldeck-endpoint"  # set by an endpoint's proxy on every request it sends a deployment
ANSWER_HEADER = b"x-modeldeck-answer"  # the answer again, short, where the proxy can log it: a shadow's is compared
ANSWER_HEADER_MAX = 512


def answer_digest(body: bytes) -> bytes:
    """The answer as the proxy logs it: the body itself when short and plain ASCII (`[7]`), else `sha256:` and
    its first 16 hex digits (two answers still compare as equal or not)."""
    if len(body) <= ANSWER_HEADER_MAX and body.isascii() and b"\n" not in body and b"\r" not in body:
        return body
    return b"sha256:" + hashlib.sha256(body).hexdigest()[:16].encode()


class ScoreEndpoint:
    """POST /score: the key, the body limit and timeout, the content type and `?proba` are checked here,
    the script runs on the scoring thread, and the request is counted in `metrics` as MetricsMiddleware
    counts every other one. The FastAPI route of the same path (which the OpenAPI docs list) calls
    `answer` too, so both say the same."""

    def __init__(self, script: ScoringScript, keys: KeyFile | None, metrics: ServerMetrics, limit: int,
                 access_log: AccessLog | None = None, budget: BodyBudget | None = None,
                 run_timeout: float = deadline.DEFAULT_RUN_TIMEOUT_SECONDS) -> None:
        self.script, self.keys, self.metrics, self.limit, self.access_log = script, keys, metrics, limit, access_log
        self.budget = budget or BodyBudget(worker_budget(1))
        self.run_timeout = run_timeout

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        metrics = self.metrics
        started = time.perf_counter()
        metrics.started()
        status = 500  # counted when the client went away (or the server failed) before an answer
        response_started = False
        try:
            answered = await self.answer(scope, receive)
            status = answered.status
            headers = [_JSON_TYPE, (b"content-length", b"%d" % len(answered.body))]
            if any(name == ENDPOINT_HEADER for name, _ in scope["headers"]):
                headers.append((ANSWER_HEADER, answer_digest(answered.body)))
            if answered.headers:
                headers += [(name.lower().encode("latin-1"), value.encode("latin-1"))
                            for name, value in answered.headers.items()]
            response_started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": answered.body})
        except ClientGone:
            return  # no answer, no access line (uvicorn's log had none either); counted with status 500
        except Exception as e:  # a fault of the server's own: logged with its id, a JSON 500 when still possible
            body = server_fault(e, "POST /score")
            if not response_started:
                await send({"type": "http.response.start", "status": 500,
                            "headers": [_JSON_TYPE, (b"content-length", b"%d" % len(body))]})
                await send({"type": "http.response.body", "body": body})
        finally:
            metrics.finished("/score", status, time.perf_counter() - started)
            if status == 200 and crashloop.state is not None:
                crashloop.note_served()
        if self.access_log is not None:
            self.access_log.write(scope, status)

    async def answer(self, scope: Scope, receive: Receive) -> Answer:
        """The answer to one POST /score (its rows already counted in `metrics`).

        Raises:
            ClientGone: the client disconnected before its body arrived, or before its request ran.
        """
        declared = content_type = ""
        authorization: str | None = None
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value.decode("latin-1")
            elif name == b"content-type":
                content_type = value.decode("latin-1")
            elif name == b"authorization":
                authorization = value.decode("latin-1")
        budget = self.budget
        try:
            if self.keys is not None:
                self.keys.admit(authorization)
            body, held = await read_body(receive, declared, self.limit, budget)
        except Refusal as refusal:
            return answer(refusal)
        script = self.script
        try:
            proba = _proba(scope["query_string"]) if scope.get("query_string") else False
            if held:  # a big body: its parse must fit the budget too
                cost = await asyncio.to_thread(score_cost, script.json_value_bytes, body, content_type)
                npy = content_type.split(";")[0].strip().lower() == NPY_TYPE  # (the loop answered meanwhile)
                held += await reserve_parse(budget, cost, held, f"{'.npy' if npy else 'JSON'} body "
                                            f"({len(body) / 2**20:,.1f} MiB)", "" if npy else SEND_NPY)
            answered = await on_scoring_thread(lambda: score(script, body, content_type, proba),
                                              self.run_timeout, receive)
        except Refusal as refusal:
            return answer(refusal)
        finally:
            if held:
                budget.give_back(held)
                del body
                release_memory()
        if answered.rows:
            self.metrics.scored(answered.rows)
        return answered


class ScoringApp(FastAPI):
    """The FastAPI app, with POST /score handed to `score_endpoint` (when set) before FastAPI sees it:
    everything else, and the OpenAPI docs of /score too, stay FastAPI's."""

    score_endpoint: ScoreEndpoint | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if self.score_endpoint is not None and scope["type"] == "http" and scope["path"] == "/score" \
                and scope["method"] == "POST":
            await self.score_endpoint(scope, receive, send)
            return
        await super().__call__(scope, receive, send)
