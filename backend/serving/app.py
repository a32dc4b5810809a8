"""The FastAPI app: POST /score, GET /health, GET /ready, GET /info, GET /metrics, OpenAPI at /docs."""

from __future__ import annotations

import asyncio
import collections
import logging
import os
import queue
import secrets
import threading
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from types import ModuleType
from typing import Any
from urllib.parse import parse_qsl

import orjson
from fastapi import FastAPI, Request
from fastapi.responses import Response

from . import crashloop, deadline, v2
from .access import AccessLog
from .auth import KeyFile
from .bodies import (
    RETRY_AFTER_SECONDS,
    SEND_BINARY,
    SEND_NPY,
    TOO_SLOW_RATE,
    BodyBudget,
    BodyTooCostly,
    BodyTooLarge,
    Busy,
    ClientGone,
    TooSlow,
    receive_counted,
    release_memory,
    reserve_parse,
    score_cost,
    v2_cost,
    worker_budget,
)
from .handlers import NPY_TYPE, Answer, handle_score
from .metrics import METRICS_PATH, MetricsMiddleware, ServerMetrics, rows_in

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

log = logging.getLogger("modeldeck.serving")
DEFAULT_MAX_BODY_BYTES = 64 * 2**20
BODY_TIMEOUT_SECONDS = 60.0  # a body that has not fully arrived by then is refused (408)
TOO_LARGE = ("the request body ({size}) is larger than this deployment's limit of {limit:,.0f} MiB: send fewer "
             "rows per request, or send them as .npy (Content-Type: application/x-npy), about 5 times smaller; "
             "`deploy --max-body-mb` sets the limit")
TOO_SLOW = f"the request body did not arrive within {BODY_TIMEOUT_SECONDS:.0f} s"
_WHERE_KEYS = ("`modeldeck deployments keys NAME` prints a deployment's; a built image's are in the keys file "
               "mounted into it (a Kubernetes export's: its Secret)")
NO_KEY = ("this deployment wants a key: send `Authorization: Bearer <key>` with its primary or secondary key ("
          + _WHERE_KEYS + ")")
WRONG_KEY = ("the Authorization header does not carry one of this deployment's keys (`Bearer <key>`; a regenerated "
             "key replaces the old one at once): " + _WHERE_KEYS)
BAD_PROBA = "the query parameter proba must be true or false"
SCRIPT_FAULT = "the scoring script raised {kind} (request id {request_id}; the traceback is in the deployment's logs)"
SERVER_FAULT = "the server failed answering this request (request id {request_id}; the traceback is in the deployment's logs)"
FLOAT32_MAX = 3.4e38
_SCORE_DOC = """Scores a batch with the deployment's scoring script.

* `application/json` (the tutorial's contract): `{"data": [[...784 floats...], ...]}`, passed unchanged
  as a string to the script's `run(raw_data)`; answers with what `run` returns, as JSON.
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


def _json(status: int, payload: Any, close: bool = False, headers: dict[str, str] | None = None) -> Response:
    headers = {**(headers or {}), **({"Connection": "close"} if close else {})}
    return Response(content=orjson.dumps(payload), status_code=status, media_type="application/json",
                    headers=headers or None)


def script_fault(error: BaseException) -> tuple[int, bytes]:
    """A 500 for anything raised (or exited) inside the user's script: the client gets the kind and a
    request id, the deployment's log gets the traceback under that id."""
    request_id = secrets.token_hex(8)
    kind = type(error).__name__
    log.error("request %s: the scoring script raised %s:\n%s", request_id, kind, traceback.format_exc().rstrip())
    return 500, orjson.dumps({"error": SCRIPT_FAULT.format(kind=kind, request_id=request_id), "type": kind,
                              "request_id": request_id})


class _Job:
    """One call of the script: queued for the scoring thread, answered once (by the thread, the deadline
    or the client leaving; `_claim` decides which of them runs it or drops it)."""

    __slots__ = ("loop", "answer", "work", "limit", "arrived", "deadline", "started", "cycle")

    def __init__(self, loop: asyncio.AbstractEventLoop, work: Callable[[], Answer], limit: float,
                 cycle: Any = None) -> None:
        self.loop, self.work, self.limit = loop, work, limit  # work runs the script: on the scoring thread only
        self.cycle = cycle  # uvicorn's request cycle: its `disconnected` turns True when the client leaves
        self.answer: asyncio.Future[Answer] = loop.create_future()
        self.arrived = time.monotonic()
        self.deadline = self.arrived + limit
        self.started = 0.0  # when run() began; -1.0: dropped (past its deadline, or its client left)


_scoring: queue.SimpleQueue[_Job] | None = None
_running: list[_Job | None] = [None]  # the job on the scoring thread now (read by the watchdog)
# Jobs not yet known to be answered, oldest first (deadlines in the same order: one limit per server).
# The watchdog expires them from the left: no timer per request (a uvloop timer cost ~3 us of ~35).
_pending: collections.deque[_Job] = collections.deque()
_scoring_ident: list[int | None] = [None]
_claim = threading.Lock()
_GONE = Answer(499, b"")  # the client left before its job ran


def _forget_scoring_thread() -> None:
    global _scoring
    _scoring = None  # a forked child has the queue but not the thread: it starts its own on first use
    _running[0] = None
    _pending.clear()


os.register_at_fork(after_in_child=_forget_scoring_thread)


def scoring_queue() -> queue.SimpleQueue[_Job]:
    """The queue of this process's one scoring thread, started on first use (after the fork, so each
    worker has its own), with its watchdog (deadline.watch). A bare queue and thread: measured as cheap
    as scoring on the event loop, where an executor cost ~10 % of single-row throughput."""
    global _scoring
    if _scoring is None:
        jobs: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        thread = threading.Thread(target=_score_forever, args=(jobs,), name="modeldeck-run", daemon=True)
        thread.start()
        _scoring_ident[0] = thread.ident
        deadline.watch(lambda: _running[0], lambda job: _overran(jobs, job), _expire_due)  # type: ignore[arg-type]
        _scoring = jobs
    return _scoring


def _score_forever(jobs: queue.SimpleQueue[_Job]) -> None:
    while True:
        job = jobs.get()
        with _claim:
            if job.started:
                continue  # dropped: answered already
            now = time.monotonic()
            if now >= job.deadline:
                job.started = -1.0  # the watchdog has it answered 504 on the loop (_expire_due)
                continue
            if job.cycle is not None and job.cycle.disconnected:
                job.started = -1.0  # its client left while it waited: dropped before it runs
                job.loop.call_soon_threadsafe(_deliver, job, _GONE)
                continue
            job.started = now
        _running[0] = job
        try:
            answer = job.work()
        except BaseException as e:  # SystemExit too: answer, and keep the thread
            answer = Answer(*script_fault(e))
        _running[0] = None
        job.loop.call_soon_threadsafe(_deliver, job, answer)


def _deliver(job: _Job, answer: Answer) -> None:
    if not job.answer.done():  # answered 504 already, or the client may have gone
        job.answer.set_result(answer)


def _expire(job: _Job) -> None:
    """At a job's deadline: a queued job is dropped; either way its client gets 504."""
    with _claim:
        ran = job.started > 0
        if not job.started:
            job.started = -1.0
    if not job.answer.done():
        job.answer.set_result(deadline.timed_out(job.limit, time.monotonic() - job.arrived, ran))


def _expire_due() -> None:
    """On the watchdog thread: forgets the answered jobs at the left of `_pending` and has the loop
    answer those past their deadline (504)."""
    now = time.monotonic()
    while _pending:
        job = _pending[0]
        if job.answer.done():
            _pending.popleft()
        elif job.deadline <= now:
            _pending.popleft()
            job.loop.call_soon_threadsafe(_expire, job)
        else:
            return


def _client_left(job: _Job, watching: asyncio.Task[Message]) -> None:
    """The client closed its connection while its job waited: dropped before it runs."""
    if watching.cancelled() or watching.exception() is not None or watching.result().get("type") != "http.disconnect":
        return
    with _claim:
        if job.started:
            return  # running (its answer goes nowhere) or dropped already
        job.started = -1.0
    if not job.answer.done():
        job.answer.set_result(_GONE)


def _overran(jobs: queue.SimpleQueue[_Job], job: _Job) -> None:
    """On the watchdog thread: `job`'s run() ran past its limit. Hands the worker's retirement to its loop."""
    job.loop.call_soon_threadsafe(_retire, jobs, job)


def _retire(jobs: queue.SimpleQueue[_Job], stuck: _Job) -> None:
    """The scoring thread is stuck in run(): the jobs queued behind it get 503 (not run), the stuck one 504
    (if its deadline has not answered it yet), and the worker is replaced."""
    _expire(stuck)
    while True:
        try:
            job = jobs.get_nowait()
        except queue.Empty:
            break
        with _claim:
            dropped = job.started == 0.0
            if dropped:
                job.started = -1.0
        if dropped and not job.answer.done():
            job.answer.set_result(deadline.retired())
    deadline.retire_this_worker(_scoring_ident[0])


async def on_scoring_thread(work: Callable[[], Answer], limit: float = deadline.DEFAULT_RUN_TIMEOUT_SECONDS,
                            receive: Receive | None = None) -> Answer:
    """Runs `work` (which calls the script) on the worker's one scoring thread, never on the event loop:
    however long run() takes, /health and /ready answer at once, and calls of run() never overlap.
    Past `limit` seconds from now (checked every deadline.WATCH_SECONDS) the answer is a 504; with
    `receive` (the request's, its body read), a job queued behind another whose client disconnects
    before it runs is dropped.

    Raises:
        ClientGone: the client disconnected before the job ran.
    """
    if deadline.Worker.retiring:
        return deadline.retired()
    loop = asyncio.get_running_loop()
    # uvicorn's receive is its request cycle's method, and the cycle notes a disconnect whether or not
    # anyone waits on receive(): the scoring thread reads that flag (free); other servers' receive is watched.
    cycle = getattr(receive, "__self__", None)
    job = _Job(loop, work, limit, cycle if hasattr(cycle, "disconnected") else None)
    jobs = scoring_queue()
    waits = _running[0] is not None or not jobs.empty()  # an idle thread starts it at once: nothing to watch
    jobs.put(job)
    _pending.append(job)
    watching: asyncio.Task[Message] | None = None
    if receive is not None and waits and job.cycle is None:
        watching = loop.create_task(receive())  # type: ignore[arg-type]
        watching.add_done_callback(lambda task: _client_left(job, task))
    try:
        answer = await job.answer
    finally:
        if watching is not None:
            watching.cancel()
    if answer is _GONE:
        raise ClientGone()
    return answer


def _score(script: ModuleType, body: bytes, content_type: str, proba: bool) -> Answer:
    result = handle_score(script, body, content_type, proba)
    return Answer(result.status, orjson.dumps(result.payload, option=orjson.OPT_SERIALIZE_NUMPY),
                  rows_in(result.payload) if result.status == 200 else 0)


_REFUSED = (BodyTooLarge, BodyTooCostly, Busy, TimeoutError)


async def read_counted(receive: Receive, declared: str, limit: int, budget: BodyBudget) -> tuple[bytes, int]:
    """The body and the bytes of `budget` it holds (see bodies.receive_counted), within
    BODY_TIMEOUT_SECONDS; memory is handed back when it was refused or its client left.

    Raises:
        BodyTooLarge, BodyTooCostly, Busy, TimeoutError (TooSlow too), ClientGone.
    """
    try:
        async with asyncio.timeout(BODY_TIMEOUT_SECONDS):
            return await receive_counted(receive, declared, limit, budget)
    except (*_REFUSED, ClientGone):
        release_memory()
        raise


def body_refusal(error: Exception, limit: int, budget: BodyBudget) -> tuple[int, dict[str, str], dict[str, str]]:
    """(status, {"error", "type"}, headers) answering a body refused by `read_counted` or `reserve_parse`."""
    close = {"Connection": "close"}
    if isinstance(error, BodyTooLarge):
        return 413, {"error": TOO_LARGE.format(size=error.size, limit=limit / 2**20), "type": "BodyTooLarge"}, close
    if isinstance(error, BodyTooCostly):
        return 413, {"error": error.message, "type": "BodyTooCostly"}, close
    if isinstance(error, Busy):
        return 503, {"error": budget.busy_message(), "type": "Busy"}, {**close, "Retry-After": str(RETRY_AFTER_SECONDS)}
    if isinstance(error, TooSlow):
        return 408, {"error": TOO_SLOW_RATE, "type": "RequestTimeout"}, close
    return 408, {"error": TOO_SLOW, "type": "RequestTimeout"}, close


_JSON_TYPE = (b"content-type", b"application/json")
_CLOSE = (b"connection", b"close")


class ScoreEndpoint:
    """POST /score as a plain ASGI app, answered below FastAPI's per-request machinery (its middleware
    stack, routing, dependency solving, Request and Response objects: about a third of a single-row
    request's time before): the key, the body limit and timeout, the content type and `?proba` are
    checked here, the script runs on the scoring thread, and the request is counted in `metrics` as
    MetricsMiddleware counts every other one. The FastAPI route of the same path (which the OpenAPI
    docs list) calls `answer` too, so both say the same."""

    def __init__(self, script: ModuleType, keys: KeyFile | None, metrics: ServerMetrics, limit: int,
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
            answer = await self.answer(scope, receive)
            status = answer.status
            headers = [_JSON_TYPE, (b"content-length", b"%d" % len(answer.body))]
            if answer.headers:
                headers += [(name.lower().encode("latin-1"), value.encode("latin-1"))
                            for name, value in answer.headers.items()]
            response_started = True
            await send({"type": "http.response.start", "status": status, "headers": headers})
            await send({"type": "http.response.body", "body": answer.body})
        except ClientGone:
            return  # no answer, no access line (uvicorn's log had none either); counted with status 500
        except Exception as e:  # a fault of the server's own: logged with its id, a JSON 500 when still possible
            fault_id = secrets.token_hex(8)
            log.exception("request %s: POST /score failed", fault_id)
            if not response_started:
                body = orjson.dumps({"error": SERVER_FAULT.format(request_id=fault_id), "type": type(e).__name__,
                                     "request_id": fault_id})
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
        if self.keys is not None and not self.keys.allows(authorization):
            return Answer(401, orjson.dumps({"error": WRONG_KEY if authorization else NO_KEY, "type": "Unauthorized"}),
                          headers={"WWW-Authenticate": "Bearer", "Connection": "close"})
        budget = self.budget
        try:
            body, held = await read_counted(receive, declared, self.limit, budget)
        except _REFUSED as e:
            status, payload, headers = body_refusal(e, self.limit, budget)
            return Answer(status, orjson.dumps(payload), headers=headers)
        proba = False
        if scope.get("query_string"):
            asked = {value.lower() for name, value in parse_qsl(scope["query_string"].decode("latin-1"),
                                                                keep_blank_values=True) if name == "proba"}
            if not asked <= {"true", "false", "1", "0"}:
                return Answer(400, orjson.dumps({"error": BAD_PROBA, "type": "InvalidInput"}))
            proba = bool(asked & {"true", "1"})
        script = self.script
        try:
            if held:  # a big body: its parse must fit the budget too
                cost = await asyncio.to_thread(score_cost, script, body, content_type)  # the loop answers meanwhile
                npy = content_type.split(";")[0].strip().lower() == NPY_TYPE
                held += await reserve_parse(budget, cost, held, f"{'.npy' if npy else 'JSON'} body "
                                            f"({len(body) / 2**20:,.1f} MiB)", "" if npy else SEND_NPY)
            answer = await on_scoring_thread(lambda: _score(script, body, content_type, proba),
                                            self.run_timeout, receive)
        except (BodyTooCostly, Busy) as e:
            status, payload, headers = body_refusal(e, self.limit, budget)
            return Answer(status, orjson.dumps(payload), headers=headers)
        finally:
            if held:
                budget.give_back(held)
                del body
                release_memory()
        if answer.rows:
            self.metrics.scored(answer.rows)
        return answer


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


def _openapi_body(n_features: int | None) -> dict[str, Any]:
    # float32 holds what the model sees: a larger number would become infinity and be refused
    row: dict[str, Any] = {"type": "array", "items": {"type": "number", "minimum": -FLOAT32_MAX, "maximum": FLOAT32_MAX}}
    if n_features:
        row.update(minItems=n_features, maxItems=n_features)
    return {"required": True, "content": {
        "application/json": {
            "schema": {"type": "object", "required": ["data"], "properties": {
                "data": {"type": "array", "minItems": 1, "items": row},
                "proba": {"type": "boolean", "description": "answer class probabilities too (scripts that "
                          "support it; /info says `probabilities`): {predictions, probabilities, classes}"}}},
            "example": {"data": [[0.0] * (n_features or 4)]}}}}


def create_app(script: ModuleType, info: dict[str, Any] | None = None, keys: KeyFile | None = None,
               metrics: ServerMetrics | None = None, access_log: AccessLog | None = None) -> FastAPI:
    """An app serving `script`, whose `init()` has already returned; with `keys`, /score, /info and
    /metrics want one of them as a Bearer token. Every request is counted in `metrics` (made here when
    not given) and, but probes and scrapes, written to `access_log` when given (serve it with uvicorn's
    own access log off)."""
    metrics = metrics or ServerMetrics()
    info = dict(info or {})
    info.setdefault("n_features", getattr(script, "n_features", None))
    limit = int(info.get("max_body_bytes") or DEFAULT_MAX_BODY_BYTES)
    run_timeout = float(info.setdefault("run_timeout_seconds", deadline.DEFAULT_RUN_TIMEOUT_SECONDS))
    info["content_types"] = ["application/json"] + ([NPY_TYPE] if callable(getattr(script, "run_array", None)) else [])
    if NPY_TYPE in info["content_types"]:  # what an .npy body may hold: uint8 pixels where the script scales them
        info["npy_dtypes"] = ["float32"] + (["uint8"] if getattr(script, "accepts_uint8", False) else [])
    info["auth"] = "key" if keys is not None else "none"
    info["probabilities"] = bool(getattr(script, "supports_proba", False))
    served = v2.served_model(info, script)
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
        if keys is None or keys.allows(request.headers.get("authorization")):
            return None
        message = WRONG_KEY if request.headers.get("authorization") else NO_KEY
        return _json(401, {"error": message, "type": "Unauthorized"}, close=True,
                     headers={"WWW-Authenticate": "Bearer"})

    @app.post("/score", summary="Score a batch", description=_SCORE_DOC, openapi_extra={
        "requestBody": _openapi_body(info.get("n_features")), "responses": errors, **secured,
        "parameters": [{"name": "proba", "in": "query", "required": False, "schema": {"type": "boolean"},
                        "description": "with an .npy body: answer class probabilities too"}]})
    async def score(request: Request) -> Response:
        # Reached only when score_endpoint is unset: ScoringApp answers POST /score with it first.
        answer = await endpoint.answer(request.scope, request.receive)
        return Response(content=answer.body, status_code=answer.status, media_type="application/json",
                        headers=answer.headers)

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

    _add_v2_routes(app, script, served, denied, metrics, limit, budget, errors, secured, run_timeout)

    if keys is not None:
        schema = app.openapi()
        schema.setdefault("components", {})["securitySchemes"] = {
            "key": {"type": "http", "scheme": "bearer", "description": "the deployment's primary or secondary key"}}
    app.add_middleware(MetricsMiddleware, metrics=metrics, access_log=access_log)
    app.score_endpoint = endpoint
    return app


_V2_TAG = "Open Inference Protocol (V2)"
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


def _add_v2_routes(app: FastAPI, script: ModuleType, served: v2.ServedModel,
                   denied: Callable[[Request], Response | None], metrics: ServerMetrics, limit: int,
                   budget: BodyBudget, errors: dict[str, Any], secured: dict[str, Any],
                   run_timeout: float = deadline.DEFAULT_RUN_TIMEOUT_SECONDS) -> None:
    """The Open Inference Protocol's REST routes beside /score: health, metadata, readiness, infer."""
    metadata = orjson.dumps(v2.model_metadata(served))
    ready = orjson.dumps(v2.model_ready(served))
    not_found = {"404": {"description": "no such model or version here: the message names the served one"}}
    keyed = {k: v for k, v in errors.items() if k == "401"}
    answered = {"description": "the outputs: JSON, or (with binary outputs) the JSON part then the tensors' bytes, "
                               "its length in the Inference-Header-Content-Length header",
                "content": {"application/json": {"schema": {"type": "object"}},
                            v2.BINARY_TYPE: {"schema": {"type": "string", "format": "binary"}}}}

    def v2_json(status: int, content: bytes) -> Response:
        return Response(content=content, status_code=status, media_type="application/json")

    def check(request: Request) -> Response | None:
        refused = denied(request)
        if refused is not None:
            return refused
        try:
            v2.resolve(served, request.path_params["model_name"], request.path_params.get("model_version"))
        except v2.V2Error as e:
            return v2_json(e.status, v2.error_body(str(e)))
        return None

    @app.get("/v2/health/live", summary="V2 liveness: the server answers (even while run() is busy)", tags=[_V2_TAG])
    async def v2_live() -> dict[str, bool]:
        return {"live": True}

    @app.get("/v2/health/ready", summary="V2 readiness: init() has returned and inference answers", tags=[_V2_TAG])
    async def v2_ready() -> dict[str, bool]:
        return {"ready": True}  # the app exists only once init() returned (see __main__)

    @app.get("/v2", summary="V2 server metadata: name, version, extensions", tags=[_V2_TAG])
    async def v2_server() -> dict[str, Any]:
        return v2.server_metadata()

    async def v2_model(request: Request) -> Response:
        return check(request) or v2_json(200, metadata)

    async def v2_model_ready(request: Request) -> Response:
        return check(request) or v2_json(200, ready)

    async def v2_infer(request: Request) -> Response:
        refused = check(request)
        if refused is not None:
            return refused
        encoding = request.headers.get("content-encoding", "identity").strip().lower()
        if encoding not in ("", "identity"):
            return v2_json(415, v2.error_body(f"Content-Encoding {encoding[:20]!r} is not supported: send the body "
                                              "uncompressed"))
        try:
            body, held = await read_counted(request.receive, request.headers.get("content-length", ""), limit, budget)
        except _REFUSED as e:
            status, payload, headers = body_refusal(e, limit, budget)
            return _json(status, {"error": payload["error"]}, headers=headers)
        header_length = request.headers.get(v2.HEADER_LENGTH)
        try:
            if held:  # a big body: its parse must fit the budget too
                cost = await asyncio.to_thread(v2_cost, body, header_length)  # the loop answers meanwhile
                held += await reserve_parse(budget, cost, held, f"inference request ({len(body) / 2**20:,.1f} MiB)",
                                            SEND_BINARY if header_length is None else "")
            answer = await on_scoring_thread(lambda: v2.infer(script, served, body, header_length),
                                            run_timeout, request.receive)
        except ClientGone:
            return Response(status_code=499)  # nobody to answer: the request was dropped before it ran
        except (BodyTooCostly, Busy) as e:
            status, payload, headers = body_refusal(e, limit, budget)
            return _json(status, {"error": payload["error"]}, headers=headers)
        finally:
            if held:
                budget.give_back(held)
                del body
                release_memory()
        if answer.rows:
            metrics.scored(answer.rows)
        if answer.status == 200 and crashloop.state is not None:
            crashloop.note_served()  # an inference answered ends a crash loop, as a score does
        return Response(content=answer.body, status_code=answer.status, media_type=answer.media_type,
                        headers=answer.headers)

    for versioned in (False, True):
        base = "/v2/models/{model_name}" + ("/versions/{model_version}" if versioned else "")
        which = " (this version)" if versioned else ""
        app.add_api_route(base, v2_model, methods=["GET"], tags=[_V2_TAG],
                          summary=f"V2 model metadata{which}: name, versions, platform, inputs, outputs",
                          openapi_extra={"parameters": _v2_path(served, versioned),
                                         "responses": {**keyed, **not_found}, **secured})
        app.add_api_route(base + "/ready", v2_model_ready, methods=["GET"], tags=[_V2_TAG],
                          summary=f"V2 model readiness{which}",
                          openapi_extra={"parameters": _v2_path(served, versioned),
                                         "responses": {**keyed, **not_found}, **secured})
        app.add_api_route(base + "/infer", v2_infer, methods=["POST"], tags=[_V2_TAG],
                          summary=f"V2 inference{which}: tensors in, labels and probabilities out",
                          description=_V2_INFER_DOC,
                          openapi_extra={"parameters": _v2_path(served, versioned), "requestBody": _v2_infer_body(served),
                                         "responses": {"200": answered, **errors, **not_found}, **secured})


def create_failed_app(reason: str) -> FastAPI:
    """What answers when init() failed: 503 with the reason everywhere, so the runtime can tell a
    failed start from a slow one (the traceback is in the log)."""
    app = FastAPI(title="ModelDeck scoring server (init() failed)", openapi_url=None)
    answer = {"ready": False, "init_failed": reason}

    @app.api_route("/{path:path}", methods=["GET", "POST"])
    async def failed(path: str) -> Response:
        return _json(503, {**answer, "error": reason, "type": "InitFailed"})

    return app
