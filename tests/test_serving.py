"""The scoring server's app, driven through FastAPI's test client with the real sample model."""

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend.data.builtin import load_mnist_test
from backend.deployments import DEFAULT_SCRIPT
from backend.serving.routes import create_app
from backend.serving.script import ScoringScript, ScriptError, load_script

from .conftest import FIXTURES


def make_client(script_path) -> TestClient:
    script = load_script(script_path)
    script.init()
    return TestClient(create_app(ScoringScript.of(script), {"model": "sklearn_mnist:1"}))


@pytest.fixture()
def client(model_env):
    return make_client(DEFAULT_SCRIPT)


@pytest.fixture()
def tutorial_client(model_env):
    return make_client(FIXTURES / "tutorial_score.py")


def test_default_script_scores_mnist_rows(client):
    mnist = load_mnist_test()
    response = client.post("/score", json={"data": mnist.X[:20].tolist()})
    assert response.status_code == 200
    predictions = response.json()
    assert len(predictions) == 20 and all(isinstance(p, int) for p in predictions)
    assert np.mean(np.array(predictions) == mnist.y[:20]) >= 0.8


def test_tutorial_score_py_runs_unchanged_and_agrees_with_the_default_script(client, tutorial_client):
    rows = load_mnist_test().X[:50].tolist()
    ours = client.post("/score", json={"data": rows})
    theirs = tutorial_client.post("/score", json={"data": rows})
    assert theirs.status_code == 200
    assert theirs.json() == ours.json()


def test_npy_body_gives_the_same_predictions_as_json(client):
    X = load_mnist_test().X[:100]
    buffer = io.BytesIO()
    np.save(buffer, X)
    binary = client.post("/score", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    assert binary.status_code == 200
    assert binary.json() == client.post("/score", json={"data": X.tolist()}).json()


def test_uint8_npy_body_is_scaled_like_the_float_one(client):
    raw = (load_mnist_test().X[:30] * 255).round().astype(np.uint8)
    buffer = io.BytesIO()
    np.save(buffer, raw)
    as_uint8 = client.post("/score", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    as_float = client.post("/score", json={"data": (raw / 255.0).tolist()})
    assert as_uint8.json() == as_float.json()


@pytest.mark.parametrize("body, message", [
    (b"this is not json", "not valid JSON"),
    (b'{"rows": [[1, 2]]}', 'with a "data" key'),
    (b'{"data": []}', "non-empty list of rows"),
    (b'{"data": [[0.5, 0.5]]}', "each row must have 784 values, got 2"),
    (b'{"data": [[1, 2], [1, 2, 3]]}', "different lengths: [2, 3]"),
    (b'{"data": [["a", "b"]]}', 'must be a JSON number, got "a"'),
    (b'{"data": [[true, 1]]}', "must be a JSON number, got true"),
    (b'{"data": [["0.5", 1]]}', 'must be a JSON number, got "0.5"'),
    (b'{"data": [[null, 1]]}', "must be a JSON number, got null"),
    (b'{"data": "' + b"x" * 100_000 + b'"}', '"data" must be a non-empty list of rows'),
    (b'{"data": [1, 2, 3]}', "each a list of numbers"),
    (b"", "body is empty"),
])
def test_bad_input_gets_a_400_naming_the_problem_and_the_server_keeps_serving(client, body, message):
    response = client.post("/score", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert client.post("/score", json={"data": [[0.0] * 784]}).status_code == 200


def test_what_a_users_script_raises_is_a_500_with_a_request_id_and_the_traceback_only_in_the_log(
        tutorial_client, caplog):
    # The tutorial's run() does json.loads(raw)['data']: a KeyError there is the script's, not ModelDeck's check.
    missing = tutorial_client.post("/score", json={"rows": []})
    answer = missing.json()
    assert missing.status_code == 500 and answer["type"] == "KeyError" and len(answer["request_id"]) == 16
    assert answer["error"] == (f"the scoring script raised KeyError (request id {answer['request_id']}; "
                               "the traceback is in the deployment's logs)")
    assert "Traceback" not in missing.text and "'data'" not in missing.text
    logged = [r.getMessage() for r in caplog.records if answer["request_id"] in r.getMessage()]
    assert len(logged) == 1 and "Traceback" in logged[0] and "KeyError: 'data'" in logged[0]
    assert tutorial_client.get("/health").status_code == 200


def test_npy_without_run_array_is_415(tutorial_client):
    buffer = io.BytesIO()
    np.save(buffer, np.zeros((1, 784)))
    response = tutorial_client.post("/score", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    assert response.status_code == 415 and "no run_array()" in response.json()["error"]


def test_garbage_npy_is_a_400(client):
    response = client.post("/score", content=b"\x93NUMPY garbage", headers={"Content-Type": "application/x-npy"})
    assert response.status_code == 400 and "not a valid .npy array" in response.json()["error"]


def test_unknown_content_type_is_415(client):
    response = client.post("/score", content=b"<xml/>", headers={"Content-Type": "application/xml"})
    assert response.status_code == 415 and "'application/xml' is not supported" in response.json()["error"]


def test_a_fault_inside_run_is_a_500_and_the_server_stays_up(model_env, tmp_path):
    script = tmp_path / "flaky.py"
    script.write_text("def init():\n    pass\n\ndef run(raw):\n    raise RuntimeError('disk on fire')\n")
    client = make_client(script)
    response = client.post("/score", json={"data": [[1]]})
    assert response.status_code == 500 and response.json()["type"] == "RuntimeError"
    assert "disk on fire" not in response.text  # the message may hold secrets: it goes to the logs only
    assert client.get("/health").json() == {"status": "alive"}


@pytest.mark.parametrize("body", ["raise SystemExit(2)", "import sys; sys.exit()", "return {1, 2}"])
def test_exits_and_unserialisable_answers_of_run_are_json_500s(model_env, tmp_path, body):
    script = tmp_path / "exits.py"
    script.write_text(f"def init():\n    pass\n\ndef run(raw):\n    {body}\n")
    client = make_client(script)
    response = client.post("/score", json={"data": [[1]]})
    assert response.status_code == 500 and response.headers["content-type"] == "application/json"
    assert "the scoring script raised" in response.json()["error"]
    assert client.post("/score", json={"data": [[1]]}).status_code == 500  # and it keeps answering


def test_a_users_script_answers_400_by_raising_an_exception_with_http_status(model_env, tmp_path):
    script = tmp_path / "picky.py"
    script.write_text("def init():\n    pass\n\nclass Picky(ValueError):\n    http_status = 422\n\n"
                      "def run(raw):\n    raise Picky('rows must be sorted')\n")
    response = make_client(script).post("/score", json={"data": [[1]]})
    assert response.status_code == 422 and response.json() == {"error": "rows must be sorted", "type": "Picky"}


def test_health_ready_info_and_openapi(client):
    assert client.get("/health").status_code == 200
    assert client.get("/ready").json() == {"ready": True}
    info = client.get("/info").json()
    assert info["model"] == "sklearn_mnist:1" and "application/x-npy" in info["content_types"]
    spec = client.get("/openapi.json").json()
    score = spec["paths"]["/score"]["post"]
    assert "application/x-npy" in score["description"]
    example = score["requestBody"]["content"]["application/json"]["example"]
    assert client.post("/score", json=example).status_code == 200  # the documented example is a valid request


def test_a_script_without_run_is_refused(tmp_path):
    script = tmp_path / "norun.py"
    script.write_text("def init():\n    pass\n")
    with pytest.raises(ScriptError, match="has no run"):
        load_script(script)


def test_the_listening_socket_is_tcp_so_asyncio_disables_nagle():
    # With proto 0, asyncio skips TCP_NODELAY and kept-alive requests wait ~40 ms on delayed ACKs.
    import socket

    from backend.serving.workers import bind

    sock = bind("127.0.0.1", 0)
    try:
        assert sock.proto == socket.IPPROTO_TCP
    finally:
        sock.close()


def test_big_json_bodies_take_the_fast_parser_with_the_same_predictions(client):
    X = load_mnist_test().X[:500]
    body = json.dumps({"data": X.tolist()}).encode()
    assert len(body) > 100_000
    fast = client.post("/score", content=body, headers={"Content-Type": "application/json"})
    buffer = io.BytesIO()
    np.save(buffer, X)
    assert fast.status_code == 200
    assert fast.json() == client.post("/score", content=buffer.getvalue(),
                                      headers={"Content-Type": "application/x-npy"}).json()


@pytest.mark.parametrize("rows, message", [
    ([[0.5] * 784] * 200 + [[0.5] * 783], "different lengths: [783, 784]"),
    ([[0.5] * 784] * 199 + [["x"] * 784], "must be a JSON number"),
    ([[0.5] * 784] * 199 + [[True] * 784], "must be a JSON number, got true"),
])
def test_big_malformed_bodies_fall_back_to_the_strict_parser_and_its_messages(client, rows, message):
    response = client.post("/score", content=json.dumps({"data": rows}).encode(),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and message in response.json()["error"]


def test_a_body_over_the_limit_is_a_413_naming_the_limit_and_the_npy_path(model_env):
    script = load_script(DEFAULT_SCRIPT)
    script.init()
    small = TestClient(create_app(ScoringScript.of(script), {"max_body_bytes": 2**20}))  # 1 MiB
    rows = {"data": [[0.5] * 784] * 400}  # ~1.3 MB of JSON
    refused = small.post("/score", json=rows)
    assert refused.status_code == 413 and refused.json()["type"] == "BodyTooLarge"
    assert "larger than this deployment's limit of 1 MiB" in refused.json()["error"]
    assert "application/x-npy" in refused.json()["error"]
    streamed = small.post("/score", content=iter([b'{"data": [', b"0," * 600_000, b"0]}"]),
                          headers={"Content-Type": "application/json"})  # chunked: no Content-Length
    assert streamed.status_code == 413 and "more than 1 MiB" in streamed.json()["error"]
    assert small.post("/score", json={"data": [[0.5] * 784] * 10}).status_code == 200
    assert small.get("/health").status_code == 200


def keyed_client(model_env, tmp_path, keys: dict[str, str]) -> tuple[TestClient, object]:
    from backend.serving.auth import KeyFile

    path = tmp_path / "keys.json"
    path.write_text(json.dumps(keys))
    script = load_script(DEFAULT_SCRIPT)
    script.init()
    return TestClient(create_app(ScoringScript.of(script), {"n_features": 784}, KeyFile(str(path)))), path


def test_with_keys_score_and_info_want_a_bearer_key_and_probes_stay_open(model_env, tmp_path):
    client, _ = keyed_client(model_env, tmp_path, {"primary": "p-key", "secondary": "s-key"})
    row = {"data": [[0.0] * 784]}
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "p-key"}, {"Authorization": "Basic p-key"}):
        refused = client.post("/score", json=row, headers=headers)
        assert refused.status_code == 401 and refused.headers["www-authenticate"] == "Bearer"
        assert "Bearer <key>" in refused.json()["error"]
        assert client.get("/info", headers=headers).status_code == 401
    for key in ("p-key", "s-key"):
        assert client.post("/score", json=row, headers={"Authorization": f"Bearer {key}"}).status_code == 200
    assert client.get("/info", headers={"Authorization": "bearer p-key"}).json()["auth"] == "key"
    assert client.get("/health").status_code == 200 and client.get("/ready").status_code == 200
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["key"]["scheme"] == "bearer"
    assert "401" in spec["paths"]["/score"]["post"]["responses"]


def test_a_rotated_key_is_taken_at_once_and_a_missing_keys_file_lets_no_one_in(model_env, tmp_path):
    client, path = keyed_client(model_env, tmp_path, {"primary": "old", "secondary": "other"})
    row = {"data": [[0.0] * 784]}
    assert client.post("/score", json=row, headers={"Authorization": "Bearer old"}).status_code == 200
    path.with_name("new.json").write_text(json.dumps({"primary": "new", "secondary": "other"}))
    path.with_name("new.json").replace(path)
    assert client.post("/score", json=row, headers={"Authorization": "Bearer old"}).status_code == 401
    assert client.post("/score", json=row, headers={"Authorization": "Bearer new"}).status_code == 200
    path.unlink()
    assert client.post("/score", json=row, headers={"Authorization": "Bearer new"}).status_code == 401


def test_a_wrong_key_is_told_apart_from_a_missing_one(model_env, tmp_path):
    client, _ = keyed_client(model_env, tmp_path, {"primary": "p-key", "secondary": "s-key"})
    missing = client.post("/score", json={"data": [[0.0] * 784]}).json()["error"]
    wrong = client.post("/score", json={"data": [[0.0] * 784]}, headers={"Authorization": "Bearer old"}).json()["error"]
    assert missing.startswith("this deployment wants a key")
    assert wrong.startswith("the Authorization header does not carry one of this deployment's keys")


def test_probabilities_when_asked_in_json_and_on_the_npy_path(client):
    X = load_mnist_test().X[:5]
    labels = client.post("/score", json={"data": X.tolist()}).json()
    answer = client.post("/score", json={"data": X.tolist(), "proba": True}).json()
    assert answer["predictions"] == labels and answer["classes"] == list(range(10))
    probabilities = np.array(answer["probabilities"])
    assert probabilities.shape == (5, 10) and np.allclose(probabilities.sum(axis=1), 1.0)
    assert list(probabilities.argmax(axis=1)) == labels
    buffer = io.BytesIO()
    np.save(buffer, X)
    binary = client.post("/score?proba=true", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    assert np.allclose(binary.json()["probabilities"], probabilities)
    assert client.get("/info").json()["probabilities"] is True
    refused = client.post("/score", json={"data": X.tolist(), "proba": "yes"})
    assert refused.status_code == 400 and '"proba" must be true or false' in refused.json()["error"]


def test_a_labels_only_script_ignores_the_question_of_probabilities(tutorial_client):
    X = load_mnist_test().X[:3]
    assert tutorial_client.post("/score", json={"data": X.tolist(), "proba": True}).json() == \
        tutorial_client.post("/score", json={"data": X.tolist()}).json()
    assert tutorial_client.get("/info").json()["probabilities"] is False


def test_a_proba_query_that_is_not_a_boolean_is_refused(client):
    buffer = io.BytesIO()
    np.save(buffer, load_mnist_test().X[:1])
    refused = client.post("/score?proba=null", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    assert refused.status_code == 400 and refused.json()["error"] == "the query parameter proba must be true or false"
    plain = client.post("/score?proba=false", content=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
    assert plain.json() == [7]
