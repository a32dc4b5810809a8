"""The Open Inference Protocol (V2) beside /score: v2.py's plain functions, the app through FastAPI's test
client, and the real `tritonclient.http` client against a real local deployment."""

import json
import struct
import types

import joblib
import numpy as np
import pytest
import tritonclient.http as triton
from fastapi.testclient import TestClient
from tritonclient.utils import InferenceServerException

from backend.data.builtin import load_mnist_test
from backend.deployments import DEFAULT_SCRIPT
from backend.runtimes import DeployConfig
from backend.serving import v2
from backend.serving.auth import KeyFile
from backend.serving.metrics import V2_ENDPOINTS, endpoint_label
from backend.serving.routes import create_app
from backend.serving.script import ScoringScript, load_script

from .conftest import FIXTURES

MNIST = v2.ServedModel(name="sklearn_mnist", version="1", aliases=("mnist-dep",), n_features=784,
                       classes=tuple(range(10)), proba=True)
HEADER = "Inference-Header-Content-Length"


def tensor_request(X, datatype="FP32", binary=True, outputs=None, name="input-0"):
    """(body, headers) of an inference request as tritonclient.http encodes it."""
    tensor = triton.InferInput(name, list(X.shape), datatype)
    tensor.set_data_from_numpy(X, binary_data=binary)
    body, json_size = triton.InferenceServerClient.generate_request_body([tensor], outputs=outputs)
    return body, ({HEADER: str(json_size)} if json_size is not None else {})


def parse(answer_body: bytes, headers) -> triton.InferResult:
    length = headers.get(HEADER) if hasattr(headers, "get") else None
    return triton.InferenceServerClient.parse_response_body(answer_body, header_length=int(length) if length else None)


def json_request(**tensor) -> bytes:
    return json.dumps({"inputs": [{"name": "input-0", "datatype": "FP32", **tensor}]}).encode()


@pytest.fixture(scope="module")
def model(sample_model_dir):
    return joblib.load(sample_model_dir / "sklearn_mnist_model.pkl")


@pytest.fixture()
def script(model_env):
    loaded = load_script(DEFAULT_SCRIPT)
    loaded.init()
    return ScoringScript.of(loaded)


@pytest.fixture()
def client(script):
    return TestClient(create_app(script, {"model": "sklearn_mnist:1", "deployment": "mnist-dep"}))


# ---- v2.py: names, metadata ----

def test_the_model_is_named_after_the_registered_model_and_the_deployment_is_an_alias(script):
    served = v2.served_model({"model": "sklearn_mnist:1", "deployment": "mnist-dep"}, script)
    assert (served.name, served.version, served.aliases) == ("sklearn_mnist", "1", ("mnist-dep",))
    v2.resolve(served, "sklearn_mnist", "1")
    v2.resolve(served, "mnist-dep")
    with pytest.raises(v2.ModelNotFound, match="'other' is not served here: this server serves 'sklearn_mnist' or "
                                               "'mnist-dep'") as refused:
        v2.resolve(served, "other")
    assert refused.value.status == 404
    with pytest.raises(v2.ModelNotFound, match="has no version '2' here: this server serves version '1'"):
        v2.resolve(served, "sklearn_mnist", "2")
    assert v2.served_model({"deployment": "only-dep"}, script).name == "only-dep"


def test_model_metadata_names_the_input_and_both_outputs_with_their_shapes():
    assert v2.model_metadata(MNIST) == {
        "name": "sklearn_mnist", "versions": ["1"], "platform": "scikit-learn",
        "inputs": [{"name": "input-0", "datatype": "FP32", "shape": [-1, 784]}],
        "outputs": [{"name": "predict", "datatype": "INT64", "shape": [-1], "parameters": {"classes": list(range(10))}},
                    {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 10],
                     "parameters": {"classes": list(range(10))}}]}
    named = v2.ServedModel("sklearn_fashion", "1", (), 784, ("T-shirt/top", "Ankle boot"), proba=False)
    assert v2.model_metadata(named)["outputs"] == [{"name": "predict", "datatype": "BYTES", "shape": [-1],
                                                    "parameters": {"classes": ["T-shirt/top", "Ankle boot"]}}]
    unknown = v2.ServedModel("tutorial", "1", (), None, None, proba=False)
    assert v2.model_metadata(unknown)["outputs"] == [{"name": "predict", "datatype": "INT64", "shape": [-1]}]
    assert v2.server_metadata() == {"name": "modeldeck", "version": "1", "extensions": ["binary_tensor_data"]}


# ---- v2.py: decoding ----

@pytest.mark.parametrize("datatype, dtype", [("FP32", np.float32), ("FP64", np.float64), ("UINT8", np.uint8)])
@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_tensors_decode_to_the_rows_sent_in_json_and_binary(datatype, dtype, binary):
    X = (np.random.default_rng(3).random((3, 784)) * 255).astype(dtype)
    body, headers = tensor_request(X, datatype, binary)
    request = v2.decode_request(body, headers.get(HEADER), MNIST)
    assert request.rows.dtype == dtype and request.rows.shape == (3, 784)
    assert np.array_equal(request.rows, X)
    assert request.outputs == (("predict", True), ("predict_proba", True))  # tritonclient asks binary for all


def test_one_row_and_image_shaped_batches_become_rows_and_nested_data_is_taken_row_major():
    X = np.arange(2 * 784, dtype=np.float32).reshape(2, 28, 28) / 2000
    body, headers = tensor_request(X)
    assert v2.decode_request(body, headers[HEADER], MNIST).rows.shape == (2, 784)
    one = v2.decode_request(json_request(shape=[784], data=X[0].ravel().tolist()), None, MNIST)
    assert one.rows.shape == (1, 784)
    nested = v2.decode_request(json_request(shape=[2, 784], data=X.reshape(2, 784).tolist()), None, MNIST)
    assert np.array_equal(nested.rows, X.reshape(2, 784))


def binary_body(size_said: int, size_sent: int, shape=(1, 784), header_length: bool = True):
    head = json.dumps({"inputs": [{"name": "x", "datatype": "FP32", "shape": list(shape),
                                   "parameters": {"binary_data_size": size_said}}]}).encode()
    return head + b"\0" * size_sent, (str(len(head)) if header_length else None)


@pytest.mark.parametrize("body, header, message", [
    (json_request(datatype="INT64", shape=[1, 784], data=[0] * 784), None,
     "has datatype 'INT64': this model takes FP32, FP64 or UINT8"),
    (json_request(shape=[1, 785], data=[0] * 785), None, "this model takes [-1, 784]"),
    (json_request(shape=[2, 28, 27], data=[0] * 1512), None, "this model takes [-1, 784]"),
    (json_request(shape=[2, 784], data=[0.5] * 784), None, "shape [2, 784], which holds 1568 values, but its data has 784"),
    (json_request(shape=[0, 784], data=[]), None, "it holds no rows"),
    (json_request(shape=[1, -784], data=[0] * 784), None, "a shape is a list of whole numbers >= 0"),
    (json_request(shape=[1, 784], data=[True] * 784), None, "must be numbers, got true/false"),
    (json_request(shape=[1, 784], data=["0.5"] * 784), None, "must be numbers, got text"),
    (json_request(shape=[2, 784], data=[[0.5] * 784, [0.5]]), None, "must be a list of numbers"),
    (json_request(shape=[1, 784], data=[1e39] * 784), None, "must be finite FP32 numbers"),
    (json_request(datatype="UINT8", shape=[1, 784], data=[256] * 784), None, "whole numbers from 0 to 255"),
    (json_request(datatype="UINT8", shape=[1, 784], data=[0.5] * 784), None, "whole numbers from 0 to 255"),
    (json_request(shape=[1, 784]), None, 'has no "data" (nor a binary_data_size parameter)'),
    (b'{"inputs": []}', None, "the request has no inputs"),
    (b'{"id": "a"}', None, "the request has no inputs"),
    (b'{"inputs": [{"name": "a", "datatype": "FP32", "shape": [784], "data": []}, {"name": "b"}]}', None,
     "this model takes one input tensor (input-0), got 2: 'a', 'b'"),
    (b"[1, 2]", None, 'must be a JSON object with "inputs"'),
    (b"{nope", None, "is not valid JSON"),
    (json.dumps({"id": 7, "inputs": [{"name": "x", "datatype": "FP32", "shape": [784], "data": [0] * 784}]}).encode(),
     None, "\"id\" must be text, got 7"),
    (*binary_body(100, 100), "is 3136 bytes, but its binary_data_size says 100"),
    (*binary_body(3136, 3000), "the body has 3000 bytes after the JSON part, fewer than"),
    (*binary_body(3136, 3200), "the body has 64 bytes after the JSON part that no input's binary_data_size"),
    (*binary_body(3136, 3136, header_length=False), "goes on after its JSON part but the request has no "
                                                    "Inference-Header-Content-Length header"),
    (*binary_body(3136, 0, header_length=False), "has a binary_data_size but the request has no "
                                                 "Inference-Header-Content-Length header"),
    (binary_body(3136, 3136)[0], "99999", "the Inference-Header-Content-Length header must be the length"),
    (binary_body(3136, 3136)[0], "x", "the Inference-Header-Content-Length header must be the length"),
])
def test_bad_requests_are_refused_with_a_400_that_says_what_arrived(body, header, message):
    with pytest.raises(v2.V2Error) as refused:
        v2.decode_request(body, header, MNIST)
    assert refused.value.status == 400 and message in str(refused.value)


def outputs_request(outputs, parameters=None) -> bytes:
    request = {"inputs": [{"name": "x", "datatype": "FP32", "shape": [784], "data": [0] * 784}], "outputs": outputs}
    return json.dumps({**request, **({"parameters": parameters} if parameters else {})}).encode()


def test_only_the_named_outputs_are_answered_each_json_or_binary_as_asked():
    both_json = v2.decode_request(outputs_request([]), None, MNIST)
    assert both_json.outputs == (("predict", False), ("predict_proba", False))
    one = v2.decode_request(outputs_request([{"name": "predict_proba", "parameters": {"binary_data": True}}]), None, MNIST)
    assert one.outputs == (("predict_proba", True),)
    default = v2.decode_request(outputs_request([{"name": "predict"}], {"binary_data_output": True}), None, MNIST)
    assert default.outputs == (("predict", True),)
    with pytest.raises(v2.V2Error, match="unknown output 'label': this model answers predict, predict_proba"):
        v2.decode_request(outputs_request([{"name": "label"}]), None, MNIST)
    labels_only = v2.ServedModel("tutorial", "1", (), 784, None, proba=False)
    with pytest.raises(v2.V2Error, match="'predict_proba' is not offered: .* does not answer probabilities"):
        v2.decode_request(outputs_request([{"name": "predict_proba"}]), None, labels_only)
    with pytest.raises(v2.V2Error, match="binary_data of output 'predict' must be true or false, got \"yes\""):
        v2.decode_request(outputs_request([{"name": "predict", "parameters": {"binary_data": "yes"}}]), None, MNIST)


# ---- v2.py: scoring and encoding ----

def test_infer_answers_the_models_predictions_and_probabilities(script, model):
    X = load_mnist_test().X[:20]
    body, headers = tensor_request(X, outputs=[triton.InferRequestedOutput("predict", binary_data=False),
                                               triton.InferRequestedOutput("predict_proba")])
    answer = v2.infer(script, MNIST, body, headers[HEADER])
    assert answer.status == 200 and answer.rows == 20 and answer.media_type == v2.BINARY_TYPE
    result = parse(answer.body, answer.headers)
    assert result.get_output("predict")["data"] == model.predict(X).tolist()  # JSON, as asked
    assert result.as_numpy("predict").dtype == np.int64
    assert np.allclose(result.as_numpy("predict_proba"), model.predict_proba(X), rtol=0, atol=1e-12)


def test_the_scripts_own_400_keeps_its_status_and_message(script):
    answer = v2.infer(script, MNIST, json_request(shape=[1, 784], data=[0.0] * 784),
                      None)  # fine: then one the script refuses (a model without a width says nothing first)
    assert answer.status == 200
    wide = v2.ServedModel("m", "1", (), None, None, proba=True)
    refused = v2.infer(script, wide, json_request(shape=[1, 5], data=[0.0] * 5), None)
    assert refused.status == 400 and json.loads(refused.body) == {"error": "each row must have 784 values, got 5"}


def names_script():
    """A script whose model predicts class names (as the Fashion model's "Ankle boot")."""
    module = types.ModuleType("names")
    module.classes = ["T-shirt/top", "Ankle boot"]
    module.run = lambda raw: []
    module.run_array = lambda X, proba=False: ["Ankle boot" if row.mean() > 0.5 else "T-shirt/top" for row in X]
    return ScoringScript.of(module)


@pytest.mark.parametrize("binary", [True, False], ids=["binary", "json"])
def test_class_names_answer_as_bytes_in_json_and_binary(binary):
    served = v2.served_model({"model": "sklearn_fashion:1", "n_features": 4}, names_script())
    X = np.array([[1, 1, 1, 1], [0, 0, 0, 0], [0.9, 0.9, 0.9, 0.9]], dtype=np.float32)
    body, headers = tensor_request(X, outputs=[triton.InferRequestedOutput("predict", binary_data=binary)])
    answer = v2.infer(names_script(), served, body, headers[HEADER])
    result = parse(answer.body, answer.headers)
    assert result.get_output("predict")["datatype"] == "BYTES"
    assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("predict")] == [
        "Ankle boot", "T-shirt/top", "Ankle boot"]
    if binary:  # each element: a 4-byte little-endian length, then the UTF-8 text
        head = int(answer.headers[HEADER])
        assert answer.body[head:head + 14] == struct.pack("<I", 10) + b"Ankle boot"


def test_a_tutorial_script_with_only_run_gets_the_rows_as_its_json_and_its_answer_as_labels(model_env, model):
    loaded = load_script(FIXTURES / "tutorial_score.py")
    loaded.init()
    tutorial = ScoringScript.of(loaded)
    served = v2.served_model({"model": "sklearn_mnist:1"}, tutorial)
    assert served.outputs == ("predict",)
    raw = (load_mnist_test().X[:30] * 255).round().astype(np.uint8)
    body, headers = tensor_request(raw, "UINT8")
    result = parse(*(lambda a: (a.body, a.headers))(v2.infer(tutorial, served, body, headers[HEADER])))
    assert result.as_numpy("predict").tolist() == model.predict(raw.astype(np.float32) / 255).tolist()


def test_a_run_that_answers_no_labels_is_a_500_saying_what_it_returned():
    module = types.ModuleType("odd")
    module.run = lambda raw: "something went wrong"
    odd = ScoringScript.of(module)
    served = v2.served_model({"model": "odd:3", "n_features": 2}, odd)
    answer = v2.infer(odd, served, json_request(shape=[1, 2], data=[1, 2]), None)
    assert answer.status == 500
    assert json.loads(answer.body)["error"] == ('the scoring script\'s run() returned a str ("something went wrong"), '
                                                "not one label per row (1 rows)")


# ---- the app ----

def test_the_app_serves_health_metadata_and_infer_and_refuses_unknown_models(client, model):
    assert client.get("/v2/health/live").json() == {"live": True}
    assert client.get("/v2/health/ready").json() == {"ready": True}
    assert client.get("/v2").json()["extensions"] == ["binary_tensor_data"]
    assert client.get("/v2/models/sklearn_mnist").json()["inputs"][0]["shape"] == [-1, 784]
    assert client.get("/v2/models/mnist-dep/versions/1").json()["name"] == "sklearn_mnist"
    assert client.get("/v2/models/sklearn_mnist/ready").json() == {"name": "sklearn_mnist", "ready": True}
    missing = client.get("/v2/models/nope/ready")
    assert missing.status_code == 404 and "serves 'sklearn_mnist' or 'mnist-dep'" in missing.json()["error"]
    assert client.get("/v2/models/sklearn_mnist/versions/9").status_code == 404
    X = load_mnist_test().X[:50]
    for path in ("/v2/models/sklearn_mnist/infer", "/v2/models/mnist-dep/versions/1/infer"):
        body, headers = tensor_request(X)
        answer = client.post(path, content=body, headers=headers)
        assert answer.status_code == 200 and answer.headers["content-type"] == "application/octet-stream"
        result = parse(answer.content, answer.headers)
        assert result.get_response()["model_name"] == "sklearn_mnist"
        assert result.as_numpy("predict").tolist() == client.post("/score", json={"data": X.tolist()}).json()
    refused = client.post("/v2/models/sklearn_mnist/infer", content=json_request(shape=[1, 3], data=[1, 2, 3]))
    assert refused.status_code == 400 and refused.json() == {
        "error": "input 'input-0' has shape [1, 3]: this model takes [-1, 784] (rows of 784 values; [784] for one "
                 "row, or [N, ...] whose trailing dims multiply to 784)"}
    info = client.get("/info").json()
    assert info["protocols"] == ["azureml", "v2"] and info["v2_model"]["name"] == "sklearn_mnist"


def test_with_keys_metadata_and_infer_want_the_key_while_v2_health_stays_open(model_env, tmp_path, script):
    keys = tmp_path / "keys.json"
    keys.write_text(json.dumps({"primary": "p-key", "secondary": "s-key"}))
    client = TestClient(create_app(script, {"model": "sklearn_mnist:1"}, KeyFile(str(keys))))
    for path in ("/v2/health/live", "/v2/health/ready", "/v2"):
        assert client.get(path).status_code == 200
    body, headers = tensor_request(load_mnist_test().X[:2])
    for method, path in (("GET", "/v2/models/sklearn_mnist"), ("GET", "/v2/models/sklearn_mnist/ready"),
                         ("POST", "/v2/models/sklearn_mnist/infer"), ("GET", "/v2/models/nope")):
        refused = client.request(method, path, content=body, headers=headers)
        assert refused.status_code == 401 and "wants a key" in refused.json()["error"]
    answered = client.post("/v2/models/sklearn_mnist/infer", content=body,
                           headers={**headers, "Authorization": "Bearer s-key"})
    assert answered.status_code == 200 and parse(answered.content, answered.headers).as_numpy("predict").tolist() == [7, 2]


def test_a_v2_body_over_the_limit_is_a_413_and_a_compressed_one_a_415(script):
    small = TestClient(create_app(script, {"model": "sklearn_mnist:1", "max_body_bytes": 2**20}))
    body, headers = tensor_request(np.zeros((400, 784), dtype=np.float32))  # 1.25 MB
    refused = small.post("/v2/models/sklearn_mnist/infer", content=body, headers=headers)
    assert refused.status_code == 413 and "limit of 1 MiB" in refused.json()["error"]
    gzipped = small.post("/v2/models/sklearn_mnist/infer", content=b"x", headers={"Content-Encoding": "gzip"})
    assert gzipped.status_code == 415 and "send the body uncompressed" in gzipped.json()["error"]


def test_a_fault_in_the_script_during_v2_infer_is_a_500_with_a_request_id(model_env):
    module = types.ModuleType("faulty")
    module.run = lambda raw: 1 / 0
    client = TestClient(create_app(ScoringScript.of(module), {"model": "faulty:1", "n_features": 2}))
    answer = client.post("/v2/models/faulty/infer", content=json_request(shape=[1, 2], data=[1, 2]))
    assert answer.status_code == 500 and "ZeroDivisionError (request id" in answer.json()["error"]
    assert client.get("/v2/health/ready").status_code == 200


def test_v2_requests_are_counted_by_kind_so_the_label_set_stays_bounded(client):
    body, headers = tensor_request(load_mnist_test().X[:3])
    client.post("/v2/models/sklearn_mnist/infer", content=body, headers=headers)
    client.post("/v2/models/mnist-dep/versions/1/infer", content=body, headers=headers)
    client.get("/v2/models/sklearn_mnist/ready")
    client.get("/v2/models/whatever-name-1234")
    metrics = client.get("/metrics").text
    assert 'modeldeck_requests_total{endpoint="/v2/infer",status="200"} 2.0' in metrics
    assert 'endpoint="/v2/ready"' in metrics and 'endpoint="/v2/metadata",status="404"' in metrics
    assert "whatever" not in metrics and "mnist-dep" not in metrics
    assert "modeldeck_rows_scored_total 6.0" in metrics
    labels = [endpoint_label(p) for p in ("/v2/health/live", "/v2", "/v2/models/a/versions/1/ready",
                                          "/v2/models/a/infer", "/v2/models/a/x/y/z")]
    assert labels == ["/v2/health", "/v2/metadata", "/v2/ready", "/v2/infer", "other"]
    assert set(labels) - {"other"} == set(V2_ENDPOINTS)


def test_the_openapi_document_lists_the_v2_routes_with_summaries(client):
    paths = client.get("/openapi.json").json()["paths"]
    for path, method in (("/v2/health/live", "get"), ("/v2/health/ready", "get"), ("/v2", "get"),
                         ("/v2/models/{model_name}", "get"), ("/v2/models/{model_name}/versions/{model_version}", "get"),
                         ("/v2/models/{model_name}/ready", "get"), ("/v2/models/{model_name}/infer", "post"),
                         ("/v2/models/{model_name}/versions/{model_version}/infer", "post")):
        assert paths[path][method]["summary"].startswith("V2 ")
    infer = paths["/v2/models/{model_name}/infer"]["post"]
    assert infer["parameters"][0]["schema"]["enum"] == ["sklearn_mnist", "mnist-dep"]
    assert "Inference-Header-Content-Length" in infer["description"]


# ---- the real tritonclient against a real local deployment ----

def triton_inputs(X, datatype, binary):
    tensor = triton.InferInput("input-0", list(X.shape), datatype)
    tensor.set_data_from_numpy(X, binary_data=binary)
    return [tensor]


def test_tritonclient_talks_to_a_local_deployment_and_gets_the_registry_models_answers(local_deck, sample_model, model):
    deployment = local_deck.deployments.deploy_and_wait(sample_model, "v2t-open", timeout=180)
    try:
        url = (deployment.scoring_uri or "").removeprefix("http://").rsplit("/score", 1)[0]
        client = triton.InferenceServerClient(url)
        assert client.is_server_live() and client.is_server_ready()
        assert client.is_model_ready("sklearn_mnist") and client.is_model_ready("v2t-open", "1")
        assert not client.is_model_ready("sklearn_mnist", "2")
        metadata = client.get_model_metadata("sklearn_mnist")
        assert metadata["inputs"] == [{"name": "input-0", "datatype": "FP32", "shape": [-1, 784]}]
        assert client.get_server_metadata()["extensions"] == ["binary_tensor_data"]

        X = load_mnist_test().X[:500]
        for datatype, binary in (("FP32", True), ("FP32", False), ("FP64", True), ("FP64", False)):
            rows = X.astype(np.float32 if datatype == "FP32" else np.float64)
            result = client.infer("sklearn_mnist", triton_inputs(rows, datatype, binary))
            assert np.array_equal(result.as_numpy("predict"), model.predict(rows)), (datatype, binary)
            # the same numbers up to float32 rounding: the server's BLAS may sum in another order (another kernel where
            # the machine sets OPENBLAS_CORETYPE for this process only), and a float32 logit of 20 carries ~2e-6
            assert np.allclose(result.as_numpy("predict_proba"), model.predict_proba(rows), rtol=0, atol=1e-5)
        raw = (X * 255).round().astype(np.uint8)
        result = client.infer("v2t-open", triton_inputs(raw, "UINT8", True), model_version="1",
                              outputs=[triton.InferRequestedOutput("predict", binary_data=False)])
        assert np.array_equal(result.as_numpy("predict"), model.predict(raw.astype(np.float32) / 255))
        assert result.as_numpy("predict_proba") is None  # not asked, not answered

        with pytest.raises(InferenceServerException, match="this model takes \\[-1, 784\\]"):
            client.infer("sklearn_mnist", triton_inputs(X[:, :100].copy(), "FP32", True))
        with pytest.raises(InferenceServerException, match="'nope' is not served here"):
            client.infer("nope", triton_inputs(X[:1], "FP32", True))
        client.close()
    finally:
        local_deck.deployments.delete("v2t-open")


def test_tritonclient_sends_the_key_of_a_keyed_deployment_and_is_refused_without_it(local_deck, sample_model, model):
    deployment = local_deck.deployments.deploy_and_wait(sample_model, "v2t-keyed", DeployConfig(auth_enabled=True),
                                                        timeout=180)
    try:
        url = (deployment.scoring_uri or "").removeprefix("http://").rsplit("/score", 1)[0]
        key = local_deck.deployments.keys("v2t-keyed").primary
        client = triton.InferenceServerClient(url)
        assert client.is_server_live() and client.is_server_ready()  # probes need no key
        X = load_mnist_test().X[:100]
        with pytest.raises(InferenceServerException, match="wants a key") as refused:
            client.infer("sklearn_mnist", triton_inputs(X, "FP32", True))
        assert refused.value.status() == "401"
        assert not client.is_model_ready("sklearn_mnist")
        auth = {"Authorization": f"Bearer {key}"}
        assert client.is_model_ready("sklearn_mnist", headers=auth)
        assert client.get_model_metadata("sklearn_mnist", headers=auth)["name"] == "sklearn_mnist"
        result = client.infer("sklearn_mnist", triton_inputs(X, "FP32", True), headers=auth)
        assert np.array_equal(result.as_numpy("predict"), model.predict(X))
        client.close()
    finally:
        local_deck.deployments.delete("v2t-keyed")


def test_an_inference_answered_ends_a_crash_loop_as_a_score_does(client, monkeypatch):
    from backend.serving import crashloop

    monkeypatch.setattr(crashloop, "state", crashloop.CrashLoop("workers kept dying"))
    crashloop.forget_served()
    try:
        assert client.get("/ready").status_code == 503
        refused = client.post("/v2/models/sklearn_mnist/infer", content=json_request(shape=[1, 3], data=[1, 2, 3]))
        assert refused.status_code == 400 and not crashloop.served()  # a refusal proves nothing
        body, headers = tensor_request(load_mnist_test().X[:2])
        assert client.post("/v2/models/sklearn_mnist/infer", content=body, headers=headers).status_code == 200
        assert crashloop.served() and client.get("/ready").status_code == 200
    finally:
        crashloop.forget_served()
