"""`python -m backend` end to end in subprocesses, on a fresh home, as a user would type it."""

import json
import subprocess
import sys
import urllib.request
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.config import Settings
from backend.context import open_modeldeck
from backend.data.builtin import FASHION_CLASSES, load_fashion_mnist_test, load_mnist_test

from .conftest import copy_home


def cli(env, *args, check=True):
    result = subprocess.run([sys.executable, "-m", "backend", *args], env=env, capture_output=True, text=True,
                            timeout=300)
    if check and result.returncode != 0:
        pytest.fail(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def test_deploy_evaluate_score_delete_from_a_shell(trained_cli_env):
    cli_env = trained_cli_env  # sklearn_mnist:1 trained by the session (`train-sample` itself: the tests below)
    trained = json.loads(cli(cli_env, "models", "list", "--json").stdout)[0]
    assert trained["id"] == "sklearn_mnist:1" and trained["metrics"]["accuracy"] > 0.85
    deployed = cli(cli_env, "deploy", "sklearn_mnist", "--name", "demo", "--runtime", "local")
    uri = deployed.stdout.strip()
    assert uri.startswith("http://127.0.0.1:") and "Healthy" in deployed.stderr
    try:
        evaluated = cli(cli_env, "evaluate", "demo", "--dataset", "mnist", "--json")
        assert json.loads(evaluated.stdout)["accuracy"] == pytest.approx(trained["metrics"]["accuracy"], abs=1e-4)
        text = cli(cli_env, "evaluate", "demo", "--json-path").stdout
        assert f"accuracy {trained['metrics']['accuracy']:.4f} on 10000 images of mnist" in text
        scored = json.loads(cli(cli_env, "score", "demo", "--random", "30", "--json").stdout)
        assert len(scored) == 30 and len({row["index"] for row in scored}) == 30
        sure = json.loads(cli(cli_env, "score", "demo", "--random", "5", "--proba", "--json").stdout)
        for row in sure:
            assert len(row["probabilities"]) == 10 and sum(row["probabilities"]) == pytest.approx(1.0, abs=1e-4)
            assert max(range(10), key=lambda k: row["probabilities"][k]) == row["prediction"]
        scan = Path(cli_env["MODELDECK_HOME"]).parent / "scan.png"  # a test 7, as a dark-on-light 280 px scan
        digit = (255 - load_mnist_test().X[0].reshape(28, 28) * 255).astype("uint8")
        Image.fromarray(digit).resize((280, 280), Image.Resampling.BICUBIC).save(scan)
        predicted = json.loads(cli(cli_env, "predict", "demo", "--image", str(scan), "--json").stdout)
        assert predicted["prediction"] == "7" and predicted["inverted"] is True
        assert max(predicted["probabilities"], key=predicted["probabilities"].get) == "7"
        curve = json.loads(cli(cli_env, "robustness", "demo", "--perturb", "rotate", "--strengths", "0,40",
                               "--json").stdout)
        assert [point["strength"] for point in curve] == [0.0, 40.0]
        assert curve[0]["accuracy"] == pytest.approx(trained["metrics"]["accuracy"], abs=1e-4)
        assert curve[1]["accuracy"] < curve[0]["accuracy"] - 0.2  # a linear model does not like 40 degrees
        deck = open_modeldeck(Settings.from_env(cli_env))  # kept as the Test page keeps its own: it shows them
        demo = deck.deployments.get("demo")
        kept_curve = deck.results.load_curve(demo, "mnist", "rotate")
        assert [(p.strength, p.accuracy) for p in kept_curve.points] == [
            (point["strength"], point["accuracy"]) for point in curve] and not kept_curve.partial
        assert list(deck.results.load_samples(demo, "mnist").indices) == sorted(row["index"] for row in sure)
        noisy = json.loads(cli(cli_env, "evaluate", "demo", "--perturb", "rotate=40", "--json").stdout)
        assert noisy["dataset"] == "mnist+rotate=40" and noisy["accuracy"] == pytest.approx(curve[1]["accuracy"])
        kept = json.loads(cli(cli_env, "evaluations", "list", "--deployment", "demo", "--json").stdout)
        assert [(r["source"], r["perturbation"]) for r in kept[:3]] == [
            ("cli evaluate", "rotate=40"), ("cli robustness", "rotate=40"), ("cli robustness", "rotate=0")]
        assert kept[0]["model"] == "sklearn_mnist:1" and kept[0]["dataset"] == "mnist" and kept[0]["n"] == 10_000
        assert kept[1]["dataset_sha256"] == kept[0]["dataset_sha256"] != kept[2]["dataset_sha256"]
        assert sum(map(sum, kept[0]["confusion_matrix"])) == 10_000 and len(kept[0]["recall"]) == 10
        assert len(json.loads(cli(cli_env, "evaluations", "list", "--model", "sklearn_mnist:1", "--json").stdout)) \
            == len(kept) and json.loads(cli(cli_env, "evaluations", "list", "--model", "other", "--json").stdout) == []
        own = Path(cli_env["MODELDECK_HOME"]).parent / "own.npz"
        mnist = load_mnist_test()
        np.savez(own, X=(mnist.X[:300].reshape(-1, 28, 28) * 255).round().astype("uint8"), y=mnist.y[:300])
        added = cli(cli_env, "datasets", "add", "first-300", str(own), "--title", "the first 300")
        assert "added test set first-300: the first 300, 28x28 images, values in [0, 255], 10 classes" in added.stdout
        unscaled = cli(cli_env, "evaluate", "demo", "--dataset", "first-300", check=False)  # never rescaled unasked
        assert unscaled.returncode == 1 and "its values are in [0, 255]; the model takes [0, 1]" in unscaled.stderr
        added = cli(cli_env, "datasets", "add", "first-300", str(own), "--title", "the first 300", "--replace",
                    "--rescale-to", "0-1")
        assert "added test set first-300: the first 300, 28x28 images, values in [0, 1], 10 classes" in added.stdout
        listed_sets = json.loads(cli(cli_env, "datasets", "list", "--json").stdout)
        assert {"name": "first-300", "own": True} .items() <= next(d for d in listed_sets
                                                                   if d["name"] == "first-300").items()
        on_own = json.loads(cli(cli_env, "evaluate", "demo", "--dataset", "first-300", "--json").stdout)
        assert on_own["n"] == 300 and on_own["dataset"] == "first-300"
        again = cli(cli_env, "datasets", "add", "first-300", str(own), check=False)
        assert again.returncode == 1 and "exists" in again.stderr and "Traceback" not in again.stderr
        cli(cli_env, "datasets", "remove", "first-300")
        gone = cli(cli_env, "evaluate", "demo", "--dataset", "first-300", check=False)
        assert gone.returncode == 1 and "first-300" in gone.stderr
        bad = cli(cli_env, "evaluate", "demo", "--perturb", "zoom=2", check=False)
        assert bad.returncode == 1 and "unknown perturbation 'zoom'" in bad.stderr
        missing = cli(cli_env, "predict", "demo", "--image", str(scan) + ".nope", check=False)
        assert missing.returncode == 1 and "cannot read" in missing.stderr and "Traceback" not in missing.stderr
        listed = json.loads(cli(cli_env, "deployments", "list", "--json").stdout)
        assert [(d["name"], d["state"], d["scoring_uri"]) for d in listed] == [("demo", "Healthy", uri)]
        assert "modeldeck serving: listening on" in cli(cli_env, "deployments", "logs", "demo").stdout
    finally:
        cli(cli_env, "deployments", "delete", "demo")
    assert json.loads(cli(cli_env, "deployments", "list", "--json").stdout) == []
    processes = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert cli_env["MODELDECK_HOME"] not in processes


def test_two_first_runs_at_once_end_with_exactly_the_two_sample_versions(cli_env):
    """A CLI and another CLI (or the dashboard) started on a fresh home at the same moment: both see an
    empty registry and train, the first to register takes versions 1 and 2, the other adds nothing."""
    command = [sys.executable, "-m", "backend", "models", "list", "--json"]
    runs = [subprocess.Popen(command, env=cli_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(2)]
    outputs = [run.communicate(timeout=300) for run in runs]
    assert [run.returncode for run in runs] == [0, 0], outputs
    errs = [err for _, err in outputs]
    assert all("[first run] sklearn_mnist: training SVC on 5,000 images" in err for err in errs)  # both trained
    assert sorted("registered sklearn_mnist:1 and sklearn_mnist:2" in err for err in errs) == [False, True]
    assert sum("another first run registered the sample models meanwhile" in err for err in errs) == 1
    models = json.loads(cli(cli_env, "models", "list", "--json").stdout)
    assert [m["id"] for m in models] == ["sklearn_mnist:1", "sklearn_mnist:2"]
    for out, _ in outputs:  # each run lists what the registry holds, the loser too
        assert [m["id"] for m in json.loads(out)] == ["sklearn_mnist:1", "sklearn_mnist:2"]
    first, second = models
    assert first["tags"]["algorithm"] == "LogisticRegression" and first["metrics"]["accuracy"] == 0.8953
    assert second["tags"]["algorithm"] == "SVC" and second["metrics"]["accuracy"] >= 0.94
    assert first["signature"] == second["signature"] and second["signature"]["class_labels"] == list("0123456789")
    assert "calibrated" in second["description"] and second["files"][0]["name"] == "sklearn_mnist_model.pkl"
    assert "note:" not in cli(cli_env, "models", "list").stderr  # nothing missing: no hint


def test_a_home_with_only_version_1_is_not_retrained_and_train_sample_adds_the_svc(trained_home, cli_env):
    """A home made by an older ModelDeck (sklearn_mnist:1 only) keeps what it has on every start, and is
    told how to add version 2; version 2 reaches 94 % on the real MNIST 10k test set."""
    import joblib

    home = copy_home(trained_home, Path(cli_env["MODELDECK_HOME"]))
    listed = cli(cli_env, "models", "list", "--json")
    assert [m["id"] for m in json.loads(listed.stdout)] == ["sklearn_mnist:1"] and "[first run]" not in listed.stderr
    assert "note: `modeldeck train-sample --dataset mnist --algorithm svc` adds the SVC sample to sklearn_mnist" \
        in listed.stderr
    added = cli(cli_env, "train-sample", "--algorithm", "svc", "--json")
    trained = json.loads(added.stdout)
    assert trained["id"] == "sklearn_mnist:2" and trained["metrics"]["accuracy"] >= 0.94
    assert "sklearn_mnist: training SVC on 5,000 images" in added.stderr and "registered sklearn_mnist:2" in added.stderr
    model = joblib.load(home / "blobs" / trained["files"][0]["sha256"])  # the registered file, scored again
    test = load_mnist_test()
    accuracy = float(np.mean(model.predict(test.X) == test.y))
    assert accuracy >= 0.94 and round(accuracy, 4) == trained["metrics"]["accuracy"]
    assert model.predict_proba(test.X[:3]).argmax(axis=1).tolist() == [7, 2, 1]
    assert "note:" not in cli(cli_env, "models", "list").stderr
    again = cli(cli_env, "train-sample", "--algorithm", "svc", check=False)  # deterministic: the same bytes
    assert again.returncode == 1 and "already as sklearn_mnist:2" in again.stderr


def test_train_sample_refuses_an_unknown_algorithm_with_the_choices(cli_env):
    result = cli(cli_env, "train-sample", "--algorithm", "forest", check=False)
    assert result.returncode == 2 and "invalid choice: 'forest' (choose from 'logistic', 'svc')" in result.stderr


def test_a_fashion_model_answers_class_names_in_every_output(fashion_home, cli_env):
    """sklearn_fashion from `train-sample --dataset fashion-mnist`: Fashion-MNIST's test set is chosen for it,
    and its ten class names appear in evaluate, score and predict, and in the endpoint's own answer."""
    home, trained = fashion_home
    assert trained["id"] == "sklearn_fashion:1" and trained["metrics"]["accuracy"] >= 0.85
    assert trained["tags"] == {"data": "fashion-mnist", "model": "classification", "algorithm": "SVC"}
    assert trained["signature"]["class_labels"] == sorted(FASHION_CLASSES)
    copy_home(home, Path(cli_env["MODELDECK_HOME"]))
    cli_env["MODELDECK_AUTO_TRAIN"] = "0"
    uri = cli(cli_env, "deploy", "sklearn_fashion", "--name", "fashion").stdout.strip()
    try:
        test = load_fashion_mnist_test()
        request = urllib.request.Request(uri, json.dumps({"data": test.X[:3].tolist()}).encode(),
                                         {"Content-Type": "application/json"})
        answer = json.loads(urllib.request.urlopen(request, timeout=30).read())
        assert set(answer) <= set(FASHION_CLASSES) and len(answer) == 3  # names, not numbers
        evaluated = json.loads(cli(cli_env, "evaluate", "fashion", "--json").stdout)  # its test set, by signature
        assert evaluated["dataset"] == "fashion-mnist" and evaluated["n"] == 10_000
        assert evaluated["labels"] == list(FASHION_CLASSES)
        assert evaluated["accuracy"] == pytest.approx(trained["metrics"]["accuracy"], abs=1e-4)
        assert {p["true_label"] for p in evaluated["most_confused"]} <= set(FASHION_CLASSES)
        text = cli(cli_env, "evaluate", "fashion").stdout
        header = text.splitlines()[2]
        assert header.split() == ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                  "Sneaker", "Bag", "Ankle", "boot"]
        assert all(len(line) == len(header) for line in text.splitlines()[3:13])  # the columns line up
        assert " taken for " in text.splitlines()[-1]
        scored = json.loads(cli(cli_env, "score", "fashion", "--random", "10", "--seed", "1", "--json").stdout)
        for row in scored:
            assert row["label_name"] == FASHION_CLASSES[row["label"]] == FASHION_CLASSES[int(test.y[row["index"]])]
            assert row["prediction_name"] == FASHION_CLASSES[row["prediction"]]
        shown = cli(cli_env, "score", "fashion", "--random", "10", "--seed", "1").stdout
        assert all(f"{row['index']:>6} {row['label_name']:>11} {row['prediction_name']:>11}" in shown for row in scored)
        picture = Path(cli_env["MODELDECK_HOME"]).parent / "boot.png"
        Image.fromarray((test.X[0].reshape(28, 28) * 255).astype("uint8")).save(picture)
        predicted = json.loads(cli(cli_env, "predict", "fashion", "--image", str(picture), "--json").stdout)
        assert predicted["prediction"] in FASHION_CLASSES and set(predicted["probabilities"]) == set(FASHION_CLASSES)
        wrong = cli(cli_env, "evaluate", "fashion", "--dataset", "mnist", check=False)
        assert wrong.returncode == 1 and "test set 'mnist' does not fit this model: its classes are 0, 1, 2" in wrong.stderr
        models = json.loads(cli(cli_env, "models", "list", "--json").stdout)
        assert models[0]["signature"]["class_labels"] == sorted(FASHION_CLASSES)  # kept when the server confirmed it
        assert "confirmed by" in models[0]["signature"]["source"]
    finally:
        cli(cli_env, "deployments", "delete", "fashion")


def test_register_a_model_file_with_tags(cli_env, tmp_path):
    path = tmp_path / "model.pkl"
    path.write_bytes(b"bytes")
    cli_env["MODELDECK_AUTO_TRAIN"] = "0"
    registered = json.loads(cli(cli_env, "models", "register", "mine", str(path), "--tag", "a=b", "--json").stdout)
    assert registered["id"] == "mine:1" and registered["tags"] == {"a": "b"}


def test_errors_exit_non_zero_with_a_message_and_no_traceback(cli_env):
    cli_env["MODELDECK_AUTO_TRAIN"] = "0"
    result = cli(cli_env, "deploy", "nope", "--name", "demo", check=False)
    assert result.returncode == 1
    assert "error: model 'nope' is not registered" in result.stderr and "Traceback" not in result.stderr
    missing = cli(cli_env, "evaluate", "ghost", check=False)
    assert missing.returncode == 1 and "no deployment named 'ghost'" in missing.stderr


def test_a_tutorial_script_deployment_is_evaluated_over_json(first_run_cli_env):
    from pathlib import Path

    cli_env = first_run_cli_env
    script = Path(__file__).parent / "fixtures" / "tutorial_score.py"
    cli(cli_env, "deploy", "sklearn_mnist", "--name", "tutorial", "--entry-script", str(script))
    try:
        result = json.loads(cli(cli_env, "evaluate", "tutorial", "--json").stdout)
        latest = json.loads(cli(cli_env, "models", "list", "--json").stdout)[-1]  # what "sklearn_mnist" deployed
        assert latest["id"] == "sklearn_mnist:2"  # the tutorial's score.py loads version 2's file as well
        assert result["accuracy"] == pytest.approx(latest["metrics"]["accuracy"], abs=1e-4)
    finally:
        cli(cli_env, "deployments", "delete", "tutorial")


def test_deployments_stats_and_loadtest_print_json_with_sane_numbers(first_run_cli_env):
    cli_env = first_run_cli_env
    cli(cli_env, "deploy", "sklearn_mnist", "--name", "tr-busy", "--runtime", "local")
    try:
        idle = json.loads(cli(cli_env, "deployments", "stats", "tr-busy", "--json", "--interval", "0.2").stdout)
        assert idle["requests_total"] == 0 and idle["p50_ms"] is None and idle["requests_per_second"] == 0
        loaded = cli(cli_env, "loadtest", "tr-busy", "--seconds", "2", "--concurrency", "2", "--json")
        result = json.loads(loaded.stdout)
        assert result["requests"] > 0 and result["errors"] == 0 and result["errors_by_kind"] == {}
        assert 0 < result["p50_ms"] <= result["p99_ms"] and result["requests_per_second"] > 0
        assert "second   1:" in loaded.stderr and "second   2:" in loaded.stderr
        stats = json.loads(cli(cli_env, "deployments", "stats", "tr-busy", "--json", "--interval", "0.2").stdout)
        assert stats["requests"] == {"200": result["requests"]} and stats["rows_scored"] == result["requests"]
        assert stats["errors"] == 0 and stats["in_flight"] == 0 and stats["p50_ms"] > 0
        assert {"errors_per_second", "rows_per_second", "interval_p50_ms", "deployment_uid"} <= set(stats)
        table = cli(cli_env, "loadtest", "tr-busy", "--seconds", "1", "--concurrency", "1").stdout
        assert table.splitlines()[0].split() == ["REQUESTS/S", "P50", "MS", "P90", "MS", "P99", "MS", "MAX", "MS",
                                                 "REQUESTS", "ERRORS"]
        refused = cli(cli_env, "loadtest", "tr-busy", "--concurrency", "65", check=False)
        assert refused.returncode == 1 and "concurrency must be a whole number from 1 to 64" in refused.stderr
    finally:
        cli(cli_env, "deployments", "delete", "tr-busy")


def test_evaluations_list_shows_test_set_titles_and_friendly_dates_and_its_json_keeps_names_and_iso(cli_env):
    from datetime import UTC, datetime, timedelta

    from backend.config import Settings
    from backend.context import open_modeldeck
    from backend.inspection.evaluation_log import EvaluationRecord
    from backend.timefmt import friendly_time

    cli_env["MODELDECK_AUTO_TRAIN"] = "0"
    deck = open_modeldeck(Settings.from_env(cli_env))
    kept = {"2026-01-05T12:02:00+00:00": "mnist", (datetime.now(UTC) - timedelta(days=3)).isoformat(
        timespec="seconds"): "digits", datetime.now(UTC).isoformat(timespec="seconds"): "gone-set"}
    for when, dataset in kept.items():
        deck.evaluations.add(EvaluationRecord(
            deployment="words-lr", deployment_uid="u", model_name="lr", model_version=1, model_sha256="s",
            dataset=dataset, dataset_sha256="d", perturbation="", accuracy=0.9, n=10, labels=("0", "1"),
            confusion=((5, 0), (1, 4)), precision=(0.8, 1.0), recall=(1.0, 0.8), created_at=when, duration_s=0.1,
            source="cli evaluate"))
    text = cli(cli_env, "evaluations", "list").stdout
    rows = {line.split("words-lr")[0].strip(): line for line in text.splitlines()[1:]}
    assert text.splitlines()[0].split()[:5] == ["WHEN", "DEPLOYMENT", "MODEL", "TEST", "SET"]
    assert set(rows) == {"5 Jan 2026", "3 days ago", "just now"}
    assert set(rows) == {friendly_time(when) for when in kept}  # in the machine's zone, as the pages show them
    assert "MNIST 10k (bundled)" in rows["5 Jan 2026"] and " mnist " not in rows["5 Jan 2026"]
    assert "scikit-learn digits 8x8 (1,797)" in rows["3 days ago"]
    assert " gone-set " in rows["just now"]  # a removed set still reads as its name
    assert "T12:02" not in text and "2026-01-05" not in text
    listed = json.loads(cli(cli_env, "evaluations", "list", "--json").stdout)
    assert {(r["created_at"], r["dataset"]) for r in listed} == set(kept.items())  # machine-readable, unchanged
