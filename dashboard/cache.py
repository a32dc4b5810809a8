"""What a rerun need not redo: a kept evaluation read and summarised once per save, and charts' Vega-Lite
specs made once per result they draw. Every cache here is keyed by what it shows (a deployment's
uid, never its name: a deployment replaced under the same name gets a new uid, so it never shows the
old one's results) and by the kept result's revision (a new scoring shows at once).

A chart is drawn again on every rerun that shows it (a click on a cell, a robustness kind chosen, a
page load); `vega_spec` makes its spec once per `key`, which must name everything the chart shows. For
an Altair chart that saves the conversion (Altair validates as it goes: 0.3 s to 1 s for the confusion
matrix on these machines); the matrix and the reliability diagram are plain Vega-Lite dicts, cheap to
make, and the cache still saves the walk over their cells.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any

import streamlit as st

from backend.services import kept

if TYPE_CHECKING:
    from backend.context import ModelDeck
    from backend.inspection.evaluation import Evaluation
    from backend.runtimes.base import Deployment

SPECS_KEPT = 64
EVALUATIONS_KEPT = 8  # 10k predictions (and probabilities) each


def kept_evaluation(deck: ModelDeck, deployment: Deployment, dataset: str) -> Evaluation | None:
    """The deployment's kept evaluation on `dataset` (None while there is none), read from the home once
    per save: the fragments and reruns of the Test page share it."""
    revision = kept.revision(deck, deployment, dataset, "evaluation")
    if revision == 0:
        return None
    return _evaluation(deployment.record.uid, dataset, revision, deck, deployment)


@st.cache_resource(max_entries=EVALUATIONS_KEPT, show_spinner=False)
def _evaluation(uid: str, dataset: str, revision: int, _deck: ModelDeck, _deployment: Deployment) -> Evaluation | None:
    return kept.evaluation(_deck, _deployment, dataset)


@st.cache_data(max_entries=SPECS_KEPT, show_spinner=False)
def vega_spec(key: tuple[Hashable, ...], _chart: Callable[[], Any]) -> dict[str, Any]:
    """The Vega-Lite spec `_chart()` makes (a dict, or an Altair chart turned into one), made once per
    `key` (see the module). Draw it with `st.vega_lite_chart(spec=...)`, which takes the same selections
    as `st.altair_chart`."""
    chart = _chart()
    return chart if isinstance(chart, dict) else spec_of(chart)


def spec_of(chart: Any) -> dict[str, Any]:
    """An Altair chart's Vega-Lite spec, as `st.altair_chart` makes it (without Altair's default theme, its
    fixed width and height) but not validated against the schema: the charts' own tests validate them,
    and here it would cost about half of the conversion on every draw (every 2 s for Traffic)."""
    import altair as alt

    with alt.theme.enable("none"):
        return dict(chart.to_dict(validate=False))
