"""POST /score's body given to the scoring script, as a plain function: body in, `Answer` out. Runs on
the scoring thread; the web side only reads the request and sends the answer."""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from typing import Any

import numpy as np
import orjson

from .answers import Answer, Refusal, UnsupportedMediaType, answer, script_refusal
from .metrics import rows_in
from .script import ScoringScript

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


def score(script: ScoringScript, body: bytes, content_type: str, proba: bool) -> Answer:
    """The answer to one POST /score body: what the script returns, as JSON (200), or the refusal of the
    body or of the script (4xx). Any other exception of the script propagates (the server answers 500)."""
    try:
        payload = handle_score(script, body, content_type, proba)
    except Refusal as refusal:
        return answer(refusal)
    return Answer(200, orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), rows_in(payload))


def _call(fn: Callable[[Any], Any], arg: Any) -> Any:
    """What the script's `fn` returns; an exception of the script that is the client's mistake (see
    answers.script_refusal) is raised as that refusal."""
    try:
        return fn(arg)
    except Exception as e:
        refusal = script_refusal(e)
        if refusal is None:
            raise
        log.info("rejected input: %s", e)
        raise refusal from None


def handle_score(script: ScoringScript, body: bytes, content_type: str, proba: bool = False) -> Any:
    """What the scoring script answers for one request body.

    JSON bodies go to `run(raw_data: str)` unchanged, as the tutorial's contract says (as bytes to a
    script that `accepts_bytes`); an `application/x-npy` body goes to `run_array(ndarray)` where the
    script has one (`run_array(ndarray, proba=True)` when `proba` is asked and the script
    `supports_proba`; otherwise the question is ignored and labels come back).

    Raises:
        Refusal: a body the server or the script refuses (400, 415, or the script's 4xx).
    """
    media_type = content_type.split(";")[0].strip().lower()
    if not body:
        raise Refusal(EMPTY_BODY)
    if media_type == NPY_TYPE:
        run_array = script.run_array
        if run_array is None:
            raise UnsupportedMediaType(NO_ARRAY_SUPPORT)
        try:
            array = np.load(io.BytesIO(body), allow_pickle=False)
        except Exception as e:  # np.load raises several kinds for garbage
            raise Refusal(BAD_NPY.format(e)) from None
        if array.dtype.kind not in "biuf":  # complex, text, dates, records: no model takes them
            raise Refusal(NPY_NOT_NUMBERS.format(array.dtype))
        if proba and script.supports_proba:
            return _call(lambda X: run_array(X, proba=True), array)
        return _call(run_array, array)
    if media_type in JSON_TYPES or media_type.endswith("+json"):
        if script.accepts_bytes:  # the script parses bytes itself: skip a decode + copy
            return _call(script.run, body)
        try:
            text = body.decode("utf-8")
        except UnicodeDecodeError:
            raise Refusal(NOT_UTF8) from None
        return _call(script.run, text)
    raise UnsupportedMediaType(UNSUPPORTED_TYPE.format(media_type))
