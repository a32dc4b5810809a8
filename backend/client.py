"""Scoring client: send a batch to a scoring URI, get predictions back, with clear errors."""

from __future__ import annotations

import io
import time
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import orjson
import requests

from .errors import (
    EndpointUnreachableError,
    MetricsUnavailableError,
    ModelDeckError,
    ScoringRequestError,
    ScoringServerError,
)

NPY_TYPE = "application/x-npy"
NPY_LOOKS_KEPT = 256  # endpoints whose .npy capability is remembered (the oldest look is dropped first)


@dataclass(frozen=True)
class Scores:
    """An endpoint's answer for a batch.

    Attributes:
        labels: the predicted labels, as the endpoint gave them.
        probabilities: rows x classes, in the order of `classes`; None when the scoring script
            answers labels only (the tutorial's score.py does).
        classes: the model's class labels, the columns of `probabilities`.
    """

    labels: list[Any]
    probabilities: np.ndarray | None = None
    classes: list[Any] | None = None


@dataclass(frozen=True)
class RawAnswer:
    """An endpoint's answer as it came: for the request console."""

    status: int
    reason: str
    latency_ms: float
    headers: dict[str, str]
    body: bytes


@runtime_checkable
class TableRows(Protocol):
    """Rows sent as a pandas split table, not as an array: a table with text columns (backend.data's NamedRows)."""

    def __len__(self) -> int: ...

    def __getitem__(self, rows: slice) -> TableRows: ...

    def split(self) -> dict[str, Any]:
        """`{"columns": [...], "data": [[...], ...]}`."""
        ...


Batch = np.ndarray | TableRows
"""Rows as the client sends them: an array (JSON lists or .npy), or a table with text columns."""


def json_body(rows: Batch, *, proba: bool = False) -> bytes:
    """`{"data": rows}` (with `"proba": true` when asked) as JSON: the tutorial's contract."""
    data = rows.split() if isinstance(rows, TableRows) else rows
    return orjson.dumps({"data": data, **({"proba": True} if proba else {})}, option=orjson.OPT_SERIALIZE_NUMPY)


class ScoringClient:
    """Talks to scoring endpoints; the HTTP session is passed in or made once."""

    def __init__(self, session: requests.Session | None = None, timeout: float = 120.0) -> None:
        self.session = session or requests.Session()
        self.timeout = timeout
        self._npy_dtypes: dict[tuple[str, str], tuple[str, ...]] = {}

    def _post(self, uri: str, body: bytes, content_type: str, key: str | None) -> Any:
        headers = {"Content-Type": content_type, **_auth(key)}
        try:
            response = self.session.post(uri, data=body, headers=headers, timeout=self.timeout)
        except requests.ConnectionError as e:
            raise EndpointUnreachableError(
                f"nothing answers at {uri}: is the deployment running? ({type(e).__name__})") from e
        except requests.Timeout as e:
            raise EndpointUnreachableError(f"{uri} did not answer within {self.timeout:.0f} s") from e
        if response.status_code >= 400:
            try:
                answer = response.json()
                message = str(answer.get("error", response.text))
            except (ValueError, AttributeError):
                answer, message = {}, response.text[:500]
            if response.status_code < 500:
                raise ScoringRequestError(response.status_code, message)
            request_id = answer.get("request_id") if isinstance(answer, dict) else None
            raise ScoringServerError(response.status_code, message,
                                     script_error=answer.get("type") if request_id and response.status_code == 500 else None,
                                     request_id=request_id)
        try:
            return orjson.loads(response.content)
        except orjson.JSONDecodeError as e:
            raise ScoringServerError(response.status_code, f"the answer is not JSON: {response.text[:200]!r}") from e

    def scores(self, scoring_uri: str, X: Batch, *, use_binary: bool = True, key: str | None = None,
               proba: bool = False) -> Scores:
        """The labels for the rows of X and, with `proba`, the class probabilities where the scoring
        script gives them (`"proba": true` in JSON, `?proba=true` with .npy). Named rows always go as JSON.

        A batch the endpoint refuses as too large for it (413: its body limit, or the memory its parse
        would take) is sent again in halves.

        Raises:
            EndpointUnreachableError, ScoringRequestError, ScoringServerError.
        """
        try:
            return self._scores(scoring_uri, X, use_binary=use_binary, key=key, proba=proba)
        except ScoringRequestError as e:
            if e.status != 413 or len(X) < 2:
                raise
        half = len(X) // 2
        first, second = (self.scores(scoring_uri, part, use_binary=use_binary, key=key, proba=proba)
                         for part in (X[:half], X[half:]))
        probabilities = (np.concatenate([first.probabilities, second.probabilities])
                         if first.probabilities is not None and second.probabilities is not None else None)
        return Scores(first.labels + second.labels, probabilities, first.classes)

    def _scores(self, scoring_uri: str, X: Batch, *, use_binary: bool, key: str | None,
                proba: bool) -> Scores:
        if use_binary and not isinstance(X, TableRows):
            buffer = io.BytesIO()
            np.save(buffer, np.ascontiguousarray(X), allow_pickle=False)
            answer = self._post(scoring_uri + ("?proba=true" if proba else ""), buffer.getvalue(), NPY_TYPE, key)
        else:
            answer = self._post(scoring_uri, json_body(X, proba=proba), "application/json", key)
        if isinstance(answer, dict) and "predictions" in answer and "probabilities" in answer:
            return Scores(list(answer["predictions"]), np.asarray(answer["probabilities"], dtype=np.float64),
                          list(answer.get("classes") or []) or None)
        return Scores(answer if isinstance(answer, list) else [answer])

    def send_raw(self, scoring_uri: str, body: bytes, content_type: str = "application/json", *,
                 key: str | None = None) -> RawAnswer:
        """POSTs `body` as it is and returns the answer as it is, refusals included.

        Raises:
            EndpointUnreachableError: nothing answered.
        """
        headers = {"Content-Type": content_type, **_auth(key)}
        started = time.perf_counter()
        try:
            response = self.session.post(scoring_uri, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as e:
            raise EndpointUnreachableError(f"nothing answers at {scoring_uri} ({type(e).__name__})") from e
        latency = (time.perf_counter() - started) * 1000
        return RawAnswer(response.status_code, response.reason or "", latency, dict(response.headers), response.content)

    def run(self, scoring_uri: str, data: Any, *, key: str | None = None) -> Any:
        """POSTs `{"data": data}` as JSON (the tutorial's contract) and returns the decoded answer;
        with `key`, as `Authorization: Bearer <key>`.

        Raises:
            EndpointUnreachableError, ScoringRequestError (4xx), ScoringServerError (5xx).
        """
        body = orjson.dumps({"data": data}, option=orjson.OPT_SERIALIZE_NUMPY)
        return self._post(scoring_uri, body, "application/json", key)

    def run_array(self, scoring_uri: str, X: np.ndarray, *, key: str | None = None) -> Any:
        """POSTs `X` as an .npy body (the fast path); the endpoint's script needs run_array()."""
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(X), allow_pickle=False)
        return self._post(scoring_uri, buffer.getvalue(), NPY_TYPE, key)

    def info(self, scoring_uri: str, *, key: str | None = None) -> dict[str, Any]:
        """GET /info next to the scoring URI ({} when the endpoint has none, or wants a key not given)."""
        base = scoring_uri.rsplit("/score", 1)[0]
        try:
            response = self.session.get(base + "/info", headers=_auth(key), timeout=5)
        except requests.RequestException as e:
            raise EndpointUnreachableError(f"nothing answers at {base}: {type(e).__name__}") from e
        return response.json() if response.status_code == 200 else {}

    def npy_dtypes(self, scoring_uri: str, *, key: str | None = None, instance: str) -> tuple[str, ...]:
        """What an .npy body to the endpoint may hold ("float32", and "uint8" where its script scales 8-bit
        pixels itself), from its /info; () when it takes no .npy body (then send JSON). Asked once per
        `instance` (a deployment's uid: a port can be reused) while the answers come; a failed look is
        not kept."""
        kept = self._npy_dtypes.get((scoring_uri, instance))
        if kept is not None:
            return kept
        try:
            info = self.info(scoring_uri, key=key)
        except (ModelDeckError, ValueError):  # nothing answers /info, or not JSON: JSON bodies this time
            return ()
        dtypes = tuple(info.get("npy_dtypes") or ["float32"]) if NPY_TYPE in info.get("content_types", []) else ()
        if info:  # an answer; {} is none (no /info, a refusal, a server still starting)
            if len(self._npy_dtypes) >= NPY_LOOKS_KEPT:  # a long-lived dashboard sees many deployments come and go
                del self._npy_dtypes[next(iter(self._npy_dtypes))]
            self._npy_dtypes[(scoring_uri, instance)] = dtypes
        return dtypes

    def metrics(self, scoring_uri: str, *, key: str | None = None, timeout: float = 5.0) -> str:
        """GET /metrics next to the scoring URI: the server's Prometheus text.

        Raises:
            EndpointUnreachableError: nothing answered. MetricsUnavailableError: an error status (404 from
                a server made before /metrics existed, 401 without the key).
        """
        base = scoring_uri.rsplit("/score", 1)[0]
        try:
            response = self.session.get(base + "/metrics", headers=_auth(key), timeout=timeout)
        except requests.RequestException as e:
            raise EndpointUnreachableError(f"nothing answers at {base}: is the deployment running? "
                                           f"({type(e).__name__})") from e
        if response.status_code == 404:
            raise MetricsUnavailableError(f"{base} has no /metrics: its server predates it; redeploy to see traffic")
        if response.status_code != 200:
            raise MetricsUnavailableError(f"{base}/metrics answered HTTP {response.status_code}: {response.text[:200]}")
        return response.text

    def predict(self, scoring_uri: str, X: np.ndarray, *, use_binary: bool = True,
                key: str | None = None) -> np.ndarray:
        """Predictions for the rows of X, over the binary path when allowed, else JSON."""
        answer = self.run_array(scoring_uri, X, key=key) if use_binary else self.run(scoring_uri, X, key=key)
        return np.asarray(answer)


def _auth(key: str | None) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"} if key else {}
