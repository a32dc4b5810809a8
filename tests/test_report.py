"""The report to hand over: made from a real local deployment's scoring, it parses as HTML, embeds every
picture, loads nothing from elsewhere, shows the evaluation's own figures, and prints to PDF."""

import base64
import json
from html.parser import HTMLParser

import numpy as np
import pytest

from backend.data.builtin import load_mnist_test
from backend.inspection.calibration import calibration_of
from backend.inspection.report import ReportInputs, render, to_pdf
from backend.services.reports import report_inputs
from backend.services.traffic import load_test


class Page(HTMLParser):
    """Every tag with its attributes, the text of elements with an id, and whether the nesting closes."""

    VOID = {"img", "meta", "br", "link", "input", "hr"}

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.open: list[tuple[str, str | None]] = []  # (tag, id) of the elements not closed yet
        self.by_id: dict[str, str] = {}

    def handle_starttag(self, tag, attrs):
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag not in self.VOID:
            self.open.append((tag, attributes.get("id")))

    def handle_endtag(self, tag):
        assert self.open and self.open[-1][0] == tag, f"</{tag}> closes {self.open[-1:]}"
        self.open.pop()

    def handle_data(self, data):
        if self.open and self.open[-1][1]:
            self.by_id[self.open[-1][1]] = self.by_id.get(self.open[-1][1], "") + data


def parse(document: str) -> Page:
    page = Page()
    page.feed(document)
    page.close()
    assert page.open == [], page.open
    return page


@pytest.fixture(scope="module")
def testset():
    return load_mnist_test()


def test_the_report_is_self_contained_html_with_the_evaluation_s_figures(local_deck, testset):
    deployment = local_deck.deployments.deploy_and_wait(local_deck.registry.get("sklearn_mnist", 1), "report-a",
                                                        timeout=180)
    inputs = report_inputs(local_deck, deployment, testset)
    evaluation = inputs.evaluation
    assert evaluation.accuracy == pytest.approx(local_deck.registry.get("sklearn_mnist", 1).metrics["accuracy"], abs=1e-4)
    page = parse(render(inputs))
    images = [attrs for tag, attrs in page.tags if tag == "img"]
    # heatmap, reliability diagram, one grid per confused pair, the strip
    assert evaluation.probabilities is not None
    assert len(images) == 2 + len(evaluation.most_confused) + 1
    for attrs in images:
        prefix = "data:image/png;base64,"
        assert attrs["src"].startswith(prefix)
        assert base64.b64decode(attrs["src"][len(prefix):])[:8] == b"\x89PNG\r\n\x1a\n"
    for tag, attrs in page.tags:  # nothing fetched from anywhere: no scripts, stylesheets or frames
        assert tag not in ("script", "link", "iframe", "object", "embed")
        assert not any(k in ("src", "href") and v and not v.startswith("data:") for k, v in attrs.items())
    assert page.by_id["accuracy"] == f"{evaluation.accuracy:.2%}"
    cells = [attrs for tag, attrs in page.tags if tag == "td"]
    assert len(cells) > 40
    document = render(inputs)
    for i, label in enumerate(evaluation.labels):  # the per-class table holds the evaluation's recall
        assert f"<td>{label}</td><td>{int(evaluation.confusion[i].sum()):,}</td><td>{evaluation.precision[i]:.2%}" \
               f"</td><td>{evaluation.recall[i]:.2%}</td>" in document
    assert f"{evaluation.most_confused[0]}" in document and "No load test has been run" in document
    # for a stakeholder: the set's title, calibration with its ECE, the scoring URI only in the appendix
    assert "Test set: MNIST 10k (bundled) (10,000 images)" in document and "Test set: mnist" not in document
    assert page.by_id["ece"] == f"{calibration_of(evaluation).ece:.1%}"
    assert document.index(deployment.scoring_uri) > document.index("<section id='appendix'>")
    assert local_deck.results.load_evaluation(deployment, "mnist") is not None  # scored once, kept

    tested = load_test(local_deck, "report-a", seconds=2, concurrency=2)  # a real one, kept with the deployment
    with_load = report_inputs(local_deck, deployment, testset)
    assert with_load.load_test == tested.to_json()
    document = render(with_load)
    assert parse(document).by_id["rps"] == f"{tested.requests_per_second:,.0f}"
    assert f"{tested.p50_ms:.1f} / {tested.p90_ms:.1f} / {tested.p99_ms:.1f} ms" in document
    assert f"{tested.errors:,} of {tested.requests:,} requests" in document

    other = local_deck.deployments.deploy_and_wait(local_deck.registry.get("sklearn_mnist", 1), "report-b",
                                                   timeout=180)
    compared = report_inputs(local_deck, deployment, testset, compare_with=other)
    assert compared.comparison is not None and compared.comparison.a.deployment == "report-b"
    assert compared.comparison.n_disagree == 0 and np.array_equal(compared.evaluation.predictions,
                                                                   evaluation.predictions)
    document = render(compared)
    parse(document)
    assert "Compared: report-b (A) and report-a (B)" in document and "Both get the same number" in document

    pdf = to_pdf(document)
    assert pdf[:5] == b"%PDF-" and len(pdf) > 50_000


def test_report_from_a_shell(trained_cli_env, tmp_path):
    from tests.test_cli import cli

    cli_env = trained_cli_env
    cli(cli_env, "deploy", "sklearn_mnist:1", "--name", "rep-cli", "--runtime", "local")
    try:
        out = tmp_path / "report.html"
        data = json.loads(cli(cli_env, "report", "rep-cli", "--out", str(out), "--json").stdout)
        assert data["html"] == str(out) and data["dataset"] == "mnist" and data["accuracy"] > 0.85
        assert parse(out.read_text()).by_id["accuracy"] == f"{data['accuracy']:.2%}"
        same = cli(cli_env, "report", "rep-cli", "--out", str(out), "--compare", "rep-cli", check=False)
        assert same.returncode == 1 and "rep-cli is both A and B: pick two different deployments" in same.stderr
    finally:
        cli(cli_env, "deployments", "delete", "rep-cli", check=False)


def test_pictures_drawn_on_several_threads_at_once_come_out_whole(testset):
    """The dashboard draws a report on a download thread while its page thread draws galleries."""
    import io
    import threading

    from PIL import Image

    from backend.inspection.figures import image_grid, to_png

    def draw():
        return to_png(image_grid(testset.X[:20], (28, 28), testset.y[:20], testset.y[:20], testset.class_names,
                                 np.ones(20)))

    alone = Image.open(io.BytesIO(draw())).size
    sizes = []

    def work():
        for _ in range(5):
            sizes.append(Image.open(io.BytesIO(draw())).size)

    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sizes == [alone] * 15


def _made_by_hand(probabilities):
    from backend.data.testset import TestSet
    from backend.inspection.evaluation import evaluate
    from backend.runtimes import DeployConfig
    from backend.runtimes.base import Deployment, DeploymentRecord, DeploymentState

    deployment = Deployment(record=DeploymentRecord(
        name="hand", uid="u-hand", home_id="h", home="/h", model_name="m", model_version=2, model_sha256="s" * 64,
        config=DeployConfig(), entry_script="score.py", created_at="2026-11-20T09:10:00+00:00"),
        runtime="local", state=DeploymentState.HEALTHY, scoring_uri="http://127.0.0.1:40123/score")
    y = np.array([0, 1, 0, 1, 0, 1, 0, 1])
    predictions = np.array([0, 1, 0, 1, 0, 1, 1, 0])
    testset = TestSet("mnist", np.zeros((8, 4), np.float32), y, (2, 2), ("0", "1"), "hand-made")
    evaluation = evaluate(y, predictions, ("0", "1"), probabilities)
    return ReportInputs(deployment=deployment, model=None, testset=testset, evaluation=evaluation,
                        evaluated_at="2026-11-26T14:02:00+00:00", generated_at="2026-11-27T08:00:00+00:00",
                        testset_title="MNIST 10k (bundled)")


def test_a_report_for_stakeholders_has_titles_dates_calibration_and_the_technical_details_last():
    # six right at 100 % sure, two wrong at 100 % sure: ECE 25 %, two sure-and-wrong answers
    sure = np.array([[1.0, 0.0], [0.0, 1.0]] * 4)
    inputs = _made_by_hand(np.where(np.arange(8)[:, None] >= 6, sure[:, ::-1], sure))
    document = render(inputs)
    page = parse(document)
    assert page.by_id["ece"] == "25.0%"
    assert "How sure, and how often right (calibration)" in document
    assert "2 wrong answers were given with 99% confidence or more" in document
    assert "Report by ModelDeck, 27 Nov 2026, 08:00 UTC. Test set: MNIST 10k (bundled) (8 images)." in document
    assert "accuracy on 8 images of MNIST 10k (bundled)" in document and "(scored 26 Nov 2026, 14:02 UTC)" in document
    assert "20 Nov 2026, 09:10 UTC" in document and "2026-11-" not in document  # no raw ISO time anywhere
    appendix = document.index("<section id='appendix'>")
    assert document.rindex("<section") == appendix  # the last section
    for technical in ("http://127.0.0.1:40123/score", "s" * 64, "score.py", "hand-made"):
        assert document.index(technical) > appendix, technical
    assert "<th>confidence</th><th>answers</th>" in document[appendix:]  # the bins, in the appendix


def test_a_labels_only_report_says_calibration_cannot_be_measured():
    document = render(_made_by_hand(None))
    assert "returns labels only: how sure the model is of its answers cannot be measured" in document
    assert "id='ece'" not in document and "expected calibration error" not in document
