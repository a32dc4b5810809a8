"""Interactive charts (Altair specs; the dashboard renders them and reads the clicks)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np

from .calibration import Calibration
from .compare import Comparison
from .evaluation import Evaluation
from .ticks import percent_ticks

CELL, TRUE_CLASS, PREDICTED_CLASS = "cell", "true_class", "predicted_class"  # the selections' names
CALIBRATION_WIDTH = 480  # px: the reliability diagram fits beside nothing, at 1024 px wide too


def class_axis(labels: Sequence[str]) -> alt.Axis:
    """An axis of class names that shows every one: level for short names (digits), slanted for long
    ones ("T-shirt/top"), which level would hide behind each other."""
    return alt.Axis(labelAngle=-45 if max(map(len, labels), default=1) > 2 else 0, labelFontSize=13,
                    labelOverlap=False)


def confusion_chart(evaluation: Evaluation, counts: bool = False) -> alt.HConcatChart:
    """The normalised confusion matrix (rows normalised, diagonal zeroed) as a clickable heatmap, with
    the errors per true label beside it and per predicted label below, each clickable too.

    A click on a cell selects `CELL` (fields `true`, `predicted`: label indices); a bar of the row
    margin selects `TRUE_CLASS` (`true`), of the column margin `PREDICTED_CLASS` (`predicted`).
    With `counts`, each cell shows its count.
    """
    labels = list(evaluation.labels)
    n = len(labels)
    brightest = float(evaluation.normalized.max()) or 1.0
    ticks = percent_ticks(0.0, brightest)  # distinct labels: "0.0% 0.5% 1.0% 1.5%", never "0% 1% 1% 2%"
    cells = [{"true": i, "predicted": j, "true label": labels[i], "predicted label": labels[j],
              "share": float(evaluation.normalized[i, j]), "count": int(evaluation.confusion[i, j]),
              "what": "right answers (not shaded)" if i == j else
              f"{evaluation.normalized[i, j]:.1%} of the true {labels[i]}s",
              "light": bool(evaluation.normalized[i, j] > 0.55 * brightest)} for i in range(n) for j in range(n)]
    off = evaluation.confusion.copy()
    np.fill_diagonal(off, 0)
    rows = [{"true": i, "true label": labels[i], "errors": int(off[i].sum())} for i in range(n)]
    columns = [{"predicted": j, "predicted label": labels[j], "errors": int(off[:, j].sum())} for j in range(n)]
    cell = alt.selection_point(name=CELL, fields=["true", "predicted"], on="click", clear="dblclick")
    by_true = alt.selection_point(name=TRUE_CLASS, fields=["true"], on="click", clear="dblclick")
    by_predicted = alt.selection_point(name=PREDICTED_CLASS, fields=["predicted"], on="click", clear="dblclick")
    order = alt.Sort(labels)
    side = max(260, 34 * n)
    x = alt.X("predicted label:N", sort=order, title="predicted label", axis=class_axis(labels))
    y = alt.Y("true label:N", sort=order, title="true label", axis=alt.Axis(labelFontSize=13))
    tooltip: list[Any] = ["true label:N", "predicted label:N", alt.Tooltip("count:Q", title="images"),
                          alt.Tooltip("what:N", title="share")]
    base = alt.Chart(alt.Data(values=cells))
    heat = base.mark_rect(stroke="white", strokeWidth=0.5).encode(
        x=x, y=y, tooltip=tooltip,
        # The diagonal (right answers) is zeroed in the matrix: grey, so it never reads as "fewest errors"
        color=alt.condition("datum.true == datum.predicted", alt.value("#e6e6e6"),
                            alt.Color("share:Q", scale=alt.Scale(scheme="viridis", domain=[0, brightest]),
                                      title="share of the true label's images",
                                      legend=alt.Legend(format=ticks.d3_format, values=list(ticks.values),
                                                        orient="top", gradientLength=200, titleLimit=400))),
        opacity=alt.condition(cell, alt.value(1.0), alt.value(0.55)),
    ).add_params(cell).properties(width=side, height=side)
    layers: list[Any] = [heat]
    if counts:
        layers.append(base.mark_text(fontSize=11).encode(
            x=x, y=y, text=alt.Text("count:Q"),
            color=alt.condition("datum.light || datum.true == datum.predicted", alt.value("black"),
                                alt.value("white"))))
    matrix = alt.layer(*layers)
    margin_color = alt.value("#c0392b")
    right = alt.Chart(alt.Data(values=rows)).mark_bar(color="#c0392b").encode(
        y=alt.Y("true label:N", sort=order, axis=None), x=alt.X("errors:Q", title="errors by true label"),
        tooltip=["true label:N", "errors:Q"],
        opacity=alt.condition(by_true, alt.value(1.0), alt.value(0.5)), color=margin_color,
    ).add_params(by_true).properties(width=110, height=side)
    below = alt.Chart(alt.Data(values=columns)).mark_bar().encode(
        x=alt.X("predicted label:N", sort=order, axis=None), y=alt.Y("errors:Q", title="errors as this label"),
        tooltip=["predicted label:N", "errors:Q"],
        opacity=alt.condition(by_predicted, alt.value(1.0), alt.value(0.5)), color=margin_color,
    ).add_params(by_predicted).properties(width=side, height=90)
    return alt.hconcat(alt.vconcat(matrix, below, spacing=4), right, spacing=4).resolve_scale(color="independent")


def probability_bars(probabilities: np.ndarray, class_names: tuple[str, ...]) -> alt.Chart:
    """One bar per class: the model's probability for it, the most likely one highlighted."""
    best = int(np.argmax(probabilities))
    values = [{"class": class_names[i], "probability": float(p), "best": i == best}
              for i, p in enumerate(probabilities)]
    return alt.Chart(alt.Data(values=values)).mark_bar().encode(
        x=alt.X("class:N", sort=list(class_names), axis=class_axis(class_names), title=None),
        y=alt.Y("probability:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%")),
        color=alt.condition("datum.best", alt.value("#2f4b7c"), alt.value("#a5b4cf")),
        tooltip=["class:N", alt.Tooltip("probability:Q", format=".1%")],
    ).properties(height=220)


def robustness_chart(points: tuple[tuple[float, float], ...], label: str, unit: str) -> alt.Chart:
    """Accuracy against the strength of one perturbation: (strength, accuracy) pairs."""
    values = [{"strength": s, "accuracy": a} for s, a in points]
    return alt.Chart(alt.Data(values=values)).mark_line(point=True, color="#2f4b7c").encode(
        x=alt.X("strength:Q", title=f"{label} ({unit})"),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%")),
        tooltip=[alt.Tooltip("strength:Q"), alt.Tooltip("accuracy:Q", format=".2%")],
    ).properties(height=260)


def difference_chart(comparison: Comparison) -> alt.Chart:
    """B's normalised confusion matrix minus A's as a clickable heatmap on a diverging scale centred on
    zero: red where B makes that mistake more often, blue where less; the diagonal (zeroed) grey.
    A click on a cell selects `CELL` (fields `true`, `predicted`)."""
    labels = list(comparison.labels)
    n = len(labels)
    delta = comparison.confusion_delta
    reach = float(np.abs(delta).max()) or 0.01
    ticks = percent_ticks(-reach, reach, signed=True)
    cells = [{"true": i, "predicted": j, "true label": labels[i], "predicted label": labels[j],
              "change": float(delta[i, j]),
              "what": "right answers (not compared here)" if i == j else
              f"{comparison.b.deployment} takes true {labels[i]} for {labels[j]} {abs(delta[i, j]) * 100:.1f} points "
              f"{'more' if delta[i, j] > 0 else 'less'} often than {comparison.a.deployment}"
              if delta[i, j] != 0 else "no change"} for i in range(n) for j in range(n)]
    cell = alt.selection_point(name=CELL, fields=["true", "predicted"], on="click", clear="dblclick")
    order = alt.Sort(labels)
    side = max(260, 34 * n)
    return alt.Chart(alt.Data(values=cells)).mark_rect(stroke="white", strokeWidth=0.5).encode(
        x=alt.X("predicted label:N", sort=order, axis=class_axis(labels)),
        y=alt.Y("true label:N", sort=order, axis=alt.Axis(labelFontSize=13, labelOverlap=False)),
        color=alt.condition("datum.true == datum.predicted", alt.value("#e6e6e6"),
                            alt.Color("change:Q", title="B − A (share of the true label)",
                                      scale=alt.Scale(scheme="redblue", reverse=True, domain=[-reach, reach],
                                                      domainMid=0),
                                      legend=alt.Legend(format=ticks.d3_format, values=list(ticks.values),
                                                        orient="top", gradientLength=220,
                                                        titleLimit=400))),
        opacity=alt.condition(cell, alt.value(1.0), alt.value(0.55)),
        tooltip=["true label:N", "predicted label:N", alt.Tooltip("change:Q", format="+.1%", title="B − A"),
                 alt.Tooltip("what:N", title="in words")],
    # "pad": width and height are the matrix's own (square cells, as the Test page's); under the "fit" the
    # dashboard gives a single chart, the legend and axes came out of the height and squashed the matrix
    ).add_params(cell).properties(width=side, height=side, autosize=alt.AutoSizeParams(type="pad"))


def recall_change_chart(comparison: Comparison) -> alt.Chart:
    """Per class, B's recall minus A's: blue bars up where B finds more of that class, red down where fewer."""
    values = [{"class": c.label, "change": c.change, "recall A": c.recall_a, "recall B": c.recall_b}
              for c in comparison.per_class]
    return alt.Chart(alt.Data(values=values)).mark_bar().encode(
        x=alt.X("class:N", sort=list(comparison.labels), axis=class_axis(comparison.labels), title=None),
        y=alt.Y("change:Q", axis=alt.Axis(format="+.0%"), title="recall, B − A"),
        color=alt.condition("datum.change >= 0", alt.value("#2166ac"), alt.value("#b2182b")),
        tooltip=["class:N", alt.Tooltip("recall A:Q", format=".2%"), alt.Tooltip("recall B:Q", format=".2%"),
                 alt.Tooltip("change:Q", format="+.2%")],
    ).properties(height=220)


def reliability_chart(calibration: Calibration) -> alt.VConcatChart:
    """The reliability diagram: per confidence bin, the share of answers right (bars) against the
    diagonal of a perfectly calibrated model, the mean confidence as a red line across each bin and, beneath,
    the number of answers per bin (every figure in the tooltips)."""
    values = [{"from": b.low, "to": b.high, "answers": b.count, "right": b.accuracy, "sure": b.confidence,
               "bin": f"{b.low:.0%}–{b.high:.0%}", "gap": b.gap} for b in calibration.bins if b.count]
    ticks = percent_ticks(0.0, 1.0, target=5)
    x = alt.X("from:Q", scale=alt.Scale(domain=[0, 1]), title="confidence in the answer given",
              axis=alt.Axis(values=list(ticks.values), format=ticks.d3_format))
    tooltip: list[Any] = [alt.Tooltip("bin:N", title="confidence"), alt.Tooltip("answers:Q", format=","),
                          alt.Tooltip("right:Q", format=".1%", title="share right"),
                          alt.Tooltip("sure:Q", format=".1%", title="mean confidence"),
                          alt.Tooltip("gap:Q", format="+.1%", title="confidence − share right")]
    base = alt.Chart(alt.Data(values=values))
    # rects from 0 (a bar with x and x2 both quantitative would be drawn as a thin line at its value)
    bars = base.mark_rect(color="#2f4b7c", stroke="white", strokeWidth=0.5).encode(
        x=x, x2="to:Q", y=alt.Y("right:Q", scale=alt.Scale(domain=[0, 1]), title="share of answers right",
                                axis=alt.Axis(values=list(ticks.values), format=ticks.d3_format)),
        y2=alt.datum(0), tooltip=tooltip)
    sure = base.mark_rule(color="#c0392b", strokeWidth=3).encode(x="from:Q", x2="to:Q", y="sure:Q", tooltip=tooltip)
    diagonal = alt.Chart(alt.Data(values=[{"from": 0.0, "right": 0.0}, {"from": 1.0, "right": 1.0}])).mark_line(
        color="#5f6b7a", strokeDash=[6, 4]).encode(x="from:Q", y="right:Q")
    top = alt.layer(bars, sure, diagonal).properties(height=260, width=CALIBRATION_WIDTH)
    counts = base.mark_rect(color="#a5b4cf", stroke="white", strokeWidth=0.5).encode(
        x=alt.X("from:Q", scale=alt.Scale(domain=[0, 1]), axis=None), x2="to:Q",
        y=alt.Y("answers:Q", title="answers", axis=alt.Axis(format=",d", tickCount=3)), y2=alt.datum(0),
        tooltip=tooltip)
    labels = base.mark_text(dy=-6, fontSize=10).encode(
        x=alt.X("middle:Q"), y="answers:Q", text=alt.Text("answers:Q", format=",")).transform_calculate(
        middle="(datum.from + datum.to) / 2")
    return alt.vconcat(top, alt.layer(counts, labels).properties(height=90, width=CALIBRATION_WIDTH), spacing=6)
