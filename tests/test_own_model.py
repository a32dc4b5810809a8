"""A user's own model that is not a 28x28 digit in [0, 1], end to end on the local runtime: scikit-learn's
8x8 digits (values 0-16) and a two-class model registered with class names."""

import io
import json
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import requests
from streamlit.testing.v1 import AppTest

from backend.config import Settings
from backend.context import open_modeldeck

from .test_dashboard import dashboard_on

APP = str(Path(__file__).resolve().parent.parent / "dashboard" / "app.py")


def modeldeck(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "backend", *args], env=env, capture_output=True, text=True,
                          timeout=300)


def ok(result: subprocess.CompletedProcess) -> str:
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.fixture(scope="module")
def digits8(tmp_path_factory) -> tuple[Path, Path, float, np.ndarray]:
    """(model.pkl, held-out test.npz, scikit-learn's score on those rows, the held-out labels) of a
    LogisticRegression trained on scikit-learn's 8x8 digits, values 0-16 as they come."""
    from sklearn.datasets import load_digits
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split

    folder = tmp_path_factory.mktemp("digits8")
    digits = load_digits()
    X_train, X_test, y_train, y_test = train_test_split(digits.data, digits.target, test_size=0.3, random_state=0,
                                                        stratify=digits.target)
    model = LogisticRegression(max_iter=5000).fit(X_train, y_train)
    (folder / "model.pkl").write_bytes(pickle.dumps(model))
    np.savez(folder / "test.npz", X=X_test, y=y_test)
    return folder / "model.pkl", folder / "test.npz", float(model.score(X_test, y_test)), y_test


@pytest.fixture()
def own_home(cli_env, monkeypatch):
    """cli_env's home for the dashboard too; every deployment left is deleted after."""
    yield from dashboard_on(Path(cli_env["MODELDECK_HOME"]), monkeypatch)


def test_an_8x8_model_on_values_0_to_16_scores_as_scikit_learn_says_in_the_cli_and_on_the_test_page(
        digits8, cli_env, own_home):
    model_path, test_npz, sklearn_score, y_test = digits8
    assert sklearn_score > 0.9
    ok(modeldeck(cli_env, "models", "register", "digits8", str(model_path), "--input-shape", "8x8",
                 "--value-range", "0-16", "--classes", "0-9"))
    added = json.loads(ok(modeldeck(cli_env, "datasets", "add", "digits8-test", str(test_npz), "--json")))
    assert added["value_range"] == [0, 16] and added["image_shape"] == [8, 8]  # read from the data, kept
    ok(modeldeck(cli_env, "deploy", "digits8", "--name", "digits8"))

    evaluated = json.loads(ok(modeldeck(cli_env, "evaluate", "digits8", "--dataset", "digits8-test", "--json")))
    assert evaluated["n"] == len(y_test) and evaluated["accuracy"] == sklearn_score
    refused = modeldeck(cli_env, "evaluate", "digits8", "--dataset", "mnist")
    assert refused.returncode == 1 and "its images are 28x28; the model takes 8x8" in refused.stderr
    digits01 = modeldeck(cli_env, "evaluate", "digits8", "--dataset", "digits")
    assert "its values are in [0, 1]; the model takes [0, 16]" in digits01.stderr

    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["deployment"] = "digits8"
    at.run()
    at.switch_page("views/test.py").run()
    assert not at.exception, at.exception
    assert [s for s in at.selectbox if s.label == "Test set"][0].options == ["digits8-test"]
    hidden = next(c.value for c in at.caption if c.value.startswith("Not offered")).replace("\\", "")
    assert "MNIST 10k (bundled): its images are 28x28; the model takes 8x8" in hidden
    assert "scikit-learn digits 8x8 (1,797): its values are in [0, 1]; the model takes [0, 16]" in hidden
    assert at.metric[0].label == "Accuracy" and at.metric[0].value == f"{sklearn_score:.2%}"  # kept by evaluate
    [score_all] = [b for b in at.button if b.label == f"Score the whole test set ({len(y_test)} images)"]
    score_all.click().run()
    assert not at.exception and not at.error
    assert at.metric[0].value == f"{sklearn_score:.2%}" == "96.11%"

    # perturbations sized for 8x8: a shift up to 2.25 pixels, not the 8 of a 28x28 digit
    at.selectbox(key="perturb_kind").set_value("shift").run()
    [shift] = [s for s in at.slider if s.label.startswith("Strength: pixels")]
    assert (shift.min, shift.max, shift.step) == (0.0, 2.25, 0.25)
    shift.set_value(2.25).run()
    assert not at.exception and not at.error and at.query_params["perturb"] in ("shift=2.25", ["shift=2.25"])
    at.selectbox(key="curve_kind").set_value("shift").run()
    assert any(b.label == "Robustness curve: shift at 7 strengths" for b in at.button)
    assert any("strengths 0, 0.25, 0.5, 0.75, 1.25, 1.5, 1.75" in c.value.replace("\\", "") for c in at.caption)

    # a scanned digit (dark on light, 160 px) is made into the set's form: 8x8, values 0-16, recognised
    from PIL import Image

    data = np.load(test_npz)
    digit = 1  # a 4 (how many such scans are recognised: test_preprocess)
    first = Image.fromarray((255 - data["X"][digit].reshape(8, 8) / 16 * 255).astype("uint8"))
    paper = Image.new("L", (240, 200), 255)
    paper.paste(first.resize((160, 160), Image.Resampling.BICUBIC), (50, 20))
    scan = io.BytesIO()
    paper.save(scan, "PNG")
    at.file_uploader(key="own_upload").set_value(("scan.png", scan.getvalue(), "image/png")).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    [prediction] = [m for m in at.metric if m.label == "Prediction"]
    assert prediction.value == str(y_test[digit]) == "4"
    assert any('caption: "What the model received (8x8)"' in str(i.proto) for i in at.get("image"))
    scan_file = Path(cli_env["MODELDECK_HOME"]).parent / "scan.png"  # the CLI makes it the same way
    scan_file.write_bytes(scan.getvalue())
    predicted = json.loads(ok(modeldeck(cli_env, "predict", "digits8", "--dataset", "digits8-test", "--image",
                                        str(scan_file), "--json")))
    assert predicted["prediction"] == "4"


def test_class_names_given_at_registration_survive_a_deploy_and_are_what_the_endpoint_answers(
        tmp_path, cli_env, own_home):
    from sklearn.datasets import load_breast_cancer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import train_test_split
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    cancer = load_breast_cancer(as_frame=True)  # 30 named features; classes 0 (malignant) and 1 (benign)
    X_train, X_frame, y_train, y_test = train_test_split(cancer.data, cancer.target, test_size=0.3, random_state=0)
    model = make_pipeline(StandardScaler(), LogisticRegression()).fit(X_train, y_train)  # on named columns
    assert model.classes_.tolist() == [0, 1] and len(model.feature_names_in_) == 30
    (tmp_path / "cancer.pkl").write_bytes(pickle.dumps(model))
    X_frame = X_frame.astype(np.float32)  # what a test set holds and the endpoint is sent, as rows
    X_test, y_test = X_frame.to_numpy(), y_test.to_numpy()
    # the test set as a spreadsheet would export it: a BOM, ';' and decimal commas, its columns in another order
    exported = X_frame[X_frame.columns[::-1]].assign(diagnosis=np.array(["malignant", "benign"])[y_test])
    (tmp_path / "cancer-test.csv").write_bytes(b"\xef\xbb\xbf" + exported.to_csv(sep=";", decimal=",", index=False).encode())

    ok(modeldeck(cli_env, "models", "register", "cancer", str(tmp_path / "cancer.pkl"), "--input-shape", "30",
                 "--classes", "malignant, benign"))
    added = ok(modeldeck(cli_env, "datasets", "add", "cancer-test", str(tmp_path / "cancer-test.csv"), "--label",
                         "diagnosis"))
    assert "a table of 30 columns, 2 classes (benign, malignant)" in added
    deployed = modeldeck(cli_env, "deploy", "cancer", "--name", "cancer")
    ok(deployed)

    deck = open_modeldeck(Settings(home=own_home, runtime="local"))
    signature = deck.registry.get("cancer", 1).signature
    assert signature.class_labels == ("malignant", "benign") and "confirmed by deployment cancer" in signature.source
    # the columns it was fitted on, as the server found them, are recorded and shown
    assert signature.feature_names == tuple(cancer.feature_names) and signature.n_features == 30
    assert "30 named features (mean radius, mean texture, mean perimeter, ...)" in signature.describe()
    assert "30 named features (mean radius" in ok(modeldeck(cli_env, "models", "list"))
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/models.py").run()
    assert not at.exception and list(at.dataframe[0].value["input"]) == ["30 named features → 2 classes"]
    uri = deck.deployments.get("cancer").scoring_uri
    answer = deck.client.scores(uri, X_test[:4], proba=True)
    expected = [("malignant", "benign")[k] for k in model.predict(X_frame.iloc[:4])]
    assert list(answer.labels) == expected and list(answer.classes or ()) == ["malignant", "benign"]
    info = deck.client.info(uri)
    assert info["classes"] == ["malignant", "benign"] and info["feature_names"] == list(cancer.feature_names)
    # rows as objects of its columns, in any key order, answer as the lists do; a row short of one says which
    records = [dict(reversed(list(row.items()))) for row in X_frame.iloc[:4].astype(float).to_dict(orient="records")]
    assert info["records"] and requests.post(uri, json={"data": records}, timeout=30).json() == expected
    del records[2]["worst area"]
    refused = requests.post(uri, json={"data": records}, timeout=30)
    assert refused.status_code == 400 and refused.json()["error"] == 'row 2 of "data" lacks "worst area"'
    row_schema = requests.get(uri.rsplit("/score", 1)[0] + "/openapi.json", timeout=30).json()["paths"]["/score"][
        "post"]["requestBody"]["content"]["application/json"]["schema"]["properties"]["data"]["oneOf"][0]["items"]
    assert row_schema["oneOf"][1]["required"] == list(cancer.feature_names)

    scored = json.loads(ok(modeldeck(cli_env, "score", "cancer", "--dataset", "cancer-test", "--random", "5",
                                     "--seed", "1", "--json")))
    assert {row["prediction_name"] for row in scored} <= {"malignant", "benign"}
    assert all(row["prediction_name"] == ("malignant", "benign")[int(model.predict(X_frame.iloc[[row["index"]]])[0])]
               for row in scored)
    evaluated = json.loads(ok(modeldeck(cli_env, "evaluate", "cancer", "--dataset", "cancer-test", "--json")))
    assert evaluated["labels"] == ["benign", "malignant"]  # the test set's classes, as its CSV names them (sorted)
    assert evaluated["accuracy"] == pytest.approx(model.score(X_frame, y_test), abs=1e-12)
    # rows without names are what the endpoint takes, by design: the server does not warn of it on every request
    assert "does not have valid feature names" not in deck.deployments.get_logs("cancer")
    # the Test page shows random rows as a table, the wrong ones marked, and scores the whole set
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("views/test.py").run()
    at.query_params["dataset"] = "cancer-test"
    at.run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    at.button(key="send_random").click().run()
    shown = at.dataframe[0].value
    assert not at.exception and list(shown.columns[:4]) == ["row", "prediction", "true label", "confidence"]
    assert list(shown.columns[4:]) == list(cancer.feature_names)  # in the model's order
    assert all(row["prediction"] == ("malignant", "benign")[int(model.predict(X_frame.iloc[[row["row"]]])[0])]
               for _, row in shown.iterrows())
    at.button(key="score_all").click().run()
    assert not at.exception and at.metric[0].value == f"{model.score(X_frame, y_test):.2%}"

    # deployed again: the names stay (the registry is not "confirmed" back to 0, 1)
    ok(modeldeck(cli_env, "deploy", "cancer", "--name", "cancer-again"))
    assert deck.registry.get("cancer", 1).signature.class_labels == ("malignant", "benign")


def test_when_no_test_set_fits_the_test_page_says_why_for_each_and_keeps_the_request_console(
        digits8, cli_env, own_home):
    model_path = digits8[0]
    ok(modeldeck(cli_env, "models", "register", "raw8", str(model_path), "--input-shape", "8x8",
                 "--value-range", "0-255", "--classes", "0-9"))
    ok(modeldeck(cli_env, "deploy", "raw8", "--name", "raw8"))

    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["deployment"] = "raw8"
    at.run()
    at.switch_page("views/test.py").run()
    assert not at.exception, at.exception
    [warning] = [w.value.replace("\\", "") for w in at.warning]
    assert warning.startswith("No test set fits raw8:1 (8x8 image (64 values) in [0, 255]")
    assert "- MNIST 10k (bundled): its images are 28x28; the model takes 8x8" in warning
    assert "- scikit-learn digits 8x8 (1,797): its values are in [0, 1]; the model takes [0, 255]" in warning
    assert [h.value for h in at.subheader] == ["Request console", "The raw request"]
    assert not [s for s in at.selectbox if s.label == "Test set"]  # the set-based sections are not there
    assert '"data": [[0.0, 0.0' in at.text_area[0].value and len(json.loads(at.text_area[0].value)["data"][0]) == 64
    [send] = [b for b in at.button if b.label == "Send"]
    send.click().run()
    assert not at.exception and any("HTTP 200 OK" in m.value for m in at.markdown)
    assert any("curl -sS -X POST" in c.value for c in at.code)


def npz_bytes(**arrays: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    return buffer.getvalue()


def test_sets_added_on_the_test_page_fit_by_range_say_why_not_and_take_an_image_shape(digits8, cli_env, own_home):
    model_path, test_npz = digits8[:2]
    ok(modeldeck(cli_env, "models", "register", "fit8", str(model_path), "--input-shape", "8x8",
                 "--value-range", "0-16", "--classes", "0-9"))
    ok(modeldeck(cli_env, "deploy", "fit8", "--name", "fit8"))
    data = np.load(test_npz)
    X, y = data["X"], data["y"]

    at = AppTest.from_file(APP, default_timeout=120)
    at.query_params["deployment"] = "fit8"
    at.run()
    at.switch_page("views/test.py").run()
    assert not at.exception, at.exception

    def files() -> object:
        return next(u for u in at.get("file_uploader") if u.label == "Files")

    def field(label: str) -> object:
        return next(t for t in at.text_input if t.label == label)

    def add(uploads: list[tuple[str, bytes]], name: str, value_range: str = "", shape: str = "") -> None:
        files().set_value([(file, content, "application/octet-stream") for file, content in uploads])
        field("Name").input(name)
        field("Value range (optional)").input(value_range)
        field("Image shape (h×w, optional)").input(shape)
        next(b for b in at.button if b.label == "Add test set").click().run()
        assert not at.exception, at.exception

    def warnings() -> list[str]:
        return [w.value.replace("\\", "") for w in at.warning]

    # held-out rows with no 16 among them: read as [0, 15], within the model's 0-16 on its scale: offered
    no16 = X.max(axis=1) < 16
    add([("no16.npz", npz_bytes(X=X[no16], y=y[no16]))], "fit8-no16")
    assert not at.error and not warnings(), [e.value for e in at.error] + warnings()
    assert next(s for s in at.selectbox if s.label == "Test set").value == "fit8-no16"
    assert not files().value and field("Name").value == ""  # the form starts empty for the next set

    # declared 0-255 for a 0-16 model: chosen, refused, and the notice says why; the others' reasons are listed
    add([("digits8.npz", test_npz.read_bytes())], "fit8-255", "0-255")
    assert not at.error, [e.value for e in at.error]
    assert "Test set 'fit8-255' does not fit fit8:1: its values are in [0, 255]; the model takes [0, 16]. " \
           "Choose another." in warnings()
    hidden = next(c.value for c in at.caption if c.value.startswith("Not offered")).replace("\\", "")
    assert "fit8-255: its values are in [0, 255]; the model takes [0, 16]" in hidden
    assert "scikit-learn digits 8x8 (1,797): its values are in [0, 1]; the model takes [0, 16], on another scale" \
           in hidden

    # two .npz at once (what a kept first upload made): said in words, no staging path, no hex
    add([("a.npz", npz_bytes(X=X[:3], y=y[:3])), ("b.npz", npz_bytes(X=X[:3], y=y[:3]))], "fit8-two")
    [error] = [e.value.replace("\\", "") for e in at.error]
    assert error == ("Cannot add that test set: a.npz is given with b.npz: give one .npz alone, or two IDX files, "
                     "images and labels (MNIST's format, gzip'd or not)")

    # rows of 30 values: the message names the page's field, which takes the shape
    rows = npz_bytes(X=np.arange(60, dtype=np.float32).reshape(2, 30), y=np.array([0, 1]))
    add([("rows.npz", rows)], "fit8-rows")
    [error] = [e.value.replace("\\", "") for e in at.error]
    assert error.endswith("declare the image shape (the Image shape field, or --image-shape HEIGHTxWIDTH)")
    add([("rows.npz", rows)], "fit8-rows", shape="5x6")
    assert not at.error, [e.value for e in at.error]
    assert "Test set 'fit8-rows' does not fit fit8:1: its images are 5x6; the model takes 8x8. Choose another." \
           in warnings()
