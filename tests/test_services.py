"""The use-case layer's own logic (backend/services/): which test sets fit, what an endpoint takes (asked
once, a failed look not kept), the images behind a cell of the difference matrix."""

import io
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest

from backend.client import ScoringClient
from backend.config import Settings
from backend.context import open_modeldeck
from backend.errors import DatasetExistsError, DatasetMismatchError
from backend.inspection.compare import compare
from backend.inspection.evaluation import evaluate
from backend.registry import Model, Signature
from backend.services.testsets import add_testset, choose_testset, fitting_testsets, load_testset

DIGITS = tuple(str(i) for i in range(10))


def model(name, n_features, classes=DIGITS, value_range=(0.0, 1.0)):
    return Model(name=name, version=1, framework="scikit-learn", files=(),
                 signature=Signature(n_features=n_features, class_labels=classes, value_range=value_range))


@pytest.fixture
def deck(tmp_path):
    return open_modeldeck(Settings(home=tmp_path / "home", runtime="local"))


def test_the_sets_that_fit_two_models_are_those_that_fit_each_and_the_others_say_why(deck):
    mnist_like, small = model("a", 784), model("b", 64)
    assert [i.name for i in fitting_testsets(deck, mnist_like).fitting] == ["mnist", "fashion-mnist"][
        :len(fitting_testsets(deck, mnist_like).fitting)]
    assert [i.name for i in fitting_testsets(deck, small).fitting] == ["digits"]
    both = fitting_testsets(deck, mnist_like, small)
    assert both.fitting == ()
    assert {info.name for info, _ in both.hidden} >= {"mnist", "digits"}
    with pytest.raises(DatasetMismatchError, match="no test set fits a:1 and b:1"):
        choose_testset(deck, mnist_like, small)
    assert choose_testset(deck, small).name == "digits"
    assert choose_testset(deck, None).name == "mnist"  # a model not in this registry: MNIST, as the tutorial
    assert choose_testset(deck, mnist_like, None, requested="mnist").name == "mnist"
    with pytest.raises(DatasetMismatchError):
        choose_testset(deck, mnist_like, small, requested="mnist")  # checked against every model


class InfoServer:
    """A real HTTP server on 127.0.0.1 whose /info says what it is told to, counting the looks."""

    def __init__(self):
        self.answer: tuple[int, dict] = (200, {"content_types": ["application/json", "application/x-npy"],
                                               "npy_dtypes": ["float32", "uint8"]})
        self.looks = 0
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 - the http.server name
                owner.looks += 1
                status, body = owner.answer
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.uri = f"http://127.0.0.1:{self.server.server_address[1]}/score"


def test_what_an_endpoint_takes_is_asked_once_per_deployment_and_a_failed_look_is_asked_again():
    info = InfoServer()
    client = ScoringClient()
    try:
        info.answer = (503, {})  # still starting: JSON this time, and asked again next time
        assert client.npy_dtypes(info.uri, instance="uid-1") == ()
        info.answer = (200, {"content_types": ["application/json", "application/x-npy"], "npy_dtypes": ["float32"]})
        assert client.npy_dtypes(info.uri, instance="uid-1") == ("float32",)
        assert client.npy_dtypes(info.uri, instance="uid-1") == ("float32",)
        assert info.looks == 2
        info.answer = (200, {"content_types": ["application/json"]})  # another deployment on the same port
        assert client.npy_dtypes(info.uri, instance="uid-2") == ()
        assert info.looks == 3
    finally:
        info.server.shutdown()
        info.server.server_close()
    assert client.npy_dtypes(info.uri, instance="uid-3") == ()  # nothing answers: JSON, not kept


def test_a_cell_of_the_difference_matrix_holds_the_images_either_took_for_that_label():
    y = np.array([0, 0, 1, 1, 2, 2])
    a = evaluate(y, np.array([0, 1, 1, 1, 2, 1]), ("0", "1", "2"))
    b = evaluate(y, np.array([1, 0, 1, 0, 1, 2]), ("0", "1", "2"))
    comparison = compare(a, b, dataset="t", a_name="a", a_model="m:1", b_name="b", b_model="m:2")
    assert list(comparison.taken_for(0, 1)) == [0, 1]  # image 0 by B, image 1 by A
    assert list(comparison.taken_for(2, 1)) == [4, 5]
    assert list(comparison.taken_for(1, 2)) == []


def test_a_set_added_from_an_upload_is_refused_again_unless_replaced_then_replaced(deck):
    def upload(n):
        buffer = io.BytesIO()
        np.savez(buffer, X=np.zeros((n, 28, 28), np.uint8), y=np.arange(n) % 10)
        return {"sets.npz": buffer.getvalue()}

    assert add_testset(deck, "mine", upload(3)).name == "mine"
    with pytest.raises(DatasetExistsError):
        add_testset(deck, "mine", upload(5))
    assert load_testset(deck, "mine").X.shape[0] == 3
    add_testset(deck, "mine", upload(5), replace=True)
    assert load_testset(deck, "mine").X.shape[0] == 5
