"""What the server sends back: the `Answer` of every scoring request, and the one mapping from a refusal
(no key, too large, too slow, busy, bad input, a V2 protocol error, past the run() limit) or a fault to
its answer.

A refusal is raised where it is found, as one of the `Refusal` types below; each type says its status,
its `type` and its headers, here in one place. `answer(refusal)` is `{"error": message, "type": kind}`;
on the V2 routes `answer(refusal, v2=True)` is the protocol's `{"error": message}`, but for the
refusals every route shares (`shared`: the key is checked, and the run() limit kept, before and
beside any protocol), which say the same everywhere.
"""

from __future__ import annotations

import logging
import secrets
import traceback
from dataclasses import dataclass

import orjson
from fastapi.responses import Response

log = logging.getLogger("modeldeck.serving")
SCRIPT_FAULT = "the scoring script raised {kind} (request id {request_id}; the traceback is in the deployment's logs)"
SERVER_FAULT = "the server failed answering this request (request id {request_id}; the traceback is in the deployment's logs)"
BUSY_RETRY_SECONDS = 2  # a body that found its worker's memory taken
REPLACED_RETRY_SECONDS = 1  # a request not run because its worker is being replaced
_CLOSE = {"Connection": "close"}


@dataclass(frozen=True)
class Answer:
    """What the server sends back for a scoring request (/score or V2 infer): status, body, rows scored,
    and the media type and other headers of the response."""

    status: int
    body: bytes
    rows: int = 0
    media_type: str = "application/json"
    headers: dict[str, str] | None = None


def response(answered: Answer) -> Response:
    """`answered` as a FastAPI route returns it."""
    return Response(content=answered.body, status_code=answered.status, media_type=answered.media_type,
                    headers=answered.headers)


class Refusal(Exception):
    """A request answered without a result: `status`, `{"error": message, "type": kind}` and `headers`;
    `request_id` (when set) is in the body too, and the log line of the refusal carries it."""

    status = 400
    kind = "InvalidInput"
    headers: dict[str, str] | None = None
    shared = False  # answered alike on every route, V2's too

    def __init__(self, message: str, status: int | None = None, kind: str | None = None,
                 request_id: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status is not None:
            self.status = status
        if kind is not None:
            self.kind = kind
        self.request_id = request_id


class Unauthorized(Refusal):
    """401: no key, or not one of the deployment's keys."""

    status, kind, shared = 401, "Unauthorized", True
    headers = {"WWW-Authenticate": "Bearer", **_CLOSE}


class UnsupportedMediaType(Refusal):
    """415: a content type (or encoding) the route does not take."""

    status, kind = 415, "UnsupportedMediaType"


class BodyTooLarge(Refusal):
    """413: the body passed the deployment's byte limit."""

    status, kind, headers = 413, "BodyTooLarge", _CLOSE


class BodyTooCostly(Refusal):
    """413: the body (or its parse) can never fit the worker's memory budget."""

    status, kind, headers = 413, "BodyTooCostly", _CLOSE


class Busy(Refusal):
    """503: the worker's memory budget for bodies stayed taken; retry after BUSY_RETRY_SECONDS."""

    status, kind, headers = 503, "Busy", {**_CLOSE, "Retry-After": str(BUSY_RETRY_SECONDS)}


class BodyTimeout(Refusal):
    """408: the body did not arrive in time, or trickled."""

    status, kind, headers = 408, "RequestTimeout", _CLOSE


class RunTimeout(Refusal):
    """504: not answered within the deployment's run() time limit (with a request id)."""

    status, kind, shared = 504, "RunTimeout", True


class WorkerReplaced(Refusal):
    """503: not run, because the worker that took the request is being replaced."""

    status, kind, shared = 503, "WorkerReplaced", True
    headers = {"Retry-After": str(REPLACED_RETRY_SECONDS), **_CLOSE}


class ClientGone(Exception):
    """The client left before its answer (its body had not arrived, or its request had not run): nothing
    is sent."""


def answer(refusal: Refusal, v2: bool = False) -> Answer:
    """The answer to `refusal`: in the V2 protocol's shape on its routes (`v2`), unless `shared`."""
    if v2 and not refusal.shared:
        return Answer(refusal.status, orjson.dumps({"error": refusal.message}), headers=refusal.headers)
    payload = {"error": refusal.message, "type": refusal.kind}
    if refusal.request_id is not None:
        payload["request_id"] = refusal.request_id
    return Answer(refusal.status, orjson.dumps(payload), headers=refusal.headers)


def script_refusal(error: Exception) -> Refusal | None:
    """A refusal for an exception of the script that carries an `http_status` in 400..499 (the built-in
    script's InvalidInput does): the client's mistake, with the exception's message and class name.
    None for any other (the server answers it 500)."""
    status = getattr(error, "http_status", None)
    if not (isinstance(status, int) and 400 <= status < 500):
        return None
    return Refusal(str(error) or type(error).__name__, status, type(error).__name__)


def script_fault(error: BaseException) -> Answer:
    """A 500 for anything raised (or exited) inside the user's script: the client gets the kind and a
    request id, the deployment's log gets the traceback under that id."""
    request_id = secrets.token_hex(8)
    kind = type(error).__name__
    log.error("request %s: the scoring script raised %s:\n%s", request_id, kind, traceback.format_exc().rstrip())
    return Answer(500, orjson.dumps({"error": SCRIPT_FAULT.format(kind=kind, request_id=request_id), "type": kind,
                                     "request_id": request_id}))


def server_fault(error: Exception, what: str) -> bytes:
    """The JSON body of a 500 for a fault of the server's own while answering `what`, logged with its id."""
    fault_id = secrets.token_hex(8)
    log.exception("request %s: %s failed", fault_id, what)
    return orjson.dumps({"error": SERVER_FAULT.format(request_id=fault_id), "type": type(error).__name__,
                         "request_id": fault_id})
