"""A report to hand over: one self-contained HTML file (every picture embedded as a data URI, no
external asset, opens offline) about one deployment — model card, configuration, accuracy and per-class
table, the normalised heatmap, calibration (reliability diagram and ECE), the most confused pairs with
examples, random predictions, the latest load test and, when asked, a comparison; technical details
(scoring URI, hashes, libraries) in an appendix at the end — and a PDF of it printed by headless Chromium.
Written for a stakeholder: test sets by their titles, dates as people write them.
"""

from __future__ import annotations

import base64
import html
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from ..data.cases import Case
from ..data.testset import TestSet
from ..errors import ReportError
from ..registry import Model
from ..runtimes.base import Deployment
from ..timefmt import friendly_time
from .calibration import calibration_of
from .compare import DISAGREEMENT_KINDS, Comparison
from .evaluation import Evaluation, class_name
from .figures import (
    case_grid,
    confusion_heatmap,
    difference_heatmap,
    disagreement_grid,
    image_grid,
    reliability_diagram,
    to_png,
)
from .rows import row_table, rows_html

STRIP_SIZE = 20
EXAMPLES_PER_PAIR = 10
PDF_TIMEOUT_S = 60


@dataclass(frozen=True)
class FlaggedCases:
    """The case set that fits a deployment (`cases`, ...), its cases, and the deployment's scoring of it."""

    testset: TestSet
    cases: tuple[Case, ...]
    evaluation: Evaluation


@dataclass(frozen=True)
class ReportInputs:
    """Everything a report shows; `load_test` is the latest load test's JSON (None: never run)."""

    deployment: Deployment
    model: Model | None
    testset: TestSet
    evaluation: Evaluation
    evaluated_at: str | None
    load_test: Mapping[str, Any] | None = None
    comparison: Comparison | None = None
    generated_at: str = ""
    testset_title: str = ""  # what people call the test set ("" : its name)
    flagged: FlaggedCases | None = None  # the flagged cases that fit the deployment, as it answers them

    @property
    def set_title(self) -> str:
        return self.testset_title or self.testset.name


def _when(iso_time: str | None) -> str:
    """A date as the report writes it: "26 Nov 2026, 14:02 UTC" (a document is read later, maybe in another
    time zone: never "today", always UTC)."""
    return friendly_time(iso_time, datetime.now(UTC), absolute=True) or "-"


def _e(value: object) -> str:
    return html.escape(str(value))


def _png(data: bytes, alt: str) -> str:
    return f'<img alt="{_e(alt)}" src="data:image/png;base64,{base64.b64encode(data).decode()}">'


def _table(rows: list[tuple[str, str]]) -> str:
    return "<table class='kv'>" + "".join(f"<tr><th>{_e(k)}</th><td>{v}</td></tr>" for k, v in rows) + "</table>"


def _grid(headers: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{_e(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table class='grid'><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _model_card(model: Model | None, deployment: Deployment) -> str:
    if model is None:
        return (f"<p>The registry of this home no longer has {_e(deployment.model_id)} (its sha256 is in the "
                "appendix).</p>")
    tags = ", ".join(f"{k}={v}" for k, v in sorted(model.tags.items())) or "none"
    metrics = ", ".join(f"{k} {v:g}" for k, v in sorted(model.metrics.items())) or "none"
    return _table([("Model", _e(model.id)), ("Framework", _e(model.framework)),
                   ("Description (training data)", _e(model.description or "none")), ("Tags", _e(tags)),
                   ("Metrics recorded at registration", _e(metrics)), ("Input and output", _e(model.signature.describe())),
                   ("Registered", _e(_when(model.created_at)))])


def _configuration(deployment: Deployment) -> str:
    record, config = deployment.record, deployment.record.config
    return _table([("Deployment", _e(deployment.name)), ("State", _e(deployment.state)),
                   ("CPU cores", _e(f"{config.cpu_cores:g}")), ("Memory", _e(f"{config.memory_gb:g} GB")),
                   ("Tags", _e(", ".join(f"{k}={v}" for k, v in sorted(config.tags.items())) or "none")),
                   ("Description", _e(config.description or "none")), ("Created", _e(_when(record.created_at)))])


def _appendix(inputs: ReportInputs) -> str:
    """The technical details, for whoever runs or checks the deployment: kept out of the report's body."""
    deployment, model = inputs.deployment, inputs.model
    record, config = deployment.record, deployment.record.config
    rows = [("Scoring URI", f"<code>{_e(deployment.scoring_uri or '-')}</code>"),
            ("Runtime", _e(deployment.runtime)), ("Scoring script", _e(record.entry_script)),
            ("Authentication", "key (Bearer)" if config.auth_enabled else "none"),
            ("Largest request body", _e(f"{config.body_limit_mb:g} MiB")),
            ("Model sha256", f"<code>{_e(model.sha256 if model is not None else record.model_sha256)}</code>")]
    if model is not None:
        rows.append(("Libraries", _e(", ".join(f"{k} {v}" for k, v in sorted(model.library_versions.items()))
                                     or "not recorded")))
    rows.append(("Test set", _e(f"{inputs.testset.name} ({_items(inputs.testset, len(inputs.testset))}; "
                                f"{inputs.testset.source})")))
    if inputs.comparison is not None:
        rows.append(("Significance test", _e(inputs.comparison.test)))
    calibration = calibration_of(inputs.evaluation)
    bins = "" if calibration is None else (
        f"<h3>Calibration bins ({len(calibration.bins)} of equal width; empty ones left out)</h3>"
        + _grid(["confidence", "answers", "mean confidence", "share right", "confidence − share right"],
                [[f"{b.low:.1%} – {b.high:.1%}", f"{b.count:,}", f"{b.confidence:.2%}", f"{b.accuracy:.2%}",
                  f"{b.gap * 100:+.2f} points"] for b in calibration.bins if b.count]))
    return _table(rows) + bins


def _calibration(inputs: ReportInputs) -> str:
    """How sure the model is against how often it is right, when the endpoint gives probabilities."""
    calibration = calibration_of(inputs.evaluation)
    if calibration is None:
        return ("<p>This scoring script returns labels only: how sure the model is of its answers cannot be "
                "measured.</p>")
    picture = to_png(reliability_diagram(calibration, f"{inputs.deployment.name} on {inputs.set_title}"))
    return (f"<p class='big'><span id='ece'>{calibration.ece:.1%}</span> expected calibration error</p>"
            f"<p>{_e(calibration.summary())}</p>" + _png(picture, "reliability diagram")
            + "<p class='muted'>Bars: the share of answers right in each band of confidence; the dashed diagonal is "
              "where a perfectly calibrated model's bars would end (its \"90 % sure\" answers right 90 % of the "
              "time). Red lines: the mean confidence in that band. Beneath: how many answers each band holds."
              "</p>")


def _accuracy(inputs: ReportInputs) -> str:
    evaluation = inputs.evaluation
    support = evaluation.confusion.sum(axis=1)
    rows = [[_e(label), f"{int(support[i]):,}", f"{evaluation.precision[i]:.2%}", f"{evaluation.recall[i]:.2%}"]
            for i, label in enumerate(evaluation.labels)]
    heatmap = to_png(confusion_heatmap(evaluation, f"{inputs.deployment.name} on {inputs.set_title}"))
    return (f"<p class='big'><span id='accuracy'>{evaluation.accuracy:.2%}</span> accuracy on "
            f"{_items(inputs.testset, evaluation.n)} of {_e(inputs.set_title)}"
            + (f" <span class='muted'>(scored {_e(_when(inputs.evaluated_at))})</span>" if inputs.evaluated_at else "")
            + "</p><div class='two'><div>" + _grid(["class", inputs.testset.rows_noun + "s", "precision", "recall"], rows)
            + "</div><div>" + _png(heatmap, "normalised confusion heatmap")
            + "<p class='muted'>Rows normalised, diagonal zeroed: the brighter a cell, the more often that true "
              "label was taken for that predicted one.</p></div></div>")


def _confused(inputs: ReportInputs) -> str:
    evaluation, testset = inputs.evaluation, inputs.testset
    if not evaluation.most_confused:
        return f"<p>No {testset.rows_noun} was misclassified.</p>"
    parts = []
    position = {label: i for i, label in enumerate(evaluation.labels)}
    for pair in evaluation.most_confused:
        shown = evaluation.cell(position[pair.true_label], position[pair.predicted_label])[:EXAMPLES_PER_PAIR]
        parts.append(f"<h3>{_e(pair)}</h3>" + _examples(testset, evaluation, shown, f"examples of {pair}"))
    return "".join(parts)


def _examples(testset: TestSet, evaluation: Evaluation, shown: np.ndarray, words: str) -> str:
    """Test items `shown` with what the model said: a grid of images, or a table's rows."""
    confidence = evaluation.confidence
    sure = None if confidence is None else confidence[shown]
    if testset.feature_names is not None:
        return rows_html(row_table(testset.X[shown], testset.feature_names, shown, testset.y[shown],
                                   evaluation.predictions[shown], testset.class_names, sure,
                                   categories=testset.categories))
    assert testset.image_shape is not None  # a set is images or a table
    return _png(to_png(image_grid(testset.X[shown], testset.image_shape, testset.y[shown], evaluation.predictions[shown],
                                  testset.class_names, sure, value_range=testset.value_range)), words)


def _items(testset: TestSet, n: int) -> str:
    """ "10,000 images", "143 rows"."""
    return f"{n:,} {testset.rows_noun}{'' if n == 1 else 's'}"


def _strip(inputs: ReportInputs) -> str:
    evaluation, testset = inputs.evaluation, inputs.testset
    shown = np.sort(np.random.default_rng(0).choice(len(testset), size=min(STRIP_SIZE, len(testset)), replace=False))
    right = int(np.count_nonzero(evaluation.predictions[shown] == testset.y[shown]))
    how = ("each row with its prediction and true label, misclassified ones in red" if testset.is_table else
           "each image titled <i>prediction (true label)</i>, misclassified ones in red on an inverted colormap")
    return f"<p>{right} of {len(shown)} right — {how}.</p>" + _examples(testset, evaluation, shown, "random predictions")


def _flagged(flagged: FlaggedCases) -> str:
    """Each flagged case with its right label, what the deployment says of it now, the tester's note and where it
    came from."""
    data, said = flagged.testset, flagged.evaluation.predictions
    right = int((said == data.y).sum())
    head = (f"<p>{right} of {len(data)} cases flagged by testers are answered right now. Each is kept exactly as it "
            "was scored when flagged; wrong answers are red.</p>")
    if data.image_shape is not None:
        picture = _png(to_png(case_grid(data.X, data.image_shape, data.y, data.class_names, said,
                                        value_range=data.value_range)), "the flagged cases")
    else:
        picture = rows_html(row_table(data.X, data.feature_names or (), np.arange(len(data)), data.y, said,
                                      data.class_names, categories=data.categories))
    rows = [[str(k + 1), _e(class_name(data.class_names, int(data.y[k]))),
             _e(class_name(data.class_names, int(said[k]))), _e(case.note), _e(case.source.describe())]
            for k, case in enumerate(flagged.cases)]
    return head + picture + _grid(["#", "right label", "said now", "note", "from"], rows).replace(
        "class='grid'", "class='grid words'")


def _load_test(load: Mapping[str, Any] | None) -> str:
    if load is None:
        return "<p>No load test has been run on this deployment yet (Deploy page, or <code>modeldeck loadtest</code>).</p>"
    rows = [("Requests per second", f"<span id='rps'>{float(load['requests_per_second']):,.0f}</span>"),
            ("Latency p50 / p90 / p99", _e(f"{float(load['p50_ms']):.1f} / {float(load.get('p90_ms', float('nan'))):.1f}"
                                           f" / {float(load['p99_ms']):.1f} ms")),
            ("Errors", _e(f"{int(load['errors']):,} of {int(load.get('requests', 0)):,} requests")),
            ("Concurrent clients", _e(load.get("concurrency", "-"))),
            ("Duration", _e(f"{float(load.get('seconds', 0)):g} s")), ("Run", _e(_when(load.get("started_at"))))]
    return _table(rows) + ("<p class='muted'>Single-row requests from ModelDeck's load generator on the same "
                           "machine (127.0.0.1).</p>")


def _comparison(inputs: ReportInputs, comparison: Comparison) -> str:
    testset = inputs.testset
    rows = [[_e(c.label), f"{c.n:,}", f"{c.recall_a:.2%}", f"{c.recall_b:.2%}", f"{c.change * 100:+.2f}"]
            for c in comparison.per_class]
    sides = _grid(["", "deployment", "model", "accuracy"],
                  [[side, _e(s.deployment), _e(s.model), f"{s.accuracy:.2%}"]
                   for side, s in (("A", comparison.a), ("B", comparison.b))])
    heatmap = to_png(difference_heatmap(comparison))
    parts = [sides, f"<p class='verdict'>{_e(comparison.verdict())}</p>",
             "<div class='two'><div>" + _grid(["class", testset.rows_noun + "s", "recall A", "recall B", "change (points)"], rows)
             + "</div><div>" + _png(heatmap, "difference of the normalised confusion matrices") + "</div></div>"]
    for kind, words in DISAGREEMENT_KINDS.items():
        found = comparison.disagreements(kind)
        parts.append(f"<h3>{_e(words)}: {_items(testset, len(found))}</h3>")
        if not len(found):
            continue
        shown = found[:EXAMPLES_PER_PAIR * 2]
        if testset.feature_names is not None:
            parts.append(rows_html(row_table(testset.X[shown], testset.feature_names, shown, testset.y[shown],
                                             comparison.predictions_a[shown], testset.class_names,
                                             answers=(("B said", comparison.predictions_b[shown]),),
                                             heading="A said", categories=testset.categories)))
        else:
            assert testset.image_shape is not None
            parts.append(_png(to_png(disagreement_grid(testset.X[shown], testset.image_shape, testset.y[shown],
                                                       comparison.predictions_a[shown], comparison.predictions_b[shown],
                                                       testset.class_names, value_range=testset.value_range)), words))
    return "".join(parts)


_STYLE = """
body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;
color:#1d2330}
h1{margin-bottom:.2em}h2{border-bottom:2px solid #2f4b7c;padding-bottom:.2em;margin-top:2em}
.muted{color:#5f6b7a;font-size:.9em}.big{font-size:1.6em}.verdict{font-size:1.15em;background:#eef3fb;padding:.8em}
table{border-collapse:collapse;margin:.5em 0}th,td{padding:.3em .8em;text-align:left;border-bottom:1px solid #dde3ea}
table.kv th{width:16em;color:#3b4656}table.grid td{text-align:right}table.grid td:first-child{text-align:left}table.words td{text-align:left}
img{max-width:100%}.two{display:flex;gap:2em;flex-wrap:wrap;align-items:flex-start}
.two>div:first-child{flex:none;max-width:100%}.two>div{flex:1;min-width:260px}
code{font-size:.85em;word-break:break-all}
.summary{display:flex;gap:1em;flex-wrap:wrap;margin:1.2em 0}.summary div{background:#eef3fb;padding:.7em 1.2em;
border-radius:6px}.summary b{display:block;font-size:1.8em;color:#2f4b7c}.summary span{color:#5f6b7a}
@page{size:A4;margin:14mm 12mm}
@media print{body{max-width:none;margin:0;padding:0;font-size:10pt}h2{margin-top:1.2em}
h1,h2,h3,h2+p,h3+p{break-after:avoid}table,img,.summary,.verdict,p.big,.whole{break-inside:avoid}.two>div{min-width:220px}}
"""


def _summary(inputs: ReportInputs) -> str:
    """The figures a stakeholder asks for first, large."""
    figures = [(f"{inputs.evaluation.accuracy:.2%}", f"accuracy on {inputs.set_title}")]
    calibration = calibration_of(inputs.evaluation)
    if calibration is not None:
        figures.append((f"{calibration.ece:.1%}", "expected calibration error"))
    if inputs.load_test is not None:
        figures += [(f"{float(inputs.load_test['requests_per_second']):,.0f}/s", "requests in the load test"),
                    (f"{float(inputs.load_test['p99_ms']):.1f} ms", "p99 latency in the load test")]
    if inputs.comparison is not None:
        c = inputs.comparison
        figures.append((f"{c.delta * 100:+.2f} points", f"against {c.a.deployment}, p "
                        + ("< 0.001" if c.p_value < 0.001 else f"= {c.p_value:.3f}")))
    return "<div class='summary'>" + "".join(f"<div><b>{_e(v)}</b><span>{_e(k)}</span></div>"
                                             for v, k in figures) + "</div>"


CALIBRATION_TITLE, STRIP_TITLE = "How sure, and how often right (calibration)", "Random predictions"
# Short sections with one picture, printed on one page: a heading never stands apart from its picture
KEPT_WHOLE, WHOLE = (CALIBRATION_TITLE, STRIP_TITLE), " class='whole'"


def render(inputs: ReportInputs) -> str:
    """The report as one HTML document."""
    d = inputs.deployment
    sections = [("Model card", _model_card(inputs.model, d)), ("Deployment", _configuration(d)),
                (f"Accuracy on {inputs.set_title}", _accuracy(inputs)),
                (CALIBRATION_TITLE, _calibration(inputs)),
                ("Most confused pairs", _confused(inputs)), (STRIP_TITLE, _strip(inputs)),
                ("Load test", _load_test(inputs.load_test))]
    if inputs.flagged is not None:
        sections.append(("Flagged cases", _flagged(inputs.flagged)))
    if inputs.comparison is not None:
        c = inputs.comparison
        sections.append((f"Compared: {c.a.deployment} (A) and {c.b.deployment} (B)", _comparison(inputs, c)))
    body = _summary(inputs) + "".join(
        f"<section{WHOLE if title in KEPT_WHOLE else ''}><h2>{_e(title)}</h2>{content}</section>"
        for title, content in sections)
    body += f"<section id='appendix'><h2>Appendix: technical details</h2>{_appendix(inputs)}</section>"
    generated = _when(inputs.generated_at or datetime.now(UTC).isoformat(timespec="seconds"))
    return ("<!doctype html><html lang='en'><head><meta charset='utf-8'>"
            f"<title>ModelDeck report — {_e(d.name)}</title><style>{_STYLE}</style></head><body>"
            f"<h1>{_e(d.name)} — {_e(d.model_id)}</h1>"
            f"<p class='muted'>Report by ModelDeck, {_e(generated)}. Test set: {_e(inputs.set_title)} "
            f"({_items(inputs.testset, len(inputs.testset))}).</p>{body}</body></html>")


def to_pdf(document: str, chromium: str | None = None) -> bytes:
    """The HTML document printed to PDF by headless Chromium (offline: the document has no external asset).

    Raises:
        ReportError: no Chromium, or it failed.
    """
    browser = chromium or shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        raise ReportError("no Chromium to print the PDF with: apt-get install chromium (the HTML report needs none)")
    with tempfile.TemporaryDirectory(prefix="modeldeck-report-") as tmp:
        source, target = Path(tmp) / "report.html", Path(tmp) / "report.pdf"
        source.write_text(document, encoding="utf-8")
        try:
            done = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--no-pdf-header-footer",
                                   f"--user-data-dir={tmp}/profile", f"--print-to-pdf={target}", source.as_uri()],
                                  capture_output=True, text=True, timeout=PDF_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            raise ReportError(f"Chromium did not print the PDF within {PDF_TIMEOUT_S} s") from None
        if done.returncode != 0 or not target.is_file():
            raise ReportError(f"Chromium could not print the PDF (exit {done.returncode}): "
                              + (done.stderr.strip().splitlines() or ["no message"])[-1])
        return target.read_bytes()
