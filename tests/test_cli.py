"""`python -m backend` end to end in subprocesses, on a fresh home, as a user would type it."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from backend.datasets import load_mnist_test


def cli(env, *args, check=True):
    result = subprocess.run([sys.executable, "-m", "backend", *args], env=env, capture_output=True, text=True,
                            timeout=300)
    if check and result.returncode != 0:
        pytest.fail(f"{args} exited {result.returncode}:\n{result.stdout}\n{result.stderr}")
    return result


def test_train_deploy_evaluate_score_delete_from_a_shell(cli_env):
    trained = json.loads(cli(cli_env, "train-sample", "--json").stdout)
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
        assert "added test set first-300: the first 300, 28x28 images, 10 classes" in added.stdout
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


def test_models_list_trains_the_sample_model_on_first_run(cli_env):
    models = json.loads(cli(cli_env, "models", "list", "--json").stdout)
    assert [m["id"] for m in models] == ["sklearn_mnist:1"]


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


def test_a_tutorial_script_deployment_is_evaluated_over_json(cli_env):
    from pathlib import Path

    script = Path(__file__).parent / "fixtures" / "tutorial_score.py"
    cli(cli_env, "deploy", "sklearn_mnist", "--name", "tutorial", "--entry-script", str(script))
    try:
        result = json.loads(cli(cli_env, "evaluate", "tutorial", "--json").stdout)
        recorded = json.loads(cli(cli_env, "models", "list", "--json").stdout)[0]["metrics"]["accuracy"]
        assert result["accuracy"] == pytest.approx(recorded, abs=1e-4)
    finally:
        cli(cli_env, "deployments", "delete", "tutorial")


def test_deployments_stats_and_loadtest_print_json_with_sane_numbers(cli_env):
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
