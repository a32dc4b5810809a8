"""POST /score answered below FastAPI (ScoreEndpoint in front of the app): driven as uvicorn drives it, with
hand-made ASGI messages, so each test knows FastAPI's route was not the one that answered; and the access
log the app writes instead of uvicorn's."""

from __future__ import annotations

import asyncio
import io
import json

import orjson
import pytest

from backend.data.builtin import load_mnist_test
from backend.deployments import DEFAULT_SCRIPT
from backend.serving import bodies
from backend.serving.access import AccessLog
from backend.serving.auth import KeyFile
from backend.serving.fast_path import ScoringApp
from backend.serving.metrics import MULTIPROC_ENV, ServerMetrics
from backend.serving.routes import create_app
from backend.serving.script import ScoringScript, load_script
from backend.traffic.metrics import parse_metrics

from .conftest import FIXTURES

ROW = load_mnist_test().X[0].tolist()


def asgi_call(app, path: str = "/score", body: bytes | list[bytes] = b"", method: str = "POST",
              headers: dict[str, str] | None = None, query: bytes = b"", receive=None) -> tuple[int, dict, bytes]:
    """(status, headers, body) of one request sent straight to the ASGI app, as uvicorn would."""
    chunks = body if isinstance(body, list) else [body]
    messages = [{"type": "http.request", "body": chunk, "more_body": i < len(chunks) - 1}
                for i, chunk in enumerate(chunks)]
    sent: list[dict] = []

    async def default_receive():
        if messages:
            return messages.pop(0)
        await asyncio.Event().wait()  # as uvicorn: once the body is in, receive() waits for a disconnect
        return {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    scope = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
             "path": path, "raw_path": path.encode(), "root_path": "", "query_string": query,
             "headers": [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()],
             "client": ("127.0.0.1", 50000), "server": ("127.0.0.1", 8000)}
    asyncio.run(app(scope, receive or default_receive, send))
    if not sent:
        return 0, {}, b""
    start = sent[0]
    return start["status"], {k.decode(): v.decode() for k, v in start["headers"]}, \
        b"".join(m.get("body", b"") for m in sent[1:])


def json_headers(**extra: str) -> dict[str, str]:
    return {"Content-Type": "application/json", **extra}


@pytest.fixture()
def script(model_env):
    module = load_script(DEFAULT_SCRIPT)
    module.init()
    return ScoringScript.of(module)


@pytest.fixture()
def fast_app(script, monkeypatch):
    app = create_app(script, {"model": "sklearn_mnist:1", "max_body_bytes": 2**20})
    assert isinstance(app, ScoringApp) and app.score_endpoint is not None

    async def not_here(*args, **kwargs):
        raise AssertionError("FastAPI's route answered POST /score")

    route = next(r for r in app.routes if getattr(r, "path", None) == "/score")
    monkeypatch.setattr(route, "app", not_here)
    return app


def test_a_row_through_the_fast_path_gets_its_label_with_json_headers(fast_app):
    status, headers, body = asgi_call(fast_app, body=orjson.dumps({"data": [ROW]}), headers=json_headers())
    assert (status, json.loads(body)) == (200, [7])
    assert headers == {"content-type": "application/json", "content-length": str(len(body))}


def test_the_fast_path_refuses_a_declared_length_over_the_limit_before_reading(fast_app):
    async def never():
        raise AssertionError("the body was read")

    status, headers, body = asgi_call(fast_app, headers=json_headers(**{"Content-Length": str(2**21)}), receive=never)
    assert status == 413 and headers["connection"] == "close"
    assert json.loads(body)["type"] == "BodyTooLarge" and "2.0 MiB" in json.loads(body)["error"]


def test_the_fast_path_refuses_a_chunked_body_once_it_passes_the_limit(fast_app):
    chunks = [b'{"data": [', b"0," * 400_000, b"0," * 400_000, b"0]}"]
    status, _, body = asgi_call(fast_app, body=chunks, headers=json_headers())
    assert status == 413 and "more than 1 MiB" in json.loads(body)["error"]
    rows = orjson.dumps({"data": [ROW] * 3})
    status, _, body = asgi_call(fast_app, body=[rows[:100], rows[100:5000], rows[5000:]], headers=json_headers())
    assert (status, json.loads(body)) == (200, [7] * 3)


def test_the_fast_path_answers_408_when_the_body_does_not_come(fast_app, monkeypatch):
    monkeypatch.setattr(bodies, "BODY_TIMEOUT_SECONDS", 0.05)

    async def stalled():
        await asyncio.sleep(30)

    status, headers, body = asgi_call(fast_app, headers=json_headers(), receive=stalled)
    assert status == 408 and headers["connection"] == "close" and json.loads(body)["type"] == "RequestTimeout"


def test_the_fast_path_wants_the_key_and_says_which_is_missing(script, tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"primary": "p-key", "secondary": "s-key"}))
    app = create_app(script, {}, KeyFile(str(keys)))
    row = orjson.dumps({"data": [ROW]})
    status, headers, body = asgi_call(app, body=row, headers=json_headers())
    assert status == 401 and headers["www-authenticate"] == "Bearer" and headers["connection"] == "close"
    assert json.loads(body)["error"].startswith("this deployment wants a key")
    status, _, body = asgi_call(app, body=row, headers=json_headers(Authorization="Bearer old"))
    assert status == 401 and json.loads(body)["error"].startswith("the Authorization header does not carry")
    assert asgi_call(app, body=row, headers=json_headers(Authorization="Bearer s-key"))[0] == 200


def test_the_fast_path_refuses_an_unknown_content_type_and_a_bad_proba_query(fast_app):
    status, _, body = asgi_call(fast_app, body=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert status == 415 and "'application/xml' is not supported" in json.loads(body)["error"]
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray([ROW], dtype=np.float32))
    npy = {"Content-Type": "application/x-npy"}
    status, _, body = asgi_call(fast_app, body=buffer.getvalue(), headers=npy, query=b"proba=maybe")
    assert status == 400 and json.loads(body)["error"] == "the query parameter proba must be true or false"
    status, _, body = asgi_call(fast_app, body=buffer.getvalue(), headers=npy, query=b"proba=true&x=1")
    assert status == 200 and json.loads(body)["predictions"] == [7]


def test_a_fault_in_the_script_through_the_fast_path_is_a_500_with_a_request_id_in_the_log(model_env, caplog):
    tutorial = load_script(FIXTURES / "tutorial_score.py")
    tutorial.init()
    status, _, body = asgi_call(create_app(ScoringScript.of(tutorial), {}), body=b'{"rows": []}', headers=json_headers())
    answer = json.loads(body)
    assert status == 500 and answer["type"] == "KeyError" and len(answer["request_id"]) == 16
    logged = [r.getMessage() for r in caplog.records if answer["request_id"] in r.getMessage()]
    assert len(logged) == 1 and "KeyError: 'data'" in logged[0]


def test_requests_through_the_fast_path_are_counted_in_metrics(script, monkeypatch):
    monkeypatch.delenv(MULTIPROC_ENV, raising=False)  # this process's own numbers, not a server's folder
    metrics = ServerMetrics()
    app = create_app(script, {}, metrics=metrics)
    assert asgi_call(app, body=orjson.dumps({"data": [ROW] * 4}), headers=json_headers())[0] == 200
    assert asgi_call(app, body=orjson.dumps({"data": [[1.0, 2.0]]}), headers=json_headers())[0] == 400
    assert asgi_call(app, body=b"x", headers={"Content-Type": "text/csv"})[0] == 415
    assert asgi_call(app, body=[b'{"data"'], headers=json_headers(),
                     receive=_disconnecting())[0] == 0  # the client went away: no answer
    status, _, body = asgi_call(app, path="/metrics", method="GET")
    snapshot = parse_metrics(body.decode(), 0.0)
    assert status == 200 and snapshot.by_status() == {200: 1, 400: 1, 415: 1, 500: 1}
    assert snapshot.rows_scored == 4 and snapshot.in_flight == 0


def _disconnecting():
    async def receive():
        return {"type": "http.disconnect"}

    return receive


def test_the_docs_still_list_score_and_other_methods_and_paths_stay_fastapis(fast_app, script):
    app = create_app(script, {})
    spec = json.loads(asgi_call(app, path="/openapi.json", method="GET")[2])
    assert "post" in spec["paths"]["/score"] and "413" in spec["paths"]["/score"]["post"]["responses"]
    assert asgi_call(app, method="GET")[0] == 405  # FastAPI's answer: the fast path takes POST only
    assert asgi_call(app, path="/health", method="GET")[:1] == (200,)


def test_an_escaped_proba_key_still_asks_for_probabilities(script):
    body = ('{"data": [' + json.dumps(ROW) + '], "pr\\u006fba": true}').encode()
    assert script.run(body)["predictions"].tolist() == [7]
    assert script.run(body.decode())["classes"] == list(range(10))
    assert script.run(orjson.dumps({"data": [ROW]})).tolist() == [7]


def test_the_access_log_has_uvicorns_line_for_scores_and_other_requests_but_not_probes(script):
    stream = io.StringIO()
    app = create_app(script, {}, access_log=AccessLog(stream))
    asgi_call(app, body=orjson.dumps({"data": [ROW]}), headers=json_headers(), query=b"proba=false")
    asgi_call(app, body=b"x", headers={"Content-Type": "text/csv"})
    for path in ("/info", "/health", "/ready", "/metrics", "/nowhere"):
        asgi_call(app, path=path, method="GET")
    assert stream.getvalue().splitlines() == [
        'INFO:     127.0.0.1:50000 - "POST /score?proba=false HTTP/1.1" 200 OK',
        'INFO:     127.0.0.1:50000 - "POST /score HTTP/1.1" 415 Unsupported Media Type',
        'INFO:     127.0.0.1:50000 - "GET /info HTTP/1.1" 200 OK',
        'INFO:     127.0.0.1:50000 - "GET /nowhere HTTP/1.1" 404 Not Found']
