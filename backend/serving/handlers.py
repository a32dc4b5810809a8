"""Request handling as plain functions: body in, (status, JSON-able payload) out; and the `Answer` every
scoring request (/score and V2 infer) is sent back as.

The web framework only decodes requests and wraps these results.
"""

from __future__ import annotations

import io
import logging
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

log = logging.getLogger("modeldeck.serving")

# curl -d sends form-urlencoded by default; its body is still the JSON text, so take it as JSON.
JSON_TYPES = ("application/json", "text/plain", "application/x-www-form-urlencoded", "")
NPY_TYPE = "application/x-npy"

NOT_UTF8 = "the request body is not UTF-8 text; send JSON like {\"data\": [[...], ...]}"
NO_ARRAY_SUPPORT = ("this scoring script has no run_array(); send JSON (application/json) instead "
                    "of " + NPY_TYPE)
BAD_NPY = "the request body is not a valid .npy array: {}"
NPY_NOT_NUMBERS = ("an .npy body must hold real numbers (float32, float64, integers, uint8 pixels), got dtype {}: "
                   "convert it with numpy's astype before numpy.save")
UNSUPPORTED_TYPE = "content type {!r} is not supported: use application/json or " + NPY_TYPE
EMPTY_BODY = "the request body is empty; send JSON like {\"data\": [[...], ...]}"


@dataclass(frozen=True)
class Answer:
    """What the server sends back for a scoring request (/score or V2 infer): status, body, rows scored,
    and the media type and other headers of the response."""

    status: int
    body: bytes
    rows: int = 0
    media_type: str = "application/json"
    headers: dict[str, str] | None = None


@dataclass(frozen=True)
class Result:
    status: int
    payload: Any


def _error(status: int, message: str, kind: str = "InvalidInput") -> Result:
    return Result(status, {"error": message, "type": kind})


def _call(fn, arg: Any) -> Result:
    """Runs the script's function. An exception that carries an `http_status` in 400..499 (the
    built-in script's InvalidInput does) is the client's mistake: that status and its message.
    Anything else propagates: the server answers 500 and logs the traceback."""
    try:
        return Result(200, fn(arg))
    except Exception as e:
        status = getattr(e, "http_status", None)
        if not (isinstance(status, int) and 400 <= status < 500):
            raise
        log.info("rejected input: %s", e)
        return _error(status, str(e) or type(e).__name__, type(e).__name__)


def handle_score(script: ModuleType, body: bytes, content_type: str, proba: bool = False) -> Result:
    """Scores one request body with the scoring script.

    JSON bodies go to `run(raw_data: str)` unchanged, as the tutorial's contract says (as bytes to a
    script that sets `accepts_bytes = True`); an `application/x-npy` body goes to `run_array(ndarray)`
    where the script has one (`run_array(ndarray, proba=True)` when `proba` is asked and the script
    sets `supports_proba = True`; otherwise the question is ignored and labels come back).
    """
    media_type = content_type.split(";")[0].strip().lower()
    if not body:
        return _error(400, EMPTY_BODY)
    if media_type == NPY_TYPE:
        run_array = getattr(script, "run_array", None)
        if not callable(run_array):
            return _error(415, NO_ARRAY_SUPPORT, "UnsupportedMediaType")
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except Exception as e:  # np.load raises several kinds for garbage
            return _error(400, BAD_NPY.format(e))
        if array.dtype.kind not in "biuf":  # complex, text, dates, records: no model takes them
            return _error(400, NPY_NOT_NUMBERS.format(array.dtype))
        if proba and getattr(script, "supports_proba", False):
            return _call(lambda X: run_array(X, proba=True), array)
        return _call(run_array, array)
    if media_type in JSON_TYPES or media_type.endswith("+json"):
        if getattr(script, "accepts_bytes", False):  # the script parses bytes itself: skip a decode + copy
            return _call(script.run, body)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            return _error(400, NOT_UTF8)
        return _call(script.run, text)
    return _error(415, UNSUPPORTED_TYPE.format(media_type), "UnsupportedMediaType")
