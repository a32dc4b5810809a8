"""The Test page's what-if editor for a table's rows: start from a test row or the median row, move any column
and watch the prediction follow; the probability of a class along one column; each column's contribution to the
answer; the nearest test row the deployment puts in another class. A fragment: an edit reruns this section alone.
Beneath it, which columns matter on the whole set (permutation importance).

The start is in the address (`?whatif=17`; none for the median row), so a reload or a shared link opens the
same row; the edits are the session's."""

from __future__ import annotations

import numpy as np
import streamlit as st

from backend.data.testset import TestSet
from backend.errors import ModelDeckError
from backend.inspection.evaluation import class_name
from backend.inspection.explain import SCALES
from backend.inspection.interactive_charts import (
    contribution_chart,
    dependence_chart,
    importance_chart,
    probability_bars,
)
from backend.inspection.whatif import Change, Control
from backend.runtimes.base import Deployment
from backend.services.explaining import REPEATS, explain_row, permutation_importance
from backend.services.whatif import (
    RowPrediction,
    controls_of,
    counterfactual,
    dependence,
    predict_row,
    set_predictions,
    start_row,
)
from backend.shown import shown
from dashboard.cases_view import flag_own
from dashboard.common import get_deck, scoring_failed, verbatim

PARAM = "whatif"
MEDIAN, TEST_ROW = "the median row", "a test row"
EDITOR_HEIGHT = 430  # px: the editor scrolls beside the prediction, both in view at 1024x768
CONTROL_HEIGHT = 95  # px a row of two controls takes (a slider with its label and ends)
IMPORTANCE_SHOWN = 15  # columns in the importance chart


@st.cache_data(max_entries=16, show_spinner=False)
def controls_for(name: str, revision: int, columns: tuple[str, ...], _data: TestSet) -> tuple[Control, ...]:
    """The set's controls, once per set (its revision) and column order (the model's)."""
    return controls_of(_data)


@st.cache_resource(max_entries=8, show_spinner="Scoring the test set once, for its predictions…")
def predictions_for(uid: str, name: str, revision: int, _deployment: Deployment, _data: TestSet) -> np.ndarray:
    """What the deployment (by uid: a replaced one is another) predicts for each row of the set."""
    return set_predictions(get_deck(), _deployment, _data)


@st.cache_resource(max_entries=32, show_spinner=False)
def start_prediction(uid: str, name: str, revision: int, start: int | None, _deployment: Deployment,
                     _data: TestSet) -> RowPrediction:
    """What the deployment says of the editor's start (a row, or the median row when None), once per start."""
    return predict_row(get_deck(), _deployment, _data, start_row(_data, start))


def _linked_row(rows: int) -> int | None:
    """The address's start row, None for the median row; a bad one is said and dropped."""
    text = st.query_params.get(PARAM)
    if text is None:
        return None
    if text.isdigit() and int(text) < rows:
        return int(text)
    st.warning(verbatim(f"The address asks for row {text!r}; this test set has rows 0 to {rows - 1}. Starting "
                        "from the median row."), icon=":material/warning:")
    st.query_params.pop(PARAM, None)
    return None


def _edit_row(index: int) -> None:
    """Starts the editor from test row `index` (the counterfactual's button)."""
    st.session_state["whatif_from"] = TEST_ROW
    st.session_state["whatif_row"] = index


def _undo() -> None:
    st.session_state["whatif_generation"] = st.session_state.get("whatif_generation", 0) + 1


def _follow(name: str) -> None:
    """The dependence curve turns to the column just edited."""
    st.session_state["whatif_feature"] = name


def _widget(control: Control, value: float, key: str) -> float:
    """The control's widget, starting at `value`: a toggle for 0/1, a whole-number or stepped slider, a choice of
    a text column's categories."""
    label = verbatim(control.name)
    name = (control.name,)
    if control.kind == "category":
        known = control.categories
        start = int(value) if 0 <= value < len(known) and value == int(value) else int(control.median)
        return float(st.selectbox(label, range(len(known)), start, format_func=lambda k: shown(known[k]), key=key,
                                  help=f"Text: {len(known):,} categories; the test set's most common is "
                                       f"{verbatim(known[int(control.median)])}.", on_change=_follow, args=name))
    helped = (f"Test set: {control.seen_low:.6g} to {control.seen_high:.6g}, median {control.median:.6g}, "
              f"standard deviation {control.spread:.4g}.")
    if control.kind == "binary":
        return 1.0 if st.toggle(label, bool(value), key=key, help=helped, on_change=_follow, args=name) else 0.0
    if control.kind == "whole":
        return float(st.slider(label, int(control.low), int(control.high), int(control.clipped(value)), 1, key=key,
                               help=helped, on_change=_follow, args=name))
    return float(st.slider(label, control.low, control.high, control.clipped(value), control.step, key=key,
                           help=helped, on_change=_follow, args=name,
                           format="%.4g"))  # 87.32, 0.0961, 1761: as the set writes them


def _choose_class() -> None:
    """The curve and the explanation keep the class chosen, whatever the edits make the prediction."""
    st.session_state["whatif_class_chosen"] = True


def _shown(data: TestSet, column: int, value: float) -> str:
    """A value as the editor shows it: a category's name, a number as the sliders write it."""
    text = data.value_text(column, value)
    return text if isinstance(text, str) else f"{text:.4g}"


def _difference(change: Change) -> str:
    """A counterfactual's difference in a column, for people."""
    if change.category:
        return "another category"
    return f"{change.spreads:+.2f}" if abs(change.spreads) >= 0.005 else ("+" if change.spreads > 0 else "-") + "<0.01"


@st.fragment
def whatif_view(deployment: Deployment, data: TestSet, name: str, revision: int) -> None:
    """The editor, the prediction it follows, the dependence curve and the counterfactual (see the module)."""
    deck = get_deck()
    assert data.feature_names is not None  # the Test page shows it for tables only
    the_controls = controls_for(name, revision, data.feature_names, data)
    if "whatif_from" not in st.session_state:  # a new session (a reload, a link): the address's start
        linked = _linked_row(len(data))
        st.session_state["whatif_from"] = MEDIAN if linked is None else TEST_ROW
        st.session_state["whatif_row"] = linked or 0
    s1, s2, s3 = st.columns([2, 1, 1], vertical_alignment="bottom")
    start_kind = s1.segmented_control("Start from", [MEDIAN, TEST_ROW], key="whatif_from", required=True)
    index = int(s2.number_input("Row", 0, len(data) - 1, key="whatif_row", disabled=start_kind != TEST_ROW))
    s3.button("Undo edits", on_click=_undo, icon=":material/undo:", key="whatif_undo", width="stretch")
    start = index if start_kind == TEST_ROW else None
    if st.query_params.get(PARAM) != (None if start is None else str(start)):  # written only when it changes
        if start is None:
            del st.query_params[PARAM]
        else:
            st.query_params[PARAM] = str(start)
    original = start_row(data, start)
    prefix = f"whatif/{name}/{revision}/{start}/{st.session_state.get('whatif_generation', 0)}"
    editor, answer = st.columns([3, 2])
    with editor.container(height=min(EDITOR_HEIGHT, CONTROL_HEIGHT * -(-len(the_controls) // 2) + 40), border=True):
        halves = st.columns(2)
        values = []
        for j, control in enumerate(the_controls):
            with halves[j % 2]:
                values.append(_widget(control, float(original[j]), f"{prefix}/{j}"))
    row = np.array(values, dtype=data.X.dtype)
    changed = [j for j in range(len(row)) if row[j] != original[j]]
    try:
        prediction = predict_row(deck, deployment, data, row)
        before = start_prediction(deployment.record.uid, name, revision, start, deployment, data)
    except ModelDeckError as e:
        scoring_failed(e, deployment)
        return
    with answer:
        said = class_name(data.class_names, prediction.predicted)
        sure = prediction.confidence
        st.metric("Prediction", said, f"{sure:.1%} sure" if sure is not None else None, delta_color="off",
                  delta_arrow="off")
        where = f"row {start} (true label {class_name(data.class_names, int(data.y[start]))})" if start is not None \
            else "the median row"
        if changed:
            was = class_name(data.class_names, before.predicted)
            st.caption(verbatim(f"{len(changed)} of {len(row)} columns changed from {where}, which was predicted "
                                f"{was}" + (f" ({before.confidence:.1%})" if before.confidence is not None else "")
                                + ": " + "; ".join(f"{the_controls[j].name} {_shown(data, j, original[j])} → "
                                                   f"{_shown(data, j, row[j])}" for j in changed)))
        else:
            st.caption(verbatim(f"As {where}: move a column and the prediction follows."))
        if prediction.probabilities is None:
            st.caption("This scoring script returns labels only: no probabilities.")
        else:
            st.vega_lite_chart(spec=probability_bars(prediction.probabilities, data.class_names, height=180))
        flag_own(deployment, data, row, prediction.predicted, "what-if", "whatif/flag")  # the row as edited
    names = [c.name for c in the_controls]
    d1, d2 = st.columns(2)
    if st.session_state.get("whatif_feature") not in names:  # a new set (its columns are others)
        st.session_state.pop("whatif_feature", None)
    feature = d1.selectbox("How the answer moves with", names, key="whatif_feature", format_func=verbatim)
    if not st.session_state.get("whatif_class_chosen"):  # the predicted class, until one is chosen
        st.session_state["whatif_class"] = prediction.predicted
    of = d2.selectbox("Probability of", range(len(data.class_names)), format_func=lambda k: class_name(data.class_names, k),
                      key="whatif_class", on_change=_choose_class)
    try:
        curve = dependence(deck, deployment, data, row, feature)
    except ModelDeckError as e:
        scoring_failed(e, deployment)
        return
    column = names.index(feature)
    st.vega_lite_chart(spec=dependence_chart(curve, of, (the_controls[column].seen_low, the_controls[column].seen_high)))
    st.caption(verbatim(f"Blue: this row with {feature} set to each category; grey: the mean over {curve.averaged} "
                        "random test rows set likewise (partial dependence)." if curve.categories else
                        f"The solid line is this row with {feature} set to each value; the dashed one the mean over "
                        f"{curve.averaged} random test rows set likewise (partial dependence). Grey: values the test "
                        "set does not have.") + (" The endpoint gives labels only: 100 % where that class is "
                                                 "predicted." if curve.from_labels else ""))
    if st.toggle("Explain this prediction: each column's contribution", key="whatif_explain"):
        explain_view(deployment, data, row, of, from_labels=prediction.probabilities is None)
    if st.toggle("Show the nearest test row the deployment puts in another class", key="whatif_counterfactual"):
        try:
            predictions = predictions_for(deployment.record.uid, name, revision, deployment, data)
        except ModelDeckError as e:
            scoring_failed(e, deployment)
            return
        nearest = counterfactual(data, predictions, row, prediction.predicted)
        if nearest is None:
            st.info(verbatim(f"The deployment predicts every test row as {said}: no row of another class."))
            return
        started_there = " (the row you started from: your edits changed its answer)" if nearest.index == start else ""
        st.markdown(verbatim(f"Nearest: {nearest.describe(data.class_names)}{started_there}; {nearest.differing} of "
                             f"{len(row)} columns differ (the distance is the root mean square of their differences, "
                             "each in its column's standard deviations). Those that differ most:"))
        st.dataframe([{"column": c.name, "this row": _shown(data, names.index(c.name), c.this),
                       f"row {nearest.index}": _shown(data, names.index(c.name), c.other),
                       "difference (standard deviations)": _difference(c)} for c in nearest.changes], hide_index=True)
        st.button(f"Edit row {nearest.index}", on_click=_edit_row, args=(nearest.index,), icon=":material/edit:",
                  key="whatif_edit_nearest")


def explain_view(deployment: Deployment, data: TestSet, row: np.ndarray, class_index: int, *, from_labels: bool) -> None:
    """The edited row's Shapley values for the class the curve shows, on the scale chosen."""
    scale = st.segmented_control("Scale", SCALES, key="whatif_scale", default="probability", required=True,
                                 disabled=from_labels, help="log-odds: where a linear model's contributions add up "
                                 "exactly (a logistic regression's are its weights times the distance to the "
                                 "average row)")
    try:
        explanation = explain_row(get_deck(), deployment, data, row, class_index=class_index,
                                  scale="probability" if from_labels else scale)
    except ModelDeckError as e:
        scoring_failed(e, deployment)
        return
    name = class_name(data.class_names, class_index)
    if explanation.scale == "probability":
        what = f"share predicted {name}" if explanation.from_labels else f"P({name})"
        said = (f"{what} is {explanation.output:.1%} for this row and {explanation.base:.1%} on average over "
                f"{explanation.background} random test rows: the bars add up to the difference, "
                f"{(explanation.output - explanation.base) * 100:+.1f} points.")
    else:
        said = (f"The log-odds of {name} are {explanation.output:+.2f} for this row and {explanation.base:+.2f} on "
                f"average over {explanation.background} random test rows: the bars add up to the difference, "
                f"{explanation.output - explanation.base:+.2f}.")
    how = ("Every ordering of the columns gave the same contributions: on this scale the model adds up one term per "
           "column, and these are its exact Shapley values." if explanation.exact else
           f"Shapley values estimated from {explanation.orderings} orderings of the columns (each column switched "
           "from a test row's value to this row's in turn); whiskers: two standard errors.")
    if explanation.saturated:
        how += (f" {explanation.saturated:,} of the rows scored got a probability of exactly 0 or 1, past the "
                "endpoint's precision: their log-odds are bounds, and so are these contributions.")
    st.vega_lite_chart(spec=contribution_chart(explanation, data.class_names))
    scale_note = ("" if explanation.scale == "probability" else " The average is of the log-odds, not of the "
                  "probabilities: the difference can have another sign than on the probability scale.")
    st.caption(verbatim(f"Blue bars push toward {name}, red ones away. {said} {how}{scale_note}"))


@st.fragment
def importance_view(deployment: Deployment, data: TestSet, name: str, revision: int) -> None:
    """Which columns matter on the whole set: accuracy lost with each one shuffled (on a click; kept for the
    session, by the deployment's uid)."""
    assert data.feature_names is not None
    kept = f"importance/{deployment.record.uid}/{name}/{revision}"
    columns = len(data.feature_names)
    if st.button(f"Shuffle each of the {columns} columns {REPEATS} times over the {len(data):,} rows and score",
                 icon=":material/bar_chart:", key="importance_go"):
        bar = st.progress(0.0, text="Scoring…")
        try:
            st.session_state[kept] = permutation_importance(
                get_deck(), deployment, data,
                progress=lambda done, total: bar.progress(done / total, text=f"{done} of {total} columns shuffled"))
        except ModelDeckError as e:
            scoring_failed(e, deployment)
        bar.empty()
    importance = st.session_state.get(kept)
    if importance is None:
        st.caption("How much each column matters to the deployment on the whole test set: the accuracy it loses when "
                   "that column's values are shuffled across the rows (the other columns as they are).")
        return
    st.vega_lite_chart(spec=importance_chart(importance, IMPORTANCE_SHOWN))
    charted = min(IMPORTANCE_SHOWN, len(importance.feature_names))
    sampled = "" if importance.rows == len(data) else f" (a random {importance.rows:,} of them)"
    st.caption(verbatim(f"Accuracy {importance.accuracy:.2%} on the {importance.rows:,} rows{sampled} as they are; "
                        f"each bar is the mean loss over {importance.repeats} shuffles of that column, the whisker one "
                        "standard deviation"
                        + (f"; the {charted} columns that matter most of {len(importance.feature_names)}" if
                           charted < len(importance.feature_names) else "")
                        + ". Columns that say the same thing share their importance: shuffling one leaves the other "
                        "to answer."))
