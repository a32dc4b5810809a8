"""Interactive charts (Vega-Lite specs; the dashboard renders them and reads the clicks).

The confusion matrix and the reliability diagram, drawn after every scoring, are written as plain
Vega-Lite dicts: Altair validates every channel against the schema as a chart is made, 0.2-0.4 s for
each of these two on these machines. Their tests validate them against the schema once. The others
are Altair charts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import altair as alt
import numpy as np

from ..shown import shown
from .calibration import Calibration
from .compare import Comparison
from .evaluation import Evaluation
from .explain import Explanation, Importance
from .ticks import percent_ticks
from .whatif import Dependence

CELL, TRUE_CLASS, PREDICTED_CLASS = "cell", "true_class", "predicted_class"  # the selections' names
CALIBRATION_WIDTH = 480  # px: the reliability diagram fits beside nothing, at 1024 px wide too


def class_axis_spec(labels: Sequence[str]) -> dict[str, Any]:
    """An axis of class names that shows every one: level for short names (digits), slanted for long
    ones ("T-shirt/top"), which level would hide behind each other."""
    return {"labelAngle": -45 if max(map(len, labels), default=1) > 2 else 0, "labelFontSize": 13,
            "labelOverlap": False}


def class_axis(labels: Sequence[str]) -> alt.Axis:
    """`class_axis_spec` for an Altair chart."""
    return alt.Axis(**class_axis_spec(labels))


def _click(name: str, fields: list[str], view: str) -> dict[str, Any]:
    """A point selection `name` of `fields`, made by a click on `view` and cleared by a double-click."""
    return {"name": name, "select": {"type": "point", "fields": fields, "on": "click", "clear": "dblclick"},
            "views": [view]}


def _when(param: str, chosen: float, other: float) -> dict[str, Any]:
    """An opacity: `chosen` for what selection `param` holds (everything while it is empty), else `other`."""
    return {"condition": {"param": param, "value": chosen}, "value": other}


def confusion_chart(evaluation: Evaluation, counts: bool = False, noun: str = "image") -> dict[str, Any]:
    """The normalised confusion matrix (rows normalised, diagonal zeroed) as a clickable heatmap, with
    the errors per true label beside it and per predicted label below, each clickable too: a Vega-Lite
    spec (for `st.vega_lite_chart`).

    A click on a cell selects `CELL` (fields `true`, `predicted`: label indices); a bar of the row
    margin selects `TRUE_CLASS` (`true`), of the column margin `PREDICTED_CLASS` (`predicted`).
    With `counts`, each cell shows its count; `noun` is what the test set holds ("image", "row").
    """
    labels = [shown(label) for label in evaluation.labels]
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
    side = max(260, 34 * n)
    x = {"field": "predicted label", "type": "nominal", "sort": labels, "title": "predicted label",
         "axis": class_axis_spec(labels)}
    y = {"field": "true label", "type": "nominal", "sort": labels, "title": "true label", "axis": {"labelFontSize": 13}}
    tooltip = [{"field": "true label", "type": "nominal"}, {"field": "predicted label", "type": "nominal"},
               {"field": "count", "type": "quantitative", "title": f"{noun}s"},
               {"field": "what", "type": "nominal", "title": "share"}]
    # The diagonal (right answers) is zeroed in the matrix: grey, so it never reads as "fewest errors"
    color = {"condition": {"test": "datum.true == datum.predicted", "value": "#e6e6e6"}, "field": "share",
             "type": "quantitative", "scale": {"scheme": "viridis", "domain": [0, brightest]},
             "title": f"share of the true label's {noun}s",
             "legend": {"format": ticks.d3_format, "values": list(ticks.values), "orient": "top", "gradientLength": 200,
                        "titleLimit": 400}}
    layers: list[dict[str, Any]] = [
        {"name": "matrix", "mark": {"type": "rect", "stroke": "white", "strokeWidth": 0.5},
         "encoding": {"x": x, "y": y, "tooltip": tooltip, "color": color, "opacity": _when(CELL, 1.0, 0.55)}}]
    if counts:
        layers.append({"mark": {"type": "text", "fontSize": 11}, "encoding": {
            "x": x, "y": y, "text": {"field": "count", "type": "quantitative"},
            "color": {"condition": {"test": "datum.light || datum.true == datum.predicted", "value": "black"},
                      "value": "white"}}})
    matrix = {"data": {"values": cells}, "layer": layers, "width": side, "height": side}
    by_true = {"name": "by_true", "data": {"values": rows}, "mark": {"type": "bar", "color": "#c0392b"},
               "encoding": {"y": {"field": "true label", "type": "nominal", "sort": labels, "axis": None},
                            "x": {"field": "errors", "type": "quantitative", "title": "errors by true label",
                                  "axis": {"tickMinStep": 1, "format": "d"}},
                            "tooltip": [{"field": "true label", "type": "nominal"},
                                        {"field": "errors", "type": "quantitative"}],
                            "opacity": _when(TRUE_CLASS, 1.0, 0.5), "color": {"value": "#c0392b"}},
               "width": 110, "height": side}
    by_predicted = {"name": "by_predicted", "data": {"values": columns}, "mark": {"type": "bar"},
                    "encoding": {"x": {"field": "predicted label", "type": "nominal", "sort": labels, "axis": None},
                                 "y": {"field": "errors", "type": "quantitative", "title": "errors as this label",
                                       "axis": {"tickMinStep": 1, "format": "d"}},
                                 "tooltip": [{"field": "predicted label", "type": "nominal"},
                                             {"field": "errors", "type": "quantitative"}],
                                 "opacity": _when(PREDICTED_CLASS, 1.0, 0.5), "color": {"value": "#c0392b"}},
                    "width": side, "height": 90}
    return {"$schema": alt.SCHEMA_URL, "spacing": 4,
            "hconcat": [{"vconcat": [matrix, by_predicted], "spacing": 4}, by_true],
            "params": [_click(CELL, ["true", "predicted"], "matrix"),
                       _click(PREDICTED_CLASS, ["predicted"], "by_predicted"),
                       _click(TRUE_CLASS, ["true"], "by_true")],
            "resolve": {"scale": {"color": "independent"}}}


def probability_bars(probabilities: np.ndarray, class_names: tuple[str, ...], height: int = 220) -> dict[str, Any]:
    """One bar per class: the model's probability for it, the most likely one highlighted: a Vega-Lite spec
    (drawn on every edit of the what-if: no Altair validation on the way)."""
    best = int(np.argmax(probabilities))
    names = [shown(name) for name in class_names]
    values = [{"class": names[i], "probability": float(p), "best": i == best} for i, p in enumerate(probabilities)]
    return {"$schema": alt.SCHEMA_URL, "data": {"values": values}, "mark": {"type": "bar"}, "height": height,
            "encoding": {"x": {"field": "class", "type": "nominal", "sort": names, "axis": class_axis_spec(names),
                               "title": None},
                         "y": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]},
                               "axis": {"format": ".0%"}},
                         "color": {"condition": {"test": "datum.best", "value": "#2f4b7c"}, "value": "#a5b4cf"},
                         "tooltip": [{"field": "class", "type": "nominal"},
                                     {"field": "probability", "type": "quantitative", "format": ".1%"}]}}


def duel_bars(first: np.ndarray, second: np.ndarray, class_names: tuple[str, ...], names: tuple[str, str],
              height: int = 220) -> dict[str, Any]:
    """Two deployments' probabilities for one input, side by side per class (one colour each, the legend naming
    them): a Vega-Lite spec the full width of the page, so the classes stay readable on a projector."""
    labels = [shown(name) for name in class_names]
    values = [{"class": labels[i], "deployment": name, "probability": float(p)}
              for name, probabilities in zip(names, (first, second), strict=True) for i, p in enumerate(probabilities)]
    return {"$schema": alt.SCHEMA_URL, "data": {"values": values}, "mark": {"type": "bar"}, "height": height,
            "encoding": {"x": {"field": "class", "type": "nominal", "sort": labels, "axis": class_axis_spec(labels),
                               "title": None},
                         "xOffset": {"field": "deployment", "type": "nominal", "sort": list(names)},
                         "y": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]},
                               "axis": {"format": ".0%", "title": None}},  # its width to the bars: a half column
                         "color": {"field": "deployment", "type": "nominal", "sort": list(names),
                                   "scale": {"range": ["#2f4b7c", "#f58518"]},
                                   "legend": {"orient": "top", "title": None}},
                         "tooltip": [{"field": "deployment", "type": "nominal"}, {"field": "class", "type": "nominal"},
                                     {"field": "probability", "type": "quantitative", "format": ".1%"}]}}


def split_bar(weights: tuple[tuple[str, int], ...]) -> dict[str, Any]:
    """An endpoint's traffic split as one bar across the page, a segment per deployment carrying traffic, labelled
    with its name and share: a Vega-Lite spec."""
    values = [{"deployment": shown(name), "share": weight, "index": k, "label": f"{shown(name)} {weight}%"}
              for k, (name, weight) in enumerate((n, w) for n, w in weights if w > 0)]
    order = [v["deployment"] for v in values]
    scale = {"domain": [0, 100]}
    return {"$schema": alt.SCHEMA_URL, "data": {"values": values}, "height": 44,
            "transform": [{"stack": "share", "groupby": [], "sort": [{"field": "index"}], "as": ["start", "end"]},
                          {"calculate": "(datum.start + datum.end) / 2", "as": "middle"}],
            "layer": [{"mark": {"type": "bar", "height": 40},
                       "encoding": {"x": {"field": "start", "type": "quantitative", "scale": scale, "axis": None},
                                    "x2": {"field": "end"},
                                    "color": {"field": "deployment", "type": "nominal", "sort": order, "legend": None,
                                              "scale": {"scheme": "tableau10"}},
                                    "tooltip": [{"field": "deployment", "type": "nominal"},
                                                {"field": "share", "type": "quantitative", "title": "share, %"}]}},
                      {"mark": {"type": "text", "color": "white", "fontSize": 16, "fontWeight": "bold"},
                       "encoding": {"x": {"field": "middle", "type": "quantitative", "scale": scale, "axis": None},
                                    "text": {"field": "label", "type": "nominal"}}}]}


def robustness_chart(points: tuple[tuple[float, float], ...], label: str, unit: str) -> alt.Chart:
    """Accuracy against the strength of one perturbation: (strength, accuracy) pairs."""
    values = [{"strength": s, "accuracy": a} for s, a in points]
    whole = all(float(s).is_integer() for s, _ in points)  # a count (columns set to their median): no 0.5 ticks
    return alt.Chart(alt.Data(values=values)).mark_line(point=True, color="#2f4b7c").encode(
        x=alt.X("strength:Q", title=f"{label} ({unit})",
                axis=alt.Axis(tickMinStep=1, format="d") if whole else alt.Axis()),
        y=alt.Y("accuracy:Q", scale=alt.Scale(domain=[0, 1]), axis=alt.Axis(format=".0%")),
        tooltip=[alt.Tooltip("strength:Q"), alt.Tooltip("accuracy:Q", format=".2%")],
    ).properties(height=260)


def difference_chart(comparison: Comparison) -> alt.Chart:
    """B's normalised confusion matrix minus A's as a clickable heatmap on a diverging scale centred on
    zero: red where B makes that mistake more often, blue where less; the diagonal (zeroed) grey.
    A click on a cell selects `CELL` (fields `true`, `predicted`)."""
    labels = [shown(label) for label in comparison.labels]
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


def reliability_chart(calibration: Calibration) -> dict[str, Any]:
    """The reliability diagram: per confidence bin, the share of answers right (bars) against the
    diagonal of a perfectly calibrated model, the mean confidence as a red line across each bin and, beneath,
    the number of answers per bin (every figure in the tooltips): a Vega-Lite spec."""
    values = [{"from": b.low, "to": b.high, "answers": b.count, "right": b.accuracy, "sure": b.confidence,
               "bin": f"{b.low:.0%}–{b.high:.0%}", "gap": b.gap} for b in calibration.bins if b.count]
    ticks = percent_ticks(0.0, 1.0, target=5)
    whole = {"domain": [0, 1]}
    percent_axis = {"values": list(ticks.values), "format": ticks.d3_format}
    x = {"field": "from", "type": "quantitative", "scale": whole, "title": "confidence in the answer given",
         "axis": percent_axis}
    tooltip = [{"field": "bin", "type": "nominal", "title": "confidence"},
               {"field": "answers", "type": "quantitative", "format": ","},
               {"field": "right", "type": "quantitative", "format": ".1%", "title": "share right"},
               {"field": "sure", "type": "quantitative", "format": ".1%", "title": "mean confidence"},
               {"field": "gap", "type": "quantitative", "format": "+.1%", "title": "confidence − share right"}]
    data = {"values": values}
    # rects from 0 (a bar with x and x2 both quantitative would be drawn as a thin line at its value)
    bars = {"data": data, "mark": {"type": "rect", "color": "#2f4b7c", "stroke": "white", "strokeWidth": 0.5},
            "encoding": {"x": x, "x2": {"field": "to"},
                         "y": {"field": "right", "type": "quantitative", "scale": whole,
                               "title": "share of answers right", "axis": percent_axis},
                         "y2": {"datum": 0}, "tooltip": tooltip}}
    sure = {"data": data, "mark": {"type": "rule", "color": "#c0392b", "strokeWidth": 3},
            "encoding": {"x": {"field": "from", "type": "quantitative"}, "x2": {"field": "to"},
                         "y": {"field": "sure", "type": "quantitative"}, "tooltip": tooltip}}
    diagonal = {"data": {"values": [{"from": 0.0, "right": 0.0}, {"from": 1.0, "right": 1.0}]},
                "mark": {"type": "line", "color": "#5f6b7a", "strokeDash": [6, 4]},
                "encoding": {"x": {"field": "from", "type": "quantitative"},
                             "y": {"field": "right", "type": "quantitative"}}}
    counts = {"mark": {"type": "rect", "color": "#a5b4cf", "stroke": "white", "strokeWidth": 0.5},
              "encoding": {"x": {"field": "from", "type": "quantitative", "scale": whole, "axis": None},
                           "x2": {"field": "to"},
                           "y": {"field": "answers", "type": "quantitative", "title": "answers",
                                 "axis": {"format": ",d", "tickCount": 3}},
                           "y2": {"datum": 0}, "tooltip": tooltip}}
    labels = {"mark": {"type": "text", "dy": -6, "fontSize": 10},
              "transform": [{"calculate": "(datum.from + datum.to) / 2", "as": "middle"}],
              "encoding": {"x": {"field": "middle", "type": "quantitative"},
                           "y": {"field": "answers", "type": "quantitative"},
                           "text": {"field": "answers", "type": "quantitative", "format": ","}}}
    return {"$schema": alt.SCHEMA_URL, "spacing": 6, "vconcat": [
        {"layer": [bars, sure, diagonal], "height": 260, "width": CALIBRATION_WIDTH},
        {"data": data, "layer": [counts, labels], "height": 90, "width": CALIBRATION_WIDTH}]}


def dependence_chart(dependence: Dependence, class_index: int, seen: tuple[float, float]) -> dict[str, Any]:
    """The probability of one class against one column: the edited row's curve (ICE), the mean over rows of the
    set (partial dependence, dashed), a rule at the row's value, and grey beyond the values the set has (`seen`):
    a Vega-Lite spec (drawn on every edit: no Altair validation on the way)."""
    name = shown(dependence.class_names[class_index])
    what = f"share predicted {name}" if dependence.from_labels else f"P({name})"
    feature = shown(dependence.feature)
    curves = ["this row", f"average of {dependence.averaged} test rows"]
    values = [{"value": float(v), "curve": curve, "probability": float(p[class_index])}
              for curve, answers in zip(curves, (dependence.row, dependence.average), strict=True)
              for v, p in zip(dependence.grid, answers, strict=True)]
    if dependence.categories:
        return _category_dependence(dependence, values, curves, what, feature)
    low, high = float(dependence.grid[0]), float(dependence.grid[-1])
    x = {"field": "value", "type": "quantitative", "title": feature,
         "scale": {"domain": [low, high], "nice": False, "zero": False}}
    outside = [band for band in ({"from": low, "to": seen[0]}, {"from": seen[1], "to": high}) if band["to"] > band["from"]]
    bands = {"data": {"values": outside}, "mark": {"type": "rect", "color": "#f0f0f0"},
             "encoding": {"x": {"field": "from", "type": "quantitative"}, "x2": {"field": "to"},
                          "tooltip": {"value": "values the test set does not have"}}}
    lines = {"data": {"values": values}, "mark": {"type": "line", "point": True},
             "encoding": {"x": x,
                          "y": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]},
                                "axis": {"format": ".0%"}, "title": what},
                          "color": {"field": "curve", "type": "nominal", "title": None, "legend": {"orient": "top"},
                                    "scale": {"domain": curves, "range": ["#2f4b7c", "#9a9a9a"]}},
                          "strokeDash": {"field": "curve", "type": "nominal", "legend": None,
                                         "scale": {"domain": curves, "range": [[1, 0], [5, 4]]}},
                          "tooltip": [{"field": "curve", "type": "nominal"},
                                      {"field": "value", "type": "quantitative", "format": ".4g", "title": feature},
                                      {"field": "probability", "type": "quantitative", "format": ".1%", "title": what}]}}
    now = {"data": {"values": [{"value": dependence.value}]}, "mark": {"type": "rule", "color": "#b3261e"},
           "encoding": {"x": {"field": "value", "type": "quantitative"},
                        "tooltip": {"field": "value", "type": "quantitative", "format": ".4g",
                                    "title": "this row's value"}}}
    return {"$schema": alt.SCHEMA_URL, "layer": [bands, lines, now], "height": 260}


def _category_dependence(dependence: Dependence, values: list[dict[str, Any]], curves: list[str], what: str,
                         feature: str) -> dict[str, Any]:
    """`dependence_chart` for a text column: a point per category (no line between them: they have no order), the
    row's own category marked."""
    names = [shown(name) for name in dependence.categories]
    for point in values:
        point["category"] = names[int(point["value"])]
    domain = [names[int(v)] for v in dependence.grid]
    x = {"field": "category", "type": "nominal", "title": feature, "sort": domain, "scale": {"domain": domain},
         "axis": {"labelAngle": -30 if len(domain) > 6 else 0}}
    marks = {"data": {"values": values}, "mark": {"type": "point", "filled": True, "size": 90},
             "encoding": {"x": x,
                          "y": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]},
                                "axis": {"format": ".0%"}, "title": what},
                          "color": {"field": "curve", "type": "nominal", "title": None, "legend": {"orient": "top"},
                                    "scale": {"domain": curves, "range": ["#2f4b7c", "#9a9a9a"]}},
                          "shape": {"field": "curve", "type": "nominal", "legend": None,
                                    "scale": {"domain": curves, "range": ["circle", "diamond"]}},
                          "tooltip": [{"field": "curve", "type": "nominal"}, {"field": "category", "title": feature},
                                      {"field": "probability", "type": "quantitative", "format": ".1%", "title": what}]}}
    own = int(dependence.value)
    layers: list[dict[str, Any]] = [marks]
    if 0 <= own < len(names) and names[own] in domain:
        layers.insert(0, {"data": {"values": [{"category": names[own]}]}, "mark": {"type": "rule", "color": "#b3261e"},
                          "encoding": {"x": {"field": "category", "type": "nominal", "sort": domain,
                                             "scale": {"domain": domain}},
                                       "tooltip": {"field": "category", "title": "this row's value"}}})
    return {"$schema": alt.SCHEMA_URL, "layer": layers, "height": 260}


def contribution_chart(explanation: Explanation, class_names: tuple[str, ...], top: int = 12) -> dict[str, Any]:
    """Each column's contribution to one row's output, the largest `top` as bars (blue toward the class, red away,
    with two standard errors as a whisker) and the rest as one bar: a Vega-Lite spec."""
    points = explanation.scale == "probability"
    shown_format = "+.1%" if points else "+.3f"
    ranked = explanation.ranked()
    bars = [{"column": f"{shown(explanation.feature_names[j])} = {shown(explanation.value_text(j))}",
             "contribution": float(explanation.contributions[j]),
             "low": float(explanation.contributions[j] - 2 * explanation.errors[j]),
             "high": float(explanation.contributions[j] + 2 * explanation.errors[j]),
             "error": float(explanation.errors[j])} for j in ranked[:top]]
    rest = ranked[top:]
    if len(rest):
        total = float(explanation.contributions[rest].sum())
        bars.append({"column": f"the other {len(rest)} columns" if len(rest) > 1 else "the other column",
                     "contribution": total, "low": total, "high": total,
                     "error": 0.0})
    name = shown(class_names[explanation.class_index])
    what = (f"share predicted {name}" if explanation.from_labels else f"P({name})") if points else f"log-odds of {name}"
    order = [bar["column"] for bar in bars]
    y = {"field": "column", "type": "nominal", "sort": order, "title": None, "axis": {"labelLimit": 260}}
    x = {"field": "contribution", "type": "quantitative", "axis": {"format": shown_format, "tickCount": 6},
         "title": f"contribution to {what}"}
    return {"$schema": alt.SCHEMA_URL, "data": {"values": bars}, "height": {"step": 22}, "layer": [
        {"mark": {"type": "bar"},
         "encoding": {"y": y, "x": x,
                      "color": {"condition": {"test": "datum.contribution >= 0", "value": "#2166ac"}, "value": "#b2182b"},
                      "tooltip": [{"field": "column", "type": "nominal"},
                                  {"field": "contribution", "type": "quantitative", "format": shown_format},
                                  {"field": "error", "type": "quantitative", "format": ".2g",
                                   "title": "standard error"}]}},
        {"mark": {"type": "rule", "color": "#444"},
         "encoding": {"y": y, "x": {"field": "low", "type": "quantitative"}, "x2": {"field": "high"}}}]}


def importance_chart(importance: Importance, top: int = 15) -> dict[str, Any]:
    """The columns that matter most: each one's fall in accuracy when shuffled (the largest `top`), with its
    spread over the repeats as a whisker: a Vega-Lite spec."""
    bars = [{"column": shown(importance.feature_names[j]), "drop": float(importance.drops[j]),
             "low": float(importance.drops[j] - importance.spreads[j]),
             "high": float(importance.drops[j] + importance.spreads[j]), "spread": float(importance.spreads[j])}
            for j in importance.ranked(top)]
    y = {"field": "column", "type": "nominal", "sort": [bar["column"] for bar in bars], "title": None,
         "axis": {"labelLimit": 260}}
    x = {"field": "drop", "type": "quantitative", "axis": {"format": ".1%"},
         "title": "accuracy lost with the column shuffled"}
    return {"$schema": alt.SCHEMA_URL, "data": {"values": bars}, "height": {"step": 22}, "layer": [
        {"mark": {"type": "bar", "color": "#2f4b7c"},
         "encoding": {"y": y, "x": x,
                      "tooltip": [{"field": "column", "type": "nominal"},
                                  {"field": "drop", "type": "quantitative", "format": ".2%", "title": "accuracy lost"},
                                  {"field": "spread", "type": "quantitative", "format": ".2%",
                                   "title": "standard deviation over the shuffles"}]}},
        {"mark": {"type": "rule", "color": "#444"},
         "encoding": {"y": y, "x": {"field": "low", "type": "quantitative"}, "x2": {"field": "high"}}}]}
