"""The Deploy page's Endpoints section: every endpoint of the home (its address and split), one chosen to change its
split (a slider per deployment behind it, applied when they sum to 100), roll back, or delete; a new one made in
front of a deployment."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import streamlit as st

from backend.context import ModelDeck
from backend.errors import ModelDeckError
from backend.inspection.figures import shadow_grid, to_png
from backend.inspection.interactive_charts import split_bar
from backend.services import endpoints
from backend.services.endpoints import EndpointView
from backend.timefmt import friendly_time
from dashboard.common import fail, presenting, url_select, verbatim


def endpoints_section(deck: ModelDeck, healthy: Sequence[str]) -> None:
    """The section (see the module's docstring); `healthy`: this home's Healthy deployments."""
    st.subheader("Endpoints")
    st.caption("One stable address in front of several deployments: move traffic from one version to another, "
               "and back, without touching a client and without a failed request.")
    try:
        views = endpoints.list_endpoints(deck)
    except ModelDeckError as e:
        fail(e, "Cannot read the endpoints")
        return
    if views:
        rows = [{"endpoint": v.record.name, "split": v.record.split.describe(),
                 **({} if presenting() else {"scoring URI": v.scoring_uri}),
                 "set": f"{friendly_time(v.record.split.at)} by {v.record.split.by}",
                 "serving": "yes" if v.serving else f"no: {v.problem}"} for v in views]
        st.dataframe(rows, hide_index=True, width="stretch")
        chosen = url_select("Endpoint", [v.record.name for v in views], "endpoint", key="deploy_endpoint",
                            gone=lambda name: verbatim(f"Endpoint {name!r} is not one of this home's (any more)."))
        view = next((v for v in views if v.record.name == chosen), None)
        if view is not None:
            _endpoint(deck, view, healthy)
    with st.expander("New endpoint", icon=":material/add_link:"):
        _create(deck, healthy)


def _create(deck: ModelDeck, healthy: Sequence[str]) -> None:
    if not healthy:
        st.info("An endpoint sits in front of a Healthy deployment: deploy one first.")
        return
    with st.form("new_endpoint", border=False):
        name_column, deployment_column = st.columns(2)
        name = name_column.text_input("Name", placeholder="shop", max_chars=40, key="new_endpoint_name",
                                      help="1-40 lowercase letters, digits and dashes")
        first = deployment_column.selectbox("In front of", list(healthy), key="new_endpoint_first")
        if st.form_submit_button("Create endpoint", icon=":material/add_link:"):  # Deploy stays the page's one primary
            try:
                made = endpoints.create_endpoint(deck, name.strip(), str(first))
            except ModelDeckError as e:
                fail(e, "Cannot create the endpoint")
            else:
                st.session_state["_choose_deploy_endpoint"] = made.record.name
                st.toast(verbatim(f"Endpoint {made.record.name} answers at {made.scoring_uri}"))
                st.rerun()


def _endpoint(deck: ModelDeck, view: EndpointView, healthy: Sequence[str]) -> None:
    record = view.record
    if not presenting():
        st.code(view.scoring_uri, language=None)
    st.vega_lite_chart(spec=split_bar(record.split.weights), width="stretch")
    serving = [name for name, _ in record.split.weights]
    behind = st.multiselect("Deployments behind it", sorted(set(healthy) | set(serving)), default=serving,
                            key=f"endpoint/{record.name}/behind", max_selections=8,
                            help="Healthy deployments of this home whose model takes the same inputs and answers the "
                                 "same classes (at most 8)")
    weights = {}
    columns = st.columns(min(max(len(behind), 1), 4))
    for k, name in enumerate(behind):
        weights[name] = columns[k % len(columns)].number_input(
            f"{name} %", 0, 100, record.split.share(name), step=5, key=f"endpoint/{record.name}/{name}")
    total = sum(weights.values())
    apply, back, remove = st.columns(3)
    if total != 100 and behind:
        st.caption(f":orange[The shares sum to {total} %: a split sums to 100 %.]")
    if apply.button("Apply split", icon=":material/call_split:", type="primary", width="stretch",
                    disabled=total != 100 or dict(record.split.weights) == weights):
        _changed(lambda: endpoints.set_traffic(deck, record.name, weights), "Cannot change the split")
    if back.button("Roll back", icon=":material/undo:", width="stretch", disabled=len(record.history) < 2,
                   help="Back to the split before: " + (record.history[-2].describe() if len(record.history) > 1
                                                         else "there is none")):
        _changed(lambda: endpoints.rollback(deck, record.name), "Cannot roll back")
    if remove.button("Delete endpoint…", icon=":material/link_off:", width="stretch"):
        st.session_state["endpoint_confirm_delete"] = record.name
    if st.session_state.get("endpoint_confirm_delete") == record.name:
        st.warning(verbatim(f"Delete endpoint {record.name}? Its address stops answering (its deployments stay)."))
        yes, no = st.columns(2)
        if yes.button(f"Yes, delete {record.name}", type="primary", icon=":material/link_off:", width="stretch"):
            st.session_state.pop("endpoint_confirm_delete", None)
            _changed(lambda: endpoints.delete_endpoint(deck, record.name), "Cannot delete the endpoint")
        if no.button("Cancel", key="endpoint_cancel_delete", width="stretch"):
            st.session_state.pop("endpoint_confirm_delete", None)
            st.rerun()
    st.dataframe([{"split": s.describe(), "set by": s.by, "when": friendly_time(s.at)}
                  for s in reversed(record.history)], hide_index=True, width="stretch",
                 height=180 if len(record.history) > 4 else "auto")  # no empty rows under a short history
    _shadow(deck, view, healthy)


def _shadow(deck: ModelDeck, view: EndpointView, healthy: Sequence[str]) -> None:
    """The shadow: a deployment sent a copy of a share of the requests, and where it answers otherwise than the live
    ones, as it happens (a fragment that reruns every few seconds while a shadow is set)."""
    record = view.record
    st.markdown("**Shadow**: a copy of the requests to another deployment, whose answers no client gets; where it "
                "answers otherwise, below.")
    current = record.split.mirror
    pick, share, set_it = st.columns([3, 2, 2], vertical_alignment="bottom")
    options = ["none", *healthy]
    shadow = pick.selectbox("Shadow deployment", options, index=options.index(current[0]) if current and current[0]
                            in options else 0, key=f"endpoint/{record.name}/shadow")
    copied = share.number_input("Requests copied, %", 1, 100, current[1] if current else 100, step=10,
                                key=f"endpoint/{record.name}/copied")
    wanted = None if shadow == "none" else (str(shadow), int(copied))
    if set_it.button("Apply shadow", icon=":material/content_copy:", width="stretch", disabled=wanted == current):
        _changed(lambda: endpoints.set_mirror(deck, record.name, wanted[0] if wanted else None,
                                              wanted[1] if wanted else 100), "Cannot set the shadow")
    if current:
        _shadow_live(deck, record.name)


@st.fragment(run_every=3)
def _shadow_live(deck: ModelDeck, name: str) -> None:
    try:
        found = endpoints.shadow_of(deck, name)
    except ModelDeckError as e:
        fail(e, "Cannot read the shadow's answers")
        return
    kept = found.record
    compared, agreement, failed = st.columns(3)
    compared.metric("Compared", f"{kept.compared:,}", help="Requests copied to the shadow that both answered "
                    "(the last 10,000)")
    agreement.metric("Agreement", f"{kept.agreement:.1%}" if kept.agreement is not None else "—",
                     help="The share of them the shadow answered as the live deployment did")
    failed.metric("Not compared", f"{kept.failed + kept.unlogged:,}",
                  help="Refused or failed on a side, or an answer the proxy could not log")
    if kept.unlogged:
        st.caption(f":orange[{kept.unlogged:,} answers were not logged for the comparison: requests other than POST "
                   "/score, or deployments made by an older ModelDeck (they do not repeat their answer for the "
                   "proxy): deploy them again to compare.]")
    if not kept.latest:
        st.caption("No disagreement yet." if kept.compared else "Nothing compared yet: send requests to the "
                   "endpoint (a load test, your client).")
        return
    inputs = endpoints.shadow_inputs(deck, name, found)
    if inputs is not None:
        live_names = {d.live_deployment for d in kept.latest}
        st.image(to_png(shadow_grid(inputs.images, inputs.image_shape, inputs.live, inputs.shadow,
                                    ("/".join(sorted(live_names)) or "live", found.deployment or "shadow"),
                                    value_range=inputs.value_range)), width="stretch")
        st.caption(f"The latest {len(inputs.images)} inputs the shadow answered otherwise: above, what the client "
                   "got; below, in red, what the shadow said.")
    else:
        st.dataframe([{"request": d.request_id, "answered": d.live_deployment, "said": d.live,
                       "shadow said": d.shadow} for d in reversed(kept.latest)], hide_index=True, width="stretch")


def _changed(change: Callable[[], object], failed: str) -> None:
    try:
        change()
    except ModelDeckError as e:
        fail(e, failed)
    else:
        for key in [k for k in st.session_state if str(k).startswith("endpoint/")]:
            del st.session_state[key]  # the fields start again from what the endpoint now is
        st.rerun()
