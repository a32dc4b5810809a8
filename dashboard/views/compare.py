"""Compare page: two deployments (or model versions, deployed on the fly) scored on one test set —
who is better, where, whether it could be chance, and the images they disagree on.

A, B and the test set live in the URL (?a=...&b=...&dataset=...); the comparison is made from both
deployments' kept scorings of that set, so a reload or a shared link shows it again.
"""

import json

import numpy as np
import streamlit as st

from backend.data.testset import TestSet
from backend.errors import ModelDeckError
from backend.inspection.compare import DISAGREEMENT_KINDS, Comparison
from backend.inspection.figures import disagreement_grid, to_png
from backend.inspection.interactive_charts import CELL, difference_chart, recall_change_chart
from backend.inspection.rows import row_table
from backend.progress import ProgressEvent
from backend.runtimes.base import DeploymentState
from backend.services import kept
from backend.services.comparing import (
    compare_choices,
    compare_deployments,
    contender,
    kept_comparison,
    why_incomparable,
)
from backend.services.reports import make_report, report_pdf
from backend.services.testsets import choose_testset, fitting_testsets, for_model
from backend.shown import shown
from backend.timefmt import friendly_time
from dashboard.common import (
    Notice,
    cannot_answer,
    choose,
    get_deck,
    no_answer_said,
    nothing_chosen,
    percent,
    points,
    presenting,
    remembered,
    revision_of,
    scoring_failed,
    share_decimals,
    show_notice,
    snapshot,
    testset,
    url_select,
    verbatim,
)
from dashboard.tables import show_rows

deck = get_deck()
listing = snapshot()
st.title("Compare")
st.caption("Score one test set at two deployments — or two model versions, deployed on the fly — and see which "
           "is better, where, and whether the difference could be chance.")

said = no_answer_said()  # the deployment the last comparison got no answer from, said above (once)
choices = compare_choices(deck, listing.healthy)
healthy, versions, options = choices.deployments, choices.versions, choices.options
if len(options) < 2:
    for choice, param in (("compare_a", "a"), ("compare_b", "b")):  # a chosen deployment that cannot answer: why
        if (wanted := remembered(choice, param)) and wanted != said and (found := listing.find(wanted)) \
                and found.state is not DeploymentState.HEALTHY:
            show_notice(cannot_answer(found))
    st.info("Two things to compare are needed: register or deploy another model version (Models, Deploy).",
            icon=":material/compare_arrows:")
    st.stop()


def describe(option: str) -> str:
    if option in healthy:
        return f"{option} — {healthy[option].model_id} on {healthy[option].runtime}"
    return f"{option} — not deployed: deploys it to compare"


def gone(lost: str) -> str | Notice | None:
    if lost == said:
        return None  # said above
    if (found := listing.find(lost)) is not None:
        return cannot_answer(found)
    served_by = next((d.name for d in healthy.values() if d.model_id == lost), None)
    if served_by is not None:
        return verbatim(f"{lost} is deployed as {served_by}: choose {served_by}.")
    return verbatim(f"{lost!r} is not a Healthy deployment or a registered version here (any more): choose again.")


first, second = choices.default_a, choices.default_b
left, right = st.columns(2)
a = url_select("A — the one you have", options, "a", key="compare_a", container=left, default=first,
               format_func=describe, gone=gone)
b = url_select("B — the challenger", options, "b", key="compare_b", container=right, default=second,
               format_func=describe, gone=gone)
if a is None or b is None:
    nothing_chosen("A and B")
if a == b:
    st.warning("A and B are the same: choose two different ones.", icon=":material/warning:")
    st.stop()
models = [choices.models[a], choices.models[b]]
why = why_incomparable(models[0], models[1])
if why is not None:
    st.warning(verbatim(f"{a} and {b} cannot be compared: {why}. Choose two versions of one model, or models "
                        "that predict the same classes."), icon=":material/warning:")
    st.stop()
fitting = fitting_testsets(deck, *models).fitting
if not fitting:
    st.warning("No test set fits both models: they take different inputs or labels.", icon=":material/warning:")
    st.stop()
titles = {info.name: shown(info.title) for info in fitting}
dataset = url_select("Test set", list(titles), "dataset", key="compare_dataset", format_func=titles.__getitem__,
                     gone=lambda lost: verbatim(f"Test set {lost!r} does not fit both: choose another."))
if dataset is None:
    nothing_chosen("a test set")

to_deploy = [option for option in (a, b) if option in versions]
if st.button(f"Compare on {titles[dataset]}" + (f" (deploys {' and '.join(to_deploy)} first)" if to_deploy else ""),
             type="primary", icon=":material/compare_arrows:", key="compare_run"):
    with st.status("Comparing…", expanded=True) as status:
        bar = st.progress(0.0)

        def show(event: ProgressEvent) -> None:
            status.write(verbatim(str(event)))

        failed, sides = None, [healthy[option] for option in (a, b) if option in healthy]
        try:
            sides = [contender(deck, option, progress=show) for option in (a, b)]
            for option, side in zip((a, b), sides, strict=True):
                if option in versions:
                    choose("compare_a" if option == a else "compare_b", side.name)
            chosen_set = choose_testset(deck, *models, requested=dataset)
            names = [side.name for side in sides]

            def scored(name: str, done: int, total: int) -> None:
                bar.progress((names.index(name) * total + done) / (2 * total),
                             text=verbatim(f"{name}: scored {done:,} of {total:,}"))

            compare_deployments(deck, sides[0], sides[1], chosen_set, source="dashboard compare", progress=scored)
            status.update(label="Compared", state="complete", expanded=False)
        except ModelDeckError as e:
            status.update(label="Comparing failed", state="error", expanded=False)
            failed = e
    if failed is not None:
        scoring_failed(failed, *sides)  # in the open, not inside the folded status box
        st.stop()
    st.rerun()  # the selects now name the deployments made on the fly; the result is read back below

if a not in healthy or b not in healthy:
    st.info(f"Press **Compare**: {' and '.join(to_deploy)} will be deployed (default configuration) and then both "
            "scored.", icon=":material/info:")
    st.stop()
kept_pair = kept_comparison(deck, healthy[a], healthy[b], dataset)
if kept_pair is None:
    st.info(verbatim(f"Press Compare to score {titles[dataset]} at {a} and {b}."), icon=":material/info:")
    st.stop()
comparison: Comparison = kept_pair  # declared: the fragments below do not see the narrowing
data = for_model(testset(dataset, revision_of(dataset)), models[0])  # as it was scored: A's columns and classes


@st.cache_data(show_spinner=False, max_entries=32)
def grid_png(uids: tuple[str, str], dataset: str, revisions: tuple[int, int], shown: tuple[int, ...],
             _data: TestSet, _comparison: Comparison) -> bytes:
    """The picture of test images `shown` with what A and B said (drawn once per kept result pair)."""
    indices = np.asarray(shown, dtype=np.int64)
    assert _data.image_shape is not None  # a table's rows are shown as a table
    return to_png(disagreement_grid(_data.X[indices], _data.image_shape, _data.y[indices],
                                    _comparison.predictions_a[indices], _comparison.predictions_b[indices],
                                    _data.class_names, value_range=_data.value_range))


def gallery(indices: np.ndarray, key: str) -> None:
    per_page = 30
    if len(indices) == 0:
        st.caption("none")
        return
    page = 1
    if len(indices) > per_page:
        pages = (len(indices) + per_page - 1) // per_page
        page = int(st.columns([1, 4])[0].number_input(f"Page (of {pages})", 1, pages, 1, key=f"page/{key}"))
    shown = tuple(int(i) for i in indices[(page - 1) * per_page:page * per_page])
    if data.feature_names is not None:  # a table's rows, with what each said
        rows = np.asarray(shown, dtype=np.int64)
        show_rows(row_table(data.X[rows], data.feature_names, rows, data.y[rows], comparison.predictions_a[rows],
                            data.class_names, answers=(("B said", comparison.predictions_b[rows]),), heading="A said",
                            categories=data.categories))
        return
    uids = (healthy[a].record.uid, healthy[b].record.uid)
    revisions = (kept.revision(deck, healthy[a], dataset, "evaluation"),
                 kept.revision(deck, healthy[b], dataset, "evaluation"))
    st.image(grid_png(uids, dataset, revisions, shown, data, comparison), width="stretch")
    st.caption("Test images " + ", ".join(f"#{i}" for i in shown[:12]) + (" …" if len(shown) > 12 else ""))


items = f"{comparison.noun}s"  # "images", or a table's "rows"
m1, m2, m3, m4 = st.columns(4)
m1.metric(f"A · {a}", percent(comparison.a.accuracy), help=f"{comparison.a.model}: accuracy on {comparison.n:,} {items}")
m2.metric(f"B · {b}", percent(comparison.b.accuracy), points(comparison.delta) if comparison.delta else "no change",
          delta_color="normal" if comparison.delta else "off", delta_arrow="auto" if comparison.delta else "off",
          help=f"{comparison.b.model}: accuracy on {comparison.n:,} {items}; the change is B − A")
m3.metric("Disagreements", f"{comparison.n_disagree:,}", help=comparison.disagreement_words())  # fits at 1024
m4.metric("p-value (McNemar)", "< 0.001" if comparison.p_value < 0.001 else f"{comparison.p_value:.3f}",
          help=comparison.test)
(st.success if comparison.significant else st.info)(verbatim(comparison.verdict(share_decimals())),
                                                    icon=":material/balance:")  # as precise as the metrics above
saved = [kept.saved_at(deck, healthy[side], dataset, "evaluation") for side in (a, b)]
if not presenting():  # when each was scored: technical detail
    st.caption(verbatim(f"{titles[dataset]}: {a} scored {friendly_time(saved[0])}, {b} scored "
                        f"{friendly_time(saved[1])}."))

by_class, changed, disagree = st.tabs(["Per class", "What changed", "Where they disagree"])
with by_class:
    st.altair_chart(recall_change_chart(comparison), width="stretch")
    st.dataframe([{"class": c.label, items: c.n, f"recall A ({a})": f"{c.recall_a:.2%}",
                   f"recall B ({b})": f"{c.recall_b:.2%}", "change": f"{c.change * 100:+.2f} points"}
                  for c in comparison.per_class], hide_index=True, width="stretch")


@st.fragment
def changes_view() -> None:
    st.caption("B's normalised confusion matrix minus A's (rows normalised, diagonal zeroed): **red** — B takes "
               "that true label for that predicted one more often than A; **blue** — less often. Click a cell for "
               f"its {items}; double-click clears.")
    event = st.altair_chart(difference_chart(comparison), on_select="rerun", key=f"difference/{a}/{b}/{dataset}",
                            width="content", selection_mode=[CELL])
    points = event.get("selection", {}).get(CELL, []) if isinstance(event, dict) else []
    if points:
        true, predicted = int(points[0]["true"]), int(points[0]["predicted"])
        if true != predicted:
            names = comparison.labels
            shown = comparison.taken_for(true, predicted)
            st.markdown(verbatim(f"True {names[true]} taken for {names[predicted]} by A or B: {len(shown):,} {items}"))
            gallery(shown, f"cell/{true}/{predicted}")
    moves = comparison.biggest_changes()
    if moves:
        st.caption("Largest changes: " + verbatim("; ".join(f"{t} taken for {p} {change * 100:+.1f} points"
                                                            for t, p, change in moves)))


with changed:
    changes_view()


@st.fragment
def disagreement_view() -> None:
    counts = {kind: len(comparison.disagreements(kind)) for kind in DISAGREEMENT_KINDS}
    kind = st.segmented_control("Show", list(DISAGREEMENT_KINDS), default="b_right", key="disagreement_kind",
                                required=True,
                                format_func=lambda k: f"{DISAGREEMENT_KINDS[k]} ({counts[k]:,})")
    if kind is None:
        st.caption("Choose which disagreements to show.")
        return
    st.caption("Each row: what A and B said, green where right, red where wrong, beside its true label."
               if data.feature_names is not None else
               "Each image: its true label above, what A and B said beneath (green right, red wrong).")
    gallery(comparison.disagreements(kind), f"disagree/{kind}")


with disagree:
    disagreement_view()

downloads = st.container(horizontal=True)  # one row that wraps, each button as wide as its label
downloads.download_button("Download report (HTML)",
                          lambda: make_report(deck, healthy[b], data, compare_with=healthy[a]).html,
                          f"{b}-vs-{a}-{dataset}-report.html", "text/html", type="primary", icon=":material/summarize:",
                          help=f"A report of {b} with this comparison, in one self-contained file: model card, "
                               "configuration, accuracy, confusion, examples, the latest load test. Opens offline.")
downloads.download_button("Download report (PDF)", lambda: report_pdf(make_report(
    deck, healthy[b], data, compare_with=healthy[a]).html), f"{b}-vs-{a}-{dataset}-report.pdf",
                          "application/pdf", icon=":material/picture_as_pdf:")
downloads.download_button("Download the comparison (JSON)", json.dumps(comparison.to_json(), indent=2),
                          f"compare-{a}-{b}-{dataset}.json", "application/json", icon=":material/download:")
