"""The scoring server's one mapping from refusals to answers (serving/answers.py), the ScoringScript read
once after init() (serving/script.py), and what the split of app.py fixed on the way: a big body refused
for its ?proba gives its memory back, and a V2 client that leaves before its body arrives gets a 499."""

from __future__ import annotations

import asyncio
import json
import types

import orjson
import pytest

from backend.deployments import DEFAULT_SCRIPT
from backend.serving import answers, bodies
from backend.serving.auth import KeyFile
from backend.serving.routes import create_app
from backend.serving.script import ScoringScript, load_script
from backend.serving.v2 import ModelNotFound, V2Error

from .conftest import FIXTURES
from .test_score_fast_path import asgi_call


@pytest.fixture()
def script(model_env):
    module = load_script(DEFAULT_SCRIPT)
    module.init()
    return ScoringScript.of(module)


def test_the_built_in_script_offers_every_feature_and_the_tutorials_none(model_env):
    builtin = load_script(DEFAULT_SCRIPT)
    builtin.init()
    offered = ScoringScript.of(builtin)
    assert offered.run_array is not None and offered.answers_proba
    assert (offered.accepts_bytes, offered.supports_proba, offered.accepts_uint8) == (True, True, True)
    assert offered.json_value_bytes == 44 and offered.n_features == 784 and offered.classes == list(range(10))
    tutorial = load_script(FIXTURES / "tutorial_score.py")
    tutorial.init()
    plain = ScoringScript.of(tutorial)
    assert plain.run_array is None and not plain.answers_proba and plain.run == tutorial.run
    assert (plain.accepts_bytes, plain.supports_proba, plain.accepts_uint8, plain.json_value_bytes,
            plain.n_features, plain.classes) == (False, False, False, None, None, None)


def test_features_are_read_once_and_odd_values_count_as_absent():
    module = types.ModuleType("odd")
    module.run = lambda raw: [0]
    module.run_array = "not callable"
    module.json_value_bytes = -3
    module.supports_proba = True  # but no run_array to ask: probabilities cannot be asked for
    read = ScoringScript.of(module)
    assert read.run_array is None and read.json_value_bytes is None and read.supports_proba and not read.answers_proba
    module.accepts_bytes = True  # set after the read: the server does not see it
    assert read.accepts_bytes is False
    with pytest.raises(AttributeError):
        read.accepts_bytes = True  # type: ignore[misc]


@pytest.mark.parametrize("refusal, status, kind, headers", [
    (answers.Unauthorized("no key"), 401, "Unauthorized", {"WWW-Authenticate": "Bearer", "Connection": "close"}),
    (answers.BodyTooLarge("big"), 413, "BodyTooLarge", {"Connection": "close"}),
    (answers.BodyTooCostly("costly"), 413, "BodyTooCostly", {"Connection": "close"}),
    (answers.Busy("busy"), 503, "Busy", {"Connection": "close", "Retry-After": "2"}),
    (answers.BodyTimeout("slow"), 408, "RequestTimeout", {"Connection": "close"}),
    (answers.Refusal("bad"), 400, "InvalidInput", None),
    (answers.UnsupportedMediaType("xml"), 415, "UnsupportedMediaType", None),
    (answers.WorkerReplaced("again"), 503, "WorkerReplaced", {"Retry-After": "1", "Connection": "close"}),
])
def test_each_refusal_has_one_status_type_and_headers(refusal, status, kind, headers):
    answered = answers.answer(refusal)
    assert (answered.status, answered.headers, answered.media_type) == (status, headers, "application/json")
    assert answered.body == orjson.dumps({"error": refusal.message, "type": kind})


def test_v2_routes_answer_error_only_but_for_the_refusals_every_route_shares():
    assert answers.answer(answers.BodyTooLarge("big"), v2=True).body == b'{"error":"big"}'
    assert answers.answer(ModelNotFound("nope"), v2=True).status == 404
    assert answers.answer(V2Error("shape"), v2=True).body == b'{"error":"shape"}'
    assert json.loads(answers.answer(answers.Unauthorized("no key"), v2=True).body)["type"] == "Unauthorized"
    timed_out = answers.answer(answers.RunTimeout("late", request_id="abc"), v2=True)
    assert (timed_out.status, json.loads(timed_out.body)) == (504, {"error": "late", "type": "RunTimeout",
                                                                     "request_id": "abc"})


def test_a_scripts_own_4xx_is_a_refusal_and_anything_else_is_not():
    class Picky(ValueError):
        http_status = 422

    class Odd(ValueError):
        http_status = 503

    refusal = answers.script_refusal(Picky())
    assert refusal is not None and (refusal.status, refusal.message, refusal.kind) == (422, "Picky", "Picky")
    assert answers.script_refusal(Odd("x")) is None and answers.script_refusal(KeyError("k")) is None


def test_the_key_is_refused_alike_on_score_info_and_v2(script, tmp_path):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"primary": "p-key", "secondary": "s-key"}))
    app = create_app(script, {"model": "sklearn_mnist:1"}, KeyFile(str(keys)))
    row = orjson.dumps({"data": [[0.0] * 784]})
    seen = {asgi_call(app, path, body=body, method=method, headers={"Content-Type": "application/json"})[2]
            for path, method, body in (("/score", "POST", row), ("/info", "GET", b""), ("/metrics", "GET", b""),
                                       ("/v2/models/sklearn_mnist", "GET", b""),
                                       ("/v2/models/sklearn_mnist/infer", "POST", b"{}"))}
    assert len(seen) == 1 and json.loads(seen.pop())["type"] == "Unauthorized"


def test_a_big_body_refused_for_its_proba_query_gives_its_memory_back(script):
    app = create_app(script, {"model": "sklearn_mnist:1"})
    budget = app.score_endpoint.budget
    rows = orjson.dumps({"data": [[0.5] * 784] * 40})  # beyond SMALL_BODY_BYTES: it holds budget while read
    assert len(rows) > bodies.SMALL_BODY_BYTES
    status, _, body = asgi_call(app, body=rows, headers={"Content-Type": "application/json"}, query=b"proba=maybe")
    assert status == 400 and json.loads(body)["error"] == "the query parameter proba must be true or false"
    assert budget.in_use == 0


def test_a_v2_client_that_leaves_before_its_body_arrives_gets_a_499_and_the_budget_back(script):
    app = create_app(script, {"model": "sklearn_mnist:1"})
    budget = app.score_endpoint.budget
    messages = [{"type": "http.request", "body": b'{"inputs": [' + b" " * 100_000, "more_body": True},
                {"type": "http.disconnect"}]

    async def leaving():
        return messages.pop(0) if messages else await asyncio.sleep(30)

    status, _, _ = asgi_call(app, "/v2/models/sklearn_mnist/infer", headers={"Content-Type": "application/json"},
                             receive=leaving)
    assert status == 499 and budget.in_use == 0
