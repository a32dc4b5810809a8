"""Explanations by column of a table model's answers, from the endpoint's answers alone: Shapley values by permutation
(pure logic checked on functions whose values are known) and permutation importance; against a real deployment of
the breast-cancer sample, the log-odds contributions are the logistic regression's own weights times the distance to
the background's mean, and the importance is what scikit-learn's predictions give for the same shuffles."""

import json
import os
import re
import subprocess
import sys
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
from altair.utils.schemapi import validate_jsonschema
from altair.vegalite.v6.schema.core import load_schema

from backend.data.builtin import BREAST_CANCER_FEATURES
from backend.data.testset import TestSet
from backend.errors import InvalidExplanationError
from backend.inspection.explain import (
    MAX_CELLS,
    Explanation,
    deleted,
    importance_of,
    orderings,
    output_of,
    patches,
    saturated,
    shapley_rows,
    shapley_values,
    shuffled,
)
from backend.inspection.interactive_charts import contribution_chart, importance_chart
from backend.services import explaining

from .conftest import stroke_png
from .test_cli import cli


def explained(f, row: np.ndarray, background: np.ndarray, count: int = 6, seed: int = 0):
    """Shapley values of `f` for `row`; of its patches when it is 15 values (a 5x3 image in 2x2 patches)."""
    group_of = patches((5, 3), 2)[0] if len(row) == 15 else None
    players = len(row) if group_of is None else int(group_of.max()) + 1
    order = orderings(players, count, np.random.default_rng(seed))
    return shapley_values(f(shapley_rows(row, background, order, group_of)), order, len(background))


def test_orderings_come_with_their_reverses_and_rows_switch_one_column_at_a_time():
    order = orderings(4, 4, np.random.default_rng(1))
    assert order.shape == (4, 4) and (order[1] == order[0][::-1]).all() and (order[3] == order[2][::-1]).all()
    assert all(sorted(o) == [0, 1, 2, 3] for o in order)
    rows = shapley_rows(np.array([1, 2, 3], dtype=np.float32), np.zeros((1, 3), dtype=np.float32),
                        np.array([[2, 0, 1], [1, 0, 2]]))
    assert rows.tolist() == [[0, 0, 0], [0, 0, 3], [1, 0, 3], [1, 2, 3],
                             [0, 0, 0], [0, 2, 0], [1, 2, 0], [1, 2, 3]]
    with pytest.raises(InvalidExplanationError, match="in pairs"):
        orderings(4, 3, np.random.default_rng(0))
    wide = MAX_CELLS // 31 // 30 + 1  # columns x rows past the bound
    with pytest.raises(InvalidExplanationError, match="take fewer background rows or orderings"):
        shapley_rows(np.zeros(wide, dtype=np.float32), np.zeros((30, wide), dtype=np.float32),
                     np.tile(np.arange(wide), (2, 1)))


def test_an_additive_model_gets_exact_values_and_any_model_adds_up_to_its_output():
    rng = np.random.default_rng(0)
    background = rng.normal(size=(20, 5))
    row = rng.normal(size=5)
    weights = np.array([2.0, -1.0, 0.5, 0.0, 3.0])
    contributions, errors, base, output, spread = explained(lambda X: np.tanh(X) @ weights, row, background)
    assert contributions == pytest.approx(weights * (np.tanh(row) - np.tanh(background).mean(axis=0)))
    assert errors == pytest.approx(np.zeros(5), abs=1e-12) and contributions[3] == 0 and spread < 1e-12
    # an interaction: the orderings disagree (a standard error), but every estimate adds up exactly, and the two
    # columns that play the same part get the same value
    def interacting(X: np.ndarray) -> np.ndarray:
        return X[:, 0] * X[:, 1] + X[:, 2]

    row = np.array([1.0, 1.0, 2.0])
    background = np.array([[0.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    contributions, errors, base, output, spread = explained(interacting, row, background, count=8)
    assert base == pytest.approx(0.5) and output == pytest.approx(3.0)
    assert spread > 0.1  # single orderings disagree (x0 and x1 each get 0 or 1), though each pair agrees: not exact
    assert contributions.sum() == pytest.approx(output - base)
    assert contributions == pytest.approx([0.5, 0.5, 1.5])  # x0 x1 shared equally: exact here, as both are 0 at once


def test_the_scales_and_the_explanation_for_people():
    probabilities = np.array([[0.25, 0.75], [1.0, 0.0]])
    assert output_of(probabilities, 1, "probability").tolist() == [0.75, 0.0]
    odds = output_of(probabilities, 0, "log-odds")
    assert odds[0] == pytest.approx(np.log(1 / 3)) and np.isfinite(odds[1])  # a bound, not infinite
    assert saturated(probabilities, 0) == 1 and saturated(np.array([[0.5, 0.5]]), 0) == 0
    explanation = Explanation(("a", "b", "c"), np.array([1.0, 2.0, 3.0]), np.array([0.2, -0.3, 0.05]),
                              np.array([0.001, 0.001, 0.0]), 0.4, 0.35, 1, "probability", 30, 10)
    assert explanation.exact and explanation.ranked().tolist() == [1, 0, 2]
    assert not replace(explanation, saturated=1).exact  # an output cut off at the endpoint's precision
    assert not replace(explanation, errors=np.array([0.01, 0.0, 0.0])).exact  # 0.01 > 1 % of the largest, 0.3
    assert not replace(explanation, spread=0.01).exact  # single orderings disagree: not one term per column
    assert explanation.precision_words() == "Every order agrees: these are exact."
    assert replace(explanation, errors=np.array([0.015, 0.0, 0.0])).precision_words() == \
        "Each value is within ±3 points (two standard errors at most, 10% of the largest part)."
    assert replace(explanation, errors=np.array([0.1, 0.0, 0.0]), scale="log-odds").precision_words() == \
        "Rough: each value is within ±0.2 (two standard errors at most, 67% of the largest part): trust the " \
        "strongest parts only."
    spec = contribution_chart(explanation, ("no", "yes"), top=2)
    validate_jsonschema(spec, load_schema())
    assert [bar["column"] for bar in spec["data"]["values"]] == ["b = 2", "a = 1", "the other column"]
    assert spec["layer"][0]["encoding"]["x"]["title"] == "contribution to P(yes)"


def test_importance_is_the_accuracy_lost_with_a_column_shuffled():
    labels = np.array([0, 1, 0, 1])
    predicted = np.array([0, 1, 0, 1])
    shuffled_predictions = np.array([[[0, 1, 0, 1], [0, 1, 0, 1]],  # column 0 ignored: nothing lost
                                     [[1, 1, 0, 1], [1, 0, 0, 1]]])  # column 1: a quarter, then half lost
    importance = importance_of(("ignored", "used"), labels, predicted, shuffled_predictions)
    assert importance.accuracy == 1.0 and importance.drops.tolist() == [0.0, 0.375]
    assert importance.spreads[0] == 0 and importance.spreads[1] == pytest.approx(np.std([0.25, 0.5], ddof=1))
    assert importance.ranked().tolist() == [1, 0] and importance.rows == 4
    validate_jsonschema(importance_chart(importance), load_schema())
    X = np.arange(12, dtype=np.float32).reshape(4, 3)
    moved = shuffled(X, 1, np.random.default_rng(0))
    assert (moved[:, [0, 2]] == X[:, [0, 2]]).all() and sorted(moved[:, 1]) == sorted(X[:, 1])
    images = TestSet("i", np.zeros((2, 4), dtype=np.float32), np.zeros(2, dtype=int), (2, 2), ("a",), "test")
    with pytest.raises(InvalidExplanationError, match="is images"):
        explaining.permutation_importance(None, None, images)  # type: ignore[arg-type]  # refused before any use


def frame(rows: np.ndarray) -> pd.DataFrame:
    return pd.DataFrame(rows, columns=list(BREAST_CANCER_FEATURES))


def test_a_logistic_regressions_log_odds_contributions_are_its_weights_through_the_endpoint(cancer_deployment):
    deck, deployment, data, model = cancer_deployment
    row = data.X[3]
    benign = data.class_names.index("benign")
    explanation = explaining.explain_row(deck, deployment, data, row, class_index=benign, scale="log-odds", seed=2)
    scaler, regression = model[0], model[-1]
    assert list(regression.classes_) == ["benign", "malignant"]  # its decision function: the log-odds of malignant
    chosen = np.sort(np.random.default_rng(2).choice(len(data), size=30, replace=False))
    weights = -regression.coef_[0] / scaler.scale_  # for benign: the opposite sign
    expected = weights * (row.astype(np.float64) - data.X[chosen].astype(np.float64).mean(axis=0))
    assert explanation.exact and explanation.background == 30 and explanation.saturated == 0
    assert explanation.contributions == pytest.approx(expected, abs=1e-5)
    # on the probability scale: an estimate that adds up to scikit-learn's own probabilities
    explanation = explaining.explain_row(deck, deployment, data, row)
    probabilities = model.predict_proba(frame(row[None, :]))[0]
    assert explanation.class_index == data.class_names.index(model.predict(frame(row[None, :]))[0])
    assert explanation.output == pytest.approx(probabilities[list(model.classes_).index(
        data.class_names[explanation.class_index])], abs=1e-6)
    assert explanation.base + explanation.contributions.sum() == pytest.approx(explanation.output, abs=1e-9)
    assert not explanation.exact and (explanation.errors > 0).any()
    with pytest.raises(InvalidExplanationError, match="has classes 0 to 1, not 2"):
        explaining.explain_row(deck, deployment, data, row, class_index=2)


def test_permutation_importance_is_scikit_learns_for_the_same_shuffles(cancer_deployment):
    deck, deployment, data, model = cancer_deployment
    seen: list[tuple[int, int]] = []
    importance = explaining.permutation_importance(deck, deployment, data, repeats=2, seed=5,
                                                   progress=lambda done, total: seen.append((done, total)))
    assert seen[-1] == (30, 30) and len(seen) == 30 and importance.rows == len(data)

    def predicted(X: np.ndarray) -> np.ndarray:
        return np.array([data.class_names.index(name) for name in model.predict(frame(X))])

    rng = np.random.default_rng(5)
    again = np.stack([np.stack([predicted(shuffled(data.X, j, rng)) for _ in range(2)]) for j in range(30)])
    expected = importance_of(BREAST_CANCER_FEATURES, data.y, predicted(data.X), again)
    assert importance.accuracy == pytest.approx(model.score(frame(data.X), np.array(data.class_names)[data.y]))
    assert importance.drops.tolist() == expected.drops.tolist()


def test_the_cli_explains_a_row_and_ranks_the_columns(cancer_deployment):
    deck, deployment, data, model = cancer_deployment
    env = {**os.environ, "MODELDECK_HOME": str(deck.settings.home), "MODELDECK_RUNTIME": "local"}

    def modeldeck(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "backend", *args, deployment.name], env=env, capture_output=True,
                              text=True, timeout=120)

    done = modeldeck("explain", "--index", "3", "--scale", "log-odds", "--of", "benign", "--json")
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert answer["class"] == "benign" and answer["exact"] and len(answer["contributions"]) == 30
    total = sum(c["contribution"] for c in answer["contributions"])
    assert answer["base"] + total == pytest.approx(answer["output"], abs=1e-9)
    sizes = [abs(c["contribution"]) for c in answer["contributions"]]
    assert sizes == sorted(sizes, reverse=True) and answer["contributions"][0]["value"] == float(
        str(data.X[3][BREAST_CANCER_FEATURES.index(answer["contributions"][0]["column"])]))
    text = modeldeck("importance", "--repeats", "2", "--top", "5")
    assert text.returncode == 0 and text.stdout.startswith("accuracy 95.80% on 143 rows of breast-cancer")
    assert len(text.stdout.splitlines()) == 6 and "30 of 30 columns shuffled" in text.stderr
    refused = modeldeck("explain", "--of", "maybe")
    assert refused.returncode == 1 and "'maybe' is not a class of test set 'breast-cancer': malignant, benign" \
        in refused.stderr


def test_an_image_is_explained_by_patches_switched_from_a_blank_image():
    group_of, names, grid = patches((28, 28), 4)
    assert grid == (7, 7) and len(names) == 49 and names[8] == "rows 4-7, columns 4-7"
    assert group_of.reshape(28, 28)[5, 6] == 8 and np.bincount(group_of).tolist() == [16] * 49
    group_of, names, grid = patches((5, 3), 2)  # edges smaller
    assert grid == (3, 2) and names[-1] == "rows 4-4, columns 2-2" and group_of.tolist() == [
        0, 0, 1, 0, 0, 1, 2, 2, 3, 2, 2, 3, 4, 4, 5]
    image = np.arange(1, 16, dtype=np.float64)
    order = np.array([[1, 0, 2, 3, 4, 5], [5, 4, 3, 2, 0, 1]])
    rows = shapley_rows(image, np.zeros((1, 15)), order, group_of)
    assert rows.shape == (14, 15) and (rows[0] == 0).all() and (rows[6] == image).all()
    assert rows[1].tolist() == [0, 0, 3, 0, 0, 6] + [0] * 9  # patch 1 (column 2 of rows 0-1) switched first
    weights = np.linspace(-1, 1, 15)  # a linear model: each patch's value is its pixels' weighted sum
    contributions, errors, base, output, _ = explained(lambda X: X @ weights, image, np.zeros((1, 15)))
    expected = np.bincount(patches((5, 3), 2)[0], weights=weights * image)
    assert contributions == pytest.approx(expected) and errors == pytest.approx(np.zeros(6), abs=1e-12)


def test_an_image_explanation_through_a_real_deployment_adds_up_to_scikit_learns_probabilities(local_deck, tmp_path):
    import joblib

    from backend.data.builtin import load_mnist_test
    from backend.inspection.figures import patch_explanation, to_png

    model = local_deck.registry.get("sklearn_mnist", 1)
    deployment = local_deck.deployments.deploy_and_wait(model, "explain-digits", timeout=180)
    data = load_mnist_test()
    fitted = joblib.load(local_deck.settings.blobs_dir / model.files[0].sha256)
    explanation = explaining.explain_row(local_deck, deployment, data, data.X[0])
    probabilities = fitted.predict_proba(data.X[:1].astype(np.float64))[0]
    blank = fitted.predict_proba(np.zeros((1, 784)))[0]
    assert explanation.class_index == int(np.argmax(probabilities)) == int(data.y[0])
    assert explanation.output == pytest.approx(probabilities[explanation.class_index], abs=1e-9)
    assert explanation.base == pytest.approx(blank[explanation.class_index], abs=1e-9)
    assert explanation.base + explanation.contributions.sum() == pytest.approx(explanation.output, abs=1e-9)
    assert explanation.patch_grid == (7, 7) and explanation.patch_side == 4
    corner = explanation.contributions.reshape(7, 7)[0, 0]
    assert corner == 0  # a patch the digit leaves blank changes nothing when switched
    assert to_png(patch_explanation(explanation, (28, 28), (0.0, 1.0), data.class_names)).startswith(b"\x89PNG")
    env = {**os.environ, "MODELDECK_HOME": str(local_deck.settings.home), "MODELDECK_RUNTIME": "local"}
    done = subprocess.run([sys.executable, "-m", "backend", "explain", "explain-digits", "--dataset", "mnist", "--index",
                           "0", "--png", str(tmp_path / "why.png"), "--json"], env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    answer = json.loads(done.stdout)
    assert np.array(answer["patches"]) == pytest.approx(explanation.contributions.reshape(7, 7))  # the same seed
    assert (tmp_path / "why.png").read_bytes().startswith(b"\x89PNG")


def test_the_cli_explains_an_image_file_for_a_target_class_pixel_by_pixel(trained_cli_env, tmp_path):
    env = trained_cli_env
    (tmp_path / "one.png").write_bytes(stroke_png())  # a "1"
    cli(env, "deploy", "sklearn_mnist:1", "--name", "explained")
    try:
        answer = json.loads(cli(env, "explain", "explained", "--dataset", "mnist", "--image", str(tmp_path / "one.png"),
                                "--target", "7", "--json").stdout)
        assert answer["target"] == "7" and answer["prediction"] in "0123456789" and answer["requests"] >= 1
        saliency, pixels = np.array(answer["saliency"]), np.array(answer["image"])
        assert saliency.shape == pixels.shape == (28, 28) and pixels.max() > 0.5
        assert saliency.sum() == pytest.approx(answer["output"] - answer["base"], abs=1e-9)  # the pixels add up
        assert "patches switched from a blank image" in answer["method"]
    finally:
        cli(env, "deployments", "delete", "explained")


def test_the_deletion_test_finds_what_the_model_uses(local_deck):
    """Removing the 10 % most salient pixels lowers the predicted class's probability much more than removing as
    many random ink pixels (a loose bound: 20 images; the benchmark measures 100 for both versions)."""
    from backend.data.builtin import load_mnist_test

    deployment = local_deck.deployments.deploy_and_wait(local_deck.registry.get("sklearn_mnist", 1), "deletion",
                                                        runtime="local", timeout=180)
    result = explaining.deletion_test(local_deck, deployment, load_mnist_test(), range(20))
    assert result.images == 20 and len(result.seconds) == 20
    assert result.top_drop > 2 * result.random_drop and result.top_drop > 0.2


def test_the_deletion_images_remove_the_top_pixels_or_random_ink():
    row = np.array([0.0, 0.9, 0.0, 0.5, 0.2, 0.0, 0.7, 0.1, 0.0, 0.3], dtype=np.float32)
    saliency = np.array([0.0, 5.0, 9.0, 1.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    top, randomly = deleted(row, saliency, 0.2, 0.0, np.random.default_rng(0))
    assert top.tolist() == pytest.approx([0, 0, 0, 0.5, 0.2, 0, 0.7, 0.1, 0, 0.3])  # pixels 2 and 1, the most salient
    gone = np.flatnonzero(randomly != row)
    assert len(gone) == 2 and all(row[k] != 0 for k in gone)  # two ink pixels


def test_a_logistic_regressions_weight_maps_are_read_exactly_through_the_endpoint(first_run_deck):
    """What sklearn_mnist:1 looks for in each class, read from its answers to single inked pixels: each class's
    coefficients minus their mean, and said linear; the SVC of :2 is said not to be."""
    import joblib

    from backend.data.builtin import load_mnist_test
    from backend.inspection.figures import to_png, weight_figure

    deck = first_run_deck
    mnist = load_mnist_test()
    model = deck.registry.get("sklearn_mnist", 1)
    deployment = deck.deployments.deploy_and_wait(model, "weights", runtime="local", timeout=180)
    maps = explaining.class_weight_maps(deck, deployment, mnist)
    fitted = joblib.load(deck.settings.blobs_dir / model.files[0].sha256)
    centred = fitted.coef_ - fitted.coef_.mean(axis=0)
    assert maps.linear and maps.error < 1e-4
    assert np.allclose(maps.maps, centred, atol=1e-4 * np.abs(centred).max())
    assert to_png(weight_figure(maps, (28, 28), mnist.class_names))[:4] == b"\x89PNG"
    svc = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 2), "weights-2", runtime="local",
                                           timeout=180)
    svc_maps = explaining.class_weight_maps(deck, svc, mnist)
    assert not svc_maps.linear
    assert re.fullmatch(r"by up to (\d+% of|\d+\.\d times) the spread of its answers", svc_maps.mismatch_words())
    assert replace(svc_maps, error=6.85).mismatch_words() == "by up to 6.8 times the spread of its answers"  # not 685%
