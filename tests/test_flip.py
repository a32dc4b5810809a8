"""What would make an image another class: the search through scores alone (on a known function: its marks are
needed and stay near the strokes), and through a real deployment from the CLI, whose own answer for the edited image
is the class asked for."""

import json
from pathlib import Path

import numpy as np
import pytest

from backend.config import Settings
from backend.context import open_modeldeck
from backend.data.builtin import load_mnist_test
from backend.errors import InvalidExplanationError
from backend.inspection.flip import applied, candidate_marks, flip, margin
from backend.services.scoring import score_rows

from .test_cli import cli

SHAPE = (8, 8)


def two_class_model(X: np.ndarray) -> np.ndarray:
    """P(class 1) grows with ink in the left half, P(class 0) with ink in the right half."""
    images = X.reshape(len(X), *SHAPE)
    left, right = images[:, :, :4].sum(axis=(1, 2)), images[:, :, 4:].sum(axis=(1, 2))
    logits = np.stack([right, left], axis=1) * 0.5
    exp = np.exp(logits - logits.max(axis=1, keepdims=True))
    return exp / exp.sum(axis=1, keepdims=True)


def test_the_search_flips_a_known_function_with_needed_marks_near_the_strokes():
    image = np.zeros(64, dtype=np.float32)
    image.reshape(SHAPE)[1:7, 4:6] = 1.0  # a stroke right of the middle: class 0
    calls = []

    def score(X: np.ndarray) -> np.ndarray:
        calls.append(len(X))
        return two_class_model(X)

    found = flip(image, 1, score, SHAPE, (0.0, 1.0))
    assert found.found and found.answer == 1 and int(np.argmax(two_class_model(found.edited[None])[0])) == 1
    assert found.requests == len(calls) and found.steps <= found.requests <= found.steps + 3
    assert 0 < found.changed_pixels <= 16 and found.marks >= 1
    changed = np.flatnonzero(found.edited != image)
    columns = changed % 8
    assert (columns <= 5).all()  # ink taken from the stroke or added beside it: nothing far from it
    # every mark kept is needed: without any one of them the answer is not class 1 (the search took the others back)
    assert margin(two_class_model(found.edited[None]), 1)[0] > 0
    assert margin(found.start[None], 1)[0] < 0


def test_the_search_gives_up_within_its_steps_and_refuses_a_class_the_model_lacks():
    image = np.zeros(64, dtype=np.float32)
    image.reshape(SHAPE)[1:7, 6:8] = 1.0
    found = flip(image, 1, two_class_model, SHAPE, (0.0, 1.0), max_steps=1)
    assert not found.found and found.steps == 1 and found.answer == 0 and found.requests == 2
    with pytest.raises(InvalidExplanationError, match="classes 0 to 1, not 5"):
        flip(image, 5, two_class_model, SHAPE, (0.0, 1.0))
    marks = candidate_marks(image, SHAPE, (0.0, 1.0))
    assert marks and all(m.value in (0.0, 1.0) for m in marks)
    assert np.array_equal(applied(image, []), image)


def test_the_cli_finds_an_edit_the_deployment_itself_answers_as_asked(trained_cli_env, tmp_path):
    env = trained_cli_env

    cli(env, "deploy", "sklearn_mnist:1", "--name", "flipped")
    try:
        mnist = load_mnist_test()
        said = json.loads(cli(env, "counterfactual", "flipped", "--dataset", "mnist", "--index", "0", "--to", "9", "--json",
                              "--out", str(tmp_path / "flip.png")).stdout)
        assert said["from"] == "7" and said["found"] and said["answer"] == "9" and said["requests"] <= 43
        edited = np.array(said["image"], dtype=np.float32).reshape(1, -1)
        assert 0 < said["changed_pixels"] == int(np.count_nonzero(edited[0] != mnist.X[0]))
        assert (tmp_path / "flip.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        # the deployment's own answer for the edited image, asked again
        deck = open_modeldeck(Settings(home=Path(env["MODELDECK_HOME"]), runtime="local"))
        assert mnist.class_names[int(score_rows(deck, deck.deployments.get("flipped"), edited, mnist)[0][0])] == "9"
        refused = cli(env, "counterfactual", "flipped", "--dataset", "mnist", "--index", "0", "--to", "nine",
                      check=False)
        assert refused.returncode == 1 and "'nine' is not a class of test set 'mnist'" in refused.stderr
        gave_up = cli(env, "counterfactual", "flipped", "--dataset", "mnist", "--index", "0", "--to", "9",
                      "--max-steps", "1", check=False)
        assert gave_up.returncode == 1 and "no edit of up to 1 mark made flipped answer 9" in gave_up.stderr
    finally:
        cli(env, "deployments", "delete", "flipped")


@pytest.fixture()
def strip_page(local_deck, monkeypatch):
    """(deck, a function opening the Test page on a local deployment of sklearn_mnist:1 with 30 random images sent,
    in presentation mode when asked, and what was sent)."""
    from dashboard import common

    from .test_dashboard import button, on_page

    deck = local_deck
    deployment = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "strip", runtime="local",
                                                  timeout=180)
    monkeypatch.setenv("MODELDECK_HOME", str(deck.settings.home))
    monkeypatch.setenv("MODELDECK_RUNTIME", "local")
    common._open.clear()

    def opened(seed: int, **query: str):
        at = on_page("views/test.py", deployment="strip", dataset="mnist", **query)
        at.number_input(key="seed").set_value(seed).run()
        button(at, "Send 30 random test images").click().run()
        return at, deck.results.load_samples(deployment, "mnist")

    yield opened
    common._open.clear()


def test_the_test_page_shows_what_would_make_a_strip_image_another_class(strip_page):
    at, sent = strip_page(1)
    at.selectbox(key="strip/explain").set_value(0).run()
    said = int(sent.predictions[0])
    at.selectbox(key="strip/0/flip").set_value((said + 1) % 10).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(f"make it answer {(said + 1) % 10}" in c.value for c in at.caption)


@pytest.mark.parametrize("present", [False, True], ids=["side-by-side", "stacked-on-a-projector"])
def test_a_wrong_images_two_explanations_sit_side_by_side_or_stack_on_a_projector(strip_page, present):
    at, sent = strip_page(2, **({"present": "1"} if present else {}))
    wrong = [k for k in range(len(sent.labels)) if sent.labels[k] != sent.predictions[k]]
    assert wrong, "the seed gives a wrong image among 30 (v1 is right 89.5 % of the time)"
    at.selectbox(key="strip/explain").set_value(wrong[0]).run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Both pictures share one colour scale" in c.value and ("two standard errors at most" in c.value or
               "Every order agrees" in c.value) for c in at.caption)  # how sure the estimate is
    assert any(m.value.startswith("**Why ") for m in at.markdown)
    assert any(m.value.startswith("**What speaks for ") for m in at.markdown)
    in_columns = any(m.value.startswith("**Why ") for column in at.columns for m in column.markdown)
    assert in_columns is not present  # two columns make their words 8 px high at 1024 on a projector
