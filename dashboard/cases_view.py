"""The Test page's flagged cases: a Flag button beside every strip, gallery and own digit (the input as scored, its
right label, a note), and the "Flagged cases" section: the cases that fit this deployment as pictures (or rows),
replayed here and against another deployment (which it fixes and breaks), and removed one at a time."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

import numpy as np
import streamlit as st

from backend.data.cases import Case
from backend.data.testset import TestSet
from backend.errors import CaseNotFoundError, ModelDeckError
from backend.inspection.evaluation import class_name
from backend.inspection.figures import case_grid, to_png
from backend.inspection.perturb import Perturbation
from backend.inspection.rows import row_table
from backend.runtimes.base import Deployment
from backend.services.cases import Replay, book, case_set_for, flag_prepared, flag_row, remove_case, replay
from backend.shown import shown
from dashboard.common import answered, fail, get_deck, presenting, verbatim
from dashboard.tables import show_rows

REPLAYED = "cases/replayed"  # session state: the last replay, by deployment uid and case set
FLAGGED = "cases/flagged"  # session state: what the last flag kept, said once the page has rerun


def _label_note_flag(data: TestSet, key: str, this: object, start: int, flag: Callable[[str, str], Case]) -> None:
    """The right label (from `start`), a note, and the Flag button that keeps the case with `flag(label, note)`.
    `key` names the popover's fields, `this` the input they are about: another input (another pick, a new strip)
    sets them afresh, before they are drawn, so the browser never shows one input's label for another's. A flag
    closes the popover and reruns the whole page: the Flagged cases section shows it."""
    if st.session_state.get(f"{key}/for") != this:
        st.session_state[f"{key}/label"] = start
        st.session_state[f"{key}/note"] = ""
        st.session_state[f"{key}/for"] = this
    label = st.selectbox("Right label", range(len(data.class_names)),
                         format_func=lambda k: shown(data.class_names[k]), key=f"{key}/label")
    note = st.text_input("Note", key=f"{key}/note", max_chars=2000, placeholder="what you saw")
    if st.button("Flag", key=f"{key}/flag", type="primary", icon=":material/flag:"):
        try:
            case = flag(data.class_names[label], note)
        except ModelDeckError as e:
            fail(e, "Cannot flag it")
        else:
            st.session_state[FLAGGED] = f"Flagged {case.id} in {case.set_name}: {case.label}"
            st.session_state[f"{key}/close"] = True
            st.rerun()


@contextmanager
def _flag_popover(label: str, key: str) -> Iterator[bool]:
    """A popover that tracks whether it is open (its fields run only then), closed by a flag made in it. In
    presentation mode an expander instead: its fields in the page, where a 768 px high window scrolls to them (a
    popover opens below its button and was cut off there)."""
    kind = "expander" if presenting() else "popover"
    if st.session_state.pop(f"{key}/close", False):
        st.session_state[f"{key}/{kind}"] = False
    opener = st.expander if kind == "expander" else st.popover
    container = opener(label, icon=":material/flag:", key=f"{key}/{kind}", on_change="rerun")
    with container:
        yield bool(container.open)


def said_flagged() -> None:
    """The toast of the flag that reran the page (once)."""
    flagged = st.session_state.pop(FLAGGED, None)
    if flagged:
        st.toast(verbatim(flagged), icon=":material/flag:")


def flag_rows(deployment: Deployment, data: TestSet, indices: Sequence[int], predictions: Sequence[int],
              key: str, perturbation: Perturbation | None = None) -> None:
    """A Flag button for the rows (images or a table's) just shown: pick one (wrong ones first), its right label
    (its true label to start with) and a note; kept exactly as scored (perturbed by `perturbation` where it was)."""
    if not len(indices):
        return
    labels = data.y
    order = sorted(range(len(indices)), key=lambda k: labels[indices[k]] == predictions[k])  # wrong ones first
    with _flag_popover("Flag one as a case", key) as opened:
        if not opened:
            return
        pick = st.selectbox(f"{data.rows_noun.capitalize()}", order, key=f"{key}/pick", format_func=lambda k: (
            f"#{indices[k]}: said {shown(class_name(data.class_names, int(predictions[k])))}, labelled "
            f"{shown(class_name(data.class_names, int(labels[indices[k]])))}"))
        index = int(indices[pick])
        _label_note_flag(data, key, (index, perturbation), int(labels[index]), lambda label, note: flag_row(
            get_deck(), data, index, label, note, deployment=deployment, perturbation=perturbation))


def flag_own(deployment: Deployment, data: TestSet, row: np.ndarray, predicted: int, origin: str, key: str) -> None:
    """A Flag button for an input of the user's as the deployment received it: a drawn or uploaded digit, a what-if
    row as edited (`origin` says which)."""
    this = zlib.crc32(np.ascontiguousarray(row).tobytes())  # another digit: fresh fields
    with _flag_popover("Flag as a case", key) as opened:
        if opened:
            _label_note_flag(data, key, this, predicted, lambda label, note: flag_prepared(
                get_deck(), data, row, label, note, deployment=deployment, origin=origin))


@st.fragment
def cases_view(deployment: Deployment, others: Sequence[str]) -> None:
    """The cases that fit this deployment, replayed here (and against one of `others`) on a click."""
    deck = get_deck()
    try:
        set_name = case_set_for(deck, deployment)
    except CaseNotFoundError:
        st.caption("No flagged case fits this deployment yet: flag one with *Flag one as a case* under a strip or a "
                   "gallery, or under your own digit. Cases are kept for every version; `modeldeck cases` lists them.")
        return
    cases = book(deck).cases(set_name)
    memory = f"{REPLAYED}/{deployment.record.uid}/{set_name}"
    done: Replay | None = st.session_state.get(memory)
    if done is not None and [c.id for c in done.cases] != [c.id for c in cases]:  # flagged or removed since
        done = None
    r1, r2 = st.columns([2, 3], vertical_alignment="bottom")
    against = r1.selectbox("Against", ["none", *others], key="cases_against",
                           help="Replay at a second deployment too: which cases this one fixes, and which it breaks")
    st.caption(f"{len(cases)} flagged case{'s' if len(cases) != 1 else ''} of this form ({set_name}).")
    if r2.button(f"Replay {'them' if len(cases) != 1 else 'it'} here" + ("" if against == "none" else " and there"),
                 icon=":material/replay:", key="cases_replay", width="stretch",
                 help=f"Score every case at {deployment.name}" + ("" if against == "none" else f" and at {against}")):
        replayed = answered(lambda: replay(deck, deployment.name, against=None if against == "none" else against,
                                           set_name=set_name), "Cannot replay the cases", deployment)
        if replayed is not None:
            done = st.session_state[memory] = replayed
    data = book(deck).testset(set_name)
    answers = None
    if done is not None:
        (st.success if done.right == len(done.cases) and not done.broken else st.warning)(
            verbatim(done.summary() + "."), icon=":material/fact_check:")
        answers = np.array([data.class_names.index(a.said) if a.said in data.class_names else -1
                            for a in done.answers])
    if data.image_shape is not None:
        st.image(to_png(case_grid(data.X, data.image_shape, data.y, data.class_names, answers,
                                  value_range=data.value_range)), width="stretch")
    else:
        show_rows(row_table(data.X, data.feature_names or (), np.arange(len(data)), data.y,
                            answers if answers is not None else data.y, data.class_names, categories=data.categories,
                            heading=f"{done.deployment} said" if done is not None else "flagged as"))
    table: list[dict[str, object]] = []
    for k, case in enumerate(cases):  # what a replay said first: the columns a narrow screen shows
        row: dict[str, object] = {"#": k + 1, "label": case.label}
        if done is not None:
            row[f"{done.deployment} said"] = done.answers[k].said
            if done.against is not None:
                row[f"{done.against} said"] = done.against_answers[k].said
                row["change"] = "fixed" if k in done.fixed else "broken" if k in done.broken else ""
        table.append({**row, "note": case.note, "from": case.source.describe(), "flagged by": case.flagged_by,
                      "when": case.created_at.replace("T", " ")[:16], "id": case.id})
    st.dataframe(table, hide_index=True)
    with st.expander("Remove a case", icon=":material/delete:"):
        gone = st.selectbox("Case", [c.id for c in cases], key="cases_remove_pick",
                            format_func=lambda i: next(f"#{k + 1} {c.id}: {c.label} {c.note[:40]}"
                                                       for k, c in enumerate(cases) if c.id == i))
        if st.button("Remove", key="cases_remove", icon=":material/delete:"):
            try:
                remove_case(deck, gone)
            except ModelDeckError as e:
                fail(e, "Cannot remove it")
            else:
                st.rerun()
