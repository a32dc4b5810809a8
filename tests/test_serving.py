"""The scoring server's app, driven through FastAPI's test client with the real sample model."""

import io
import json

import numpy as np
import pytest
from fastapi.testclient import TestClient

from backend.datasets import load_mnist_test
from backend.deployments import DEFAULT_SCRIPT
from backend.serving.app import create_app
from backend.serving.script import ScriptError, load_script

from .conftest import FIXTURES


def make_client(script_path) -> TestClient:
    script = load_script(script_path)
    script.init()
    return TestClient(create_app(script, {"model": "sklearn_mnist:1"}))


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
    (b'{"data": [["a", "b"]]}', "must be a number"),
    (b'{"data": [1, 2, 3]}', "each a list of numbers"),
    (b"", "body is empty"),
])
def test_bad_input_gets_a_400_naming_the_problem_and_the_server_keeps_serving(client, body, message):
    response = client.post("/score", content=body, headers={"Content-Type": "application/json"})
    assert response.status_code == 400
    assert message in response.json()["error"]
    assert client.post("/score", json={"data": [[0.0] * 784]}).status_code == 200


def test_tutorial_script_bad_input_is_a_400_not_a_500(tutorial_client):
    missing = tutorial_client.post("/score", json={"rows": []})
    assert missing.status_code == 400 and missing.json() == {"error": "missing key 'data'", "type": "KeyError"}
    short = tutorial_client.post("/score", json={"data": [[1, 2]]})
    assert short.status_code == 400 and "784 features" in short.json()["error"]


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
    assert response.status_code == 500 and response.json()["error"] == "RuntimeError: disk on fire"
    assert client.get("/health").json() == {"status": "alive"}


def test_health_ready_info_and_openapi(client):
    assert client.get("/health").status_code == 200
    assert client.get("/ready").json() == {"ready": True}
    info = client.get("/info").json()
    assert info["model"] == "sklearn_mnist:1" and "application/x-npy" in info["content_types"]
    spec = client.get("/openapi.json").json()
    assert "application/x-npy" in spec["paths"]["/score"]["post"]["requestBody"]["content"]


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
    ([[0.5] * 784] * 199 + [["x"] * 784], "must be a number"),
])
def test_big_malformed_bodies_fall_back_to_the_strict_parser_and_its_messages(client, rows, message):
    response = client.post("/score", content=json.dumps({"data": rows}).encode(),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 400 and message in response.json()["error"]


def test_a_body_over_the_limit_is_a_413_naming_the_limit_and_the_npy_path(model_env):
    script = load_script(DEFAULT_SCRIPT)
    script.init()
    small = TestClient(create_app(script, {"max_body_bytes": 2**20}))  # 1 MiB
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
