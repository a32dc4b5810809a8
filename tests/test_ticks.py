"""Colour-bar ticks of the heatmaps: distinct labels, as percentages, with just enough decimals."""

import pytest

from backend.inspection.ticks import percent_ticks


def test_a_scale_up_to_1_75_percent_reads_in_halves_of_a_percent_not_0_1_1_2():
    ticks = percent_ticks(0.0, 0.0175)
    assert ticks.labels == ("0.0%", "0.5%", "1.0%", "1.5%")
    assert ticks.d3_format == ".1%"


@pytest.mark.parametrize(("high", "expected"), [
    (0.4, ("0%", "10%", "20%", "30%", "40%")),
    (1.0, ("0%", "50%", "100%")),
    (0.062, ("0%", "2%", "4%", "6%")),
    (0.0018, ("0.00%", "0.05%", "0.10%", "0.15%")),
    (0.00031, ("0.00%", "0.01%", "0.02%", "0.03%")),
])
def test_ticks_are_round_steps_and_never_two_alike(high, expected):
    ticks = percent_ticks(0.0, high)
    assert ticks.labels == expected
    assert len(set(ticks.labels)) == len(ticks.labels)
    assert all(0.0 <= v <= high for v in ticks.values)


def test_a_difference_scale_is_signed_and_symmetric_around_zero():
    ticks = percent_ticks(-0.012, 0.012, signed=True)
    assert ticks.labels == ("-1%", "0%", "+1%")
    assert ticks.d3_format == "+.0%"
    assert percent_ticks(-0.004, 0.004, signed=True).labels == ("-0.4%", "-0.2%", "0.0%", "+0.2%", "+0.4%")


def test_a_scale_of_one_value_gets_one_tick():
    assert percent_ticks(0.0, 0.0).labels == ("0%",)
    assert percent_ticks(0.0, float("nan")).labels == ("0%",)


def _evaluation_with_rare_errors():
    """Ten classes of 400 images; class 0 taken for 1 seven times (1.75 %), class 2 for 3 twice (0.5 %)."""
    import numpy as np

    from backend.inspection.evaluation import evaluate

    y_true = np.repeat(np.arange(10), 400)
    y_pred = y_true.copy()
    y_pred[:7] = 1
    y_pred[800:802] = 3
    return evaluate(y_true, y_pred, tuple(str(i) for i in range(10)))


def test_the_interactive_heatmap_s_colour_bar_has_distinct_percent_ticks():
    from backend.inspection.interactive_charts import confusion_chart

    spec = confusion_chart(_evaluation_with_rare_errors())
    legends = [enc["color"]["condition"] if "condition" in enc["color"] and "legend" not in enc["color"]
               else enc["color"] for enc in _encodings(spec) if "color" in enc]
    legend = next(c["legend"] for c in legends if isinstance(c, dict) and "legend" in c)
    assert legend["format"] == ".1%" and legend["values"] == [0.0, 0.005, 0.01, 0.015]


def _encodings(node):
    if isinstance(node, dict):
        if "encoding" in node:
            yield node["encoding"]
        for value in node.values():
            yield from _encodings(value)
    elif isinstance(node, list):
        for value in node:
            yield from _encodings(value)


def test_the_report_heatmap_s_colour_bar_reads_in_percent_not_0_0175():
    from backend.inspection.figures import confusion_heatmap

    figure = confusion_heatmap(_evaluation_with_rare_errors())
    bar_axes = figure.axes[-1]
    assert [t.get_text() for t in bar_axes.get_yticklabels()] == ["0.0%", "0.5%", "1.0%", "1.5%"]
