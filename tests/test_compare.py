"""The comparison of two models on one test set: McNemar's test against hand-computed values, and
what a Comparison says about who is right where."""

import json
import math

import numpy as np
import pytest

from backend.errors import ComparisonError
from backend.inspection.compare import compare, mcnemar, p_value_words
from backend.inspection.evaluation import evaluate


def test_mcnemar_exact_for_few_discordant_pairs_matches_a_hand_computation():
    # 2 vs 8 discordant: two-sided exact binomial, 2 * (C(10,0) + C(10,1) + C(10,2)) / 2**10 = 112 / 1024
    p_value, test = mcnemar(2, 8)
    assert p_value == pytest.approx(112 / 1024) and "exact" in test
    assert mcnemar(8, 2)[0] == pytest.approx(p_value)
    assert mcnemar(5, 5)[0] == pytest.approx(1.0)  # 2 * P(X <= 5) > 1 is capped
    assert mcnemar(0, 6)[0] == pytest.approx(2 / 64)


def test_mcnemar_chi_square_with_continuity_correction_for_many():
    # 10 vs 30: (|10 - 30| - 1)^2 / 40 = 9.025; one degree of freedom: p = erfc(sqrt(9.025 / 2)) = 0.00266
    p_value, test = mcnemar(10, 30)
    assert p_value == pytest.approx(math.erfc(math.sqrt(9.025 / 2))) and "chi-square" in test
    assert p_value == pytest.approx(0.002663, abs=1e-6)


def test_mcnemar_without_discordant_pairs_cannot_tell_them_apart():
    assert mcnemar(0, 0)[0] == 1.0
    with pytest.raises(ValueError):
        mcnemar(-1, 3)


def test_p_value_words():
    assert p_value_words(0.0002) == "is very unlikely to be chance (p < 0.001)"
    assert p_value_words(0.012) == "is unlikely to be chance (p = 0.012)"
    assert p_value_words(0.43).startswith("could well be chance (p = 0.43)")


LABELS = ("0", "1", "2")


def _pair():
    # 12 images, 4 of each label. A gets 8 right, B gets 10 right.
    y = np.array([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    a = np.array([0, 0, 1, 2, 1, 1, 1, 0, 2, 2, 2, 1])  # wrong at 2, 3, 7, 11
    b = np.array([0, 0, 0, 1, 1, 1, 2, 1, 2, 2, 2, 2])  # wrong at 3 (1 instead of A's 2), 6
    return evaluate(y, a, LABELS), evaluate(y, b, LABELS)


def test_compare_counts_who_is_right_where():
    first, second = _pair()
    c = compare(first, second, dataset="toy", a_name="old", a_model="m:1", b_name="new", b_model="m:2")
    assert (c.a.correct, c.b.correct) == (8, 10)
    assert c.delta == pytest.approx(2 / 12)
    assert (c.a_only_right, c.b_only_right) == (1, 3)  # A alone right at 6; B alone at 2, 7, 11
    assert c.p_value == pytest.approx(mcnemar(1, 3)[0]) == pytest.approx(0.625)
    assert c.n_disagree == 5
    assert c.disagreements("b_right").tolist() == [2, 7, 11]
    assert c.disagreements("a_right").tolist() == [6]
    assert c.disagreements("both_wrong").tolist() == [3]
    assert [(k.label, k.recall_a, k.recall_b) for k in c.per_class] == [("0", 0.5, 0.75), ("1", 0.75, 0.75),
                                                                       ("2", 0.75, 1.0)]
    # true 0 taken for 2: A once in 4, B never; true 1 taken for 2: B once in 4, A never
    assert c.confusion_delta[0, 2] == pytest.approx(-0.25) and c.confusion_delta[1, 2] == pytest.approx(0.25)
    assert np.all(np.diag(c.confusion_delta) == 0)
    assert not c.significant and "A difference like this could well be chance (p = 0.62)" in c.verdict()
    assert " is could" not in c.verdict()
    assert c.verdict().startswith("new (m:2) is better by 16.67 points (66.67% → 83.33%)")
    assert c.verdict(1).startswith("new (m:2) is better by 16.7 points (66.7% → 83.3%)")  # presenting


def test_the_disagreements_add_up_in_the_words_beside_their_count():
    first, second = _pair()
    c = compare(first, second, dataset="toy", a_name="old", a_model="m:1", b_name="new", b_model="m:2")
    kinds = [len(c.disagreements(kind)) for kind in ("b_right", "a_right", "both_wrong")]
    assert sum(kinds) == c.n_disagree == 5 and kinds == [3, 1, 1]
    assert c.disagreement_words() == ("They answer differently on 5 images: new alone is right on 3, old alone on 1 "
                                      "and both are wrong on the other 1, each with a different wrong answer.")
    assert c.disagreement_words() in c.verdict()
    assert "Only the 4 that one of them gets right tell them apart." in c.verdict()
    same = compare(first, first, dataset="toy", a_name="x", a_model="m:1", b_name="y", b_model="m:1")
    assert same.disagreement_words() == "They give the same answer on every image."


def test_compare_json_has_the_documented_keys():
    first, second = _pair()
    data = compare(first, second, dataset="toy", a_name="old", a_model="m:1", b_name="new",
                   b_model="m:2").to_json()
    assert {"a", "b", "delta", "p_value", "n_disagree", "per_class"} <= data.keys()
    assert data["a"]["accuracy"] == pytest.approx(8 / 12) and data["b"]["accuracy"] == pytest.approx(10 / 12)
    assert data["per_class"][2] == {"label": "2", "n": 4, "recall_a": 0.75, "recall_b": 1.0, "change": 0.25}
    assert data["both_wrong_differently"] == 1 and len(data["confusion_delta"]) == 3


def test_the_same_model_twice_is_no_difference():
    first, _ = _pair()
    c = compare(first, first, dataset="toy", a_name="x", a_model="m:1", b_name="y", b_model="m:1")
    assert c.delta == 0 and c.p_value == 1.0 and c.n_disagree == 0 and not c.biggest_changes()
    assert c.verdict().startswith("Both get the same number of images right")


def test_evaluations_of_different_test_sets_are_refused():
    first, second = _pair()
    other = evaluate(second.y_true[::-1], second.predictions, LABELS)
    with pytest.raises(ComparisonError, match="not made on the same test set"):
        compare(first, other, dataset="toy", a_name="a", a_model="m:1", b_name="b", b_model="m:2")


def test_compare_two_deployments_from_a_shell(first_run_cli_env):
    from tests.test_cli import cli

    cli_env = first_run_cli_env  # sklearn_mnist:1 and :2, as a first run leaves them
    cli(cli_env, "deploy", "sklearn_mnist:1", "--name", "lr-a", "--runtime", "local")
    try:
        same = cli(cli_env, "compare", "lr-a", "sklearn_mnist:1", check=False)  # v1 is served by lr-a itself
        assert same.returncode == 1 and "lr-a is both A and B: pick two different deployments" in same.stderr
        cli(cli_env, "deploy", "sklearn_mnist:1", "--name", "lr-b", "--runtime", "local")
        data = json.loads(cli(cli_env, "compare", "lr-a", "lr-b", "--json").stdout)
        assert data["a"]["deployment"] == "lr-a" and data["b"]["deployment"] == "lr-b" and data["n"] == 10_000
        assert data["a"]["accuracy"] == data["b"]["accuracy"] > 0.85
        assert (data["delta"], data["p_value"], data["n_disagree"]) == (0.0, 1.0, 0)
        unfit = cli(cli_env, "compare", "lr-a", "lr-b", "--dataset", "digits", check=False)
        assert unfit.returncode == 1 and "test set 'digits' does not fit this model" in unfit.stderr
        text = cli(cli_env, "compare", "lr-a", "lr-b").stdout
        assert "10,000 images of MNIST 10k (bundled)" in text and "images of mnist" not in text and "Both get the same number of images right" in text
        assert "they disagree on 0 images" in text
        kept = json.loads(cli(cli_env, "evaluations", "list", "--json").stdout)
        assert [(r["deployment"], r["source"], r["dataset"]) for r in kept[:2]] == [
            ("lr-b", "cli compare", "mnist"), ("lr-a", "cli compare", "mnist")]
        # sklearn_mnist:2, not deployed: deployed on the fly
        better = json.loads(cli(cli_env, "compare", "lr-a", "sklearn_mnist:2", "--json").stdout)
        assert better["b"]["deployment"] == "sklearn-mnist-v2" and better["b"]["model"] == "sklearn_mnist:2"
        assert better["b"]["accuracy"] >= 0.94 and better["delta"] == pytest.approx(
            better["b"]["accuracy"] - better["a"]["accuracy"]) and better["delta"] > 0.05
        assert better["p_value"] < 0.001 and better["b_only_right"] > better["a_only_right"]
        assert sum(c["change"] > 0 for c in better["per_class"]) >= 8
    finally:
        for name in ("lr-a", "lr-b", "sklearn-mnist-v2"):
            cli(cli_env, "deployments", "delete", name, check=False)


def test_models_that_predict_different_classes_are_not_comparable():
    from backend.registry import Model, Signature
    from backend.services.comparing import why_incomparable

    def model(name, classes, n_features=784):
        return Model(name=name, version=1, framework="scikit-learn", files=(),
                     signature=Signature(n_features=n_features, class_labels=classes))

    digits = model("digits", tuple(str(i) for i in range(10)))
    fashion = model("fashion", ("Ankle boot", "Bag", "Coat", "Dress", "Pullover", "Sandal", "Shirt", "Sneaker",
                                "T-shirt/top", "Trouser"))
    assert "do not predict the same classes" in why_incomparable(digits, fashion)
    assert "takes 784 values per row and small:1 64" in why_incomparable(digits, model("small", digits.signature.class_labels, 64))
    shuffled = model("other", tuple(reversed(digits.signature.class_labels)))  # the same classes, another order
    assert why_incomparable(digits, shuffled) is None and why_incomparable(digits, None) is None
