"""ModelDeck dashboard: `streamlit run dashboard/app.py`. This file only routes and draws the sidebar."""

from pathlib import Path

import streamlit as st

from backend.config import ASSETS_DIR
from backend.errors import ModelDeckError
from backend.progress import ProgressEvent
from backend.services.models import first_run, needs_first_run
from dashboard.common import (
    LAYOUT_CSS,
    PRESENTATION_CSS,
    fail,
    get_deck,
    note_page,
    presenting,
    refresh_snapshot,
    set_presenting,
    verbatim,
)

VIEWS = Path(__file__).resolve().parent / "views"

# A local icon file: a material-icon favicon would be fetched from the internet by the browser.
st.set_page_config(page_title="ModelDeck", page_icon=str(ASSETS_DIR / "favicon.png"), layout="wide")
# The theme's primary colour is a neutral blue (.streamlit/config.toml); red is kept for destructive
# buttons, which pages put in a container keyed "danger-zone".
st.html("<style>.st-key-danger-zone button {background-color: #b3261e; border-color: #b3261e; color: #fff;}"
        ".st-key-danger-zone button:hover {background-color: #8c1d18; border-color: #8c1d18; color: #fff;}</style>")
st.html(LAYOUT_CSS)
deck = get_deck()

# The pages, in the sidebar's order; the bare address opens the Deploy page.
deploy_page = st.Page(VIEWS / "deploy.py", title="Deploy", icon=":material/rocket_launch:", url_path="deploy")
PAGES = [st.Page(VIEWS / "models.py", title="Models", icon=":material/inventory_2:", url_path="models"),
         deploy_page,
         st.Page(VIEWS / "test.py", title="Test", icon=":material/labs:", url_path="test"),
         st.Page(VIEWS / "compare.py", title="Compare", icon=":material/compare_arrows:", url_path="compare")]


def _home() -> None:
    """The bare address opens the Deploy page under its own URL (/deploy), so every page has one."""
    st.switch_page(deploy_page)


# Streamlit serves its default page only at "/", so the default is this redirect and the pages
# keep their own addresses; the sidebar lists them itself.
page = st.navigation([st.Page(_home, title="ModelDeck", url_path="home", default=True), *PAGES], position="hidden")
note_page(page.url_path)

presentation = presenting()
if presentation:
    st.html(PRESENTATION_CSS)
with st.sidebar:
    st.markdown("### :material/sailing: ModelDeck")
    for link in PAGES:
        st.page_link(link)
    st.toggle("Presentation mode", value=presentation, key="presentation_toggle",
              on_change=lambda: set_presenting(st.session_state.presentation_toggle),
              help="Hides technical detail (addresses, hashes, logs, snippets) and enlarges figures and numbers for "
                   "a projector. The address keeps it (?present=1): share the link to open in it.")
    st.divider()

if "sample_checked" not in st.session_state:
    if needs_first_run(deck):
        st.subheader("Welcome to ModelDeck")
        st.write("First run: two versions of the sample model `sklearn_mnist` are trained and registered, so "
                 "there is something to deploy — version 1, the tutorial's logistic regression, and version 2, "
                 "an SVC with calibrated probabilities. This takes about 15 s on a quiet machine (up to a minute "
                 "when its cores are busy).")
        bar = st.progress(0.0, text="Starting…")
        with st.status("Training the sample models sklearn_mnist:1 and :2…", expanded=True) as status:
            def show(event: ProgressEvent) -> None:
                status.write(verbatim(event.message))
                if event.fraction is not None:
                    bar.progress(event.fraction, text=f"{event.fraction:.0%} — {verbatim(event.message)}")

            try:
                registered = first_run(deck, progress=show)
            except ModelDeckError as e:
                bar.empty()
                status.update(label="Training the sample models failed", state="error")
                fail(e, "First run")
                st.stop()
            if registered:
                status.update(label=f"Sample models {', '.join(m.id for m in registered)} registered",
                              state="complete")
    st.session_state.sample_checked = True

snapshot = refresh_snapshot()  # the one list of deployments of this rerun; pages read it
with st.sidebar:
    owned = snapshot.owned
    st.metric("Deployments", len(owned), help=f"{len(snapshot.healthy)} healthy, in this home, on every runtime")
    if not presentation:  # technical detail
        st.caption("**Runtimes**")
        for runtime in snapshot.runtimes:
            if runtime.available:
                st.caption(f":material/check_circle: **{runtime.name}** — {verbatim(runtime.description)}")
            else:
                st.caption(f":material/cancel: **{runtime.name}** unavailable — {verbatim(runtime.description)}")
        st.caption(f"**Home** {verbatim(str(deck.home.path))} (id {deck.home.id})")

page.run()
