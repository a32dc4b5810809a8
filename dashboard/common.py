"""What every page shares: the backend handle, one deployment list per rerun, selects kept in the URL,
and errors shown verbatim."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import streamlit as st

from backend.context import ModelDeck, open_modeldeck
from backend.datasets import TestSet, load_dataset
from backend.deployments import DeploymentList
from backend.errors import ModelDeckError, ScoringServerError

SNAPSHOT_KEY = "_deployments_snapshot"
OTHER_HOMES_PARAM = "others"  # ?others=1: also list other homes' deployments (read-only)
PRESENT_PARAM = "present"  # ?present=1: presentation mode
PRESENT_KEY = "_presenting"
# Presentation mode: larger type, numbers and pictures for a projector (the pages hide technical detail).
PRESENTATION_CSS = """<style>
html, .stApp {font-size: 19px;}
.stApp h1 {font-size: 2.8rem;} .stApp h2, .stApp h3 {font-size: 2rem;}
[data-testid="stMetricValue"], [data-testid="stMetricValue"] * {font-size: 3.2rem !important; line-height: 1.15;}
[data-testid="stMetricLabel"] p {font-size: 1.25rem;}
[data-testid="stMetricDelta"], [data-testid="stMetricDelta"] * {font-size: 1.4rem !important;}
.stApp [data-testid="stMarkdownContainer"] p, .stApp [data-testid="stMarkdownContainer"] li {font-size: 1.2rem;}
.stApp .block-container {max-width: 100%; padding: 2rem 3rem 3rem;}
</style>"""
# Every mode: nothing is cut short. A metric's value and a button's label are shown whole (labels wrap at
# spaces), and a row of columns holding them, or holding a container keyed "no-shrink-…" (a chart of fixed
# size), never squeezes them: a column that does not fit moves below its neighbours instead. Narrow windows
# (a projector's 1024 px beside the sidebar) get slimmer margins. tests/test_browser_layout.py checks it.
NO_SHRINK = "no-shrink"
LAYOUT_CSS = """<style>
.stMain [data-testid="stMetricValue"], .stMain [data-testid="stMetricValue"] * {overflow: visible; text-overflow: clip;}
.stMain [data-testid="stMetricLabel"] * {white-space: normal; overflow: visible; text-overflow: clip;}
.stMain button [data-testid="stMarkdownContainer"], .stMain button [data-testid="stMarkdownContainer"] p {
  white-space: normal; overflow: visible; text-overflow: clip; word-break: normal; overflow-wrap: normal;}
.stMain [data-testid="stColumn"]:has(> [data-testid="stVerticalBlock"] > [data-testid="stElementContainer"] >
  :is([data-testid="stMetric"], .stButton, .stDownloadButton)),
.stMain [data-testid="stColumn"]:has([class*="st-key-no-shrink-"]) {min-width: min-content;}
@media (max-width: 1200px) {.stApp .stMain .block-container {padding-left: 1.5rem; padding-right: 1.5rem;}}
</style>"""
_MARKDOWN_SPECIALS = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:])")


@st.cache_resource(show_spinner=False)
def _open() -> ModelDeck:
    return open_modeldeck()


def get_deck() -> ModelDeck:
    """The backend for this process; a readable error and a stop when it cannot be opened."""
    try:
        return _open()
    except ModelDeckError as e:
        st.error(f"ModelDeck cannot start: {verbatim(str(e))}")
        st.stop()
        raise  # st.stop() does not return


@st.cache_data(show_spinner="Loading the test set…")
def testset(name: str, revision: int = 0) -> TestSet:
    """A test set, loaded once per `revision` (a user's set replaced under the same name loads anew)."""
    return load_dataset(name, None, get_deck().settings.datasets_dir)


def revision_of(name: str) -> int:
    """Changes when the user's test set `name` is replaced (0 for a bundled set)."""
    try:
        return (get_deck().settings.datasets_dir / f"{name}.npz").stat().st_mtime_ns
    except OSError:
        return 0


def verbatim(text: str) -> str:
    """`text` escaped so Markdown shows it as typed (underscores, asterisks and colons included)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", text).replace("\n", "  \n")


def fail(error: Exception | str, what: str) -> None:
    """Shows a backend error as a message, verbatim (never a traceback, never reformatted)."""
    st.error(f"{what}: {verbatim(str(error))}", icon=":material/error:")


def scoring_failed(error: Exception, deployment: str | None = None) -> None:
    """A failed scoring call: a fault of the deployment's own script points at its logs."""
    if isinstance(error, ScoringServerError) and error.script_error:
        st.error(verbatim(f"The scoring script raised {error.script_error} — see Logs on the Deploy page "
                          f"(request id {error.request_id})."), icon=":material/bug_report:")
        if deployment is not None:
            st.page_link("views/deploy.py", label=f"Logs of {deployment}", icon=":material/article:",
                         query_params={"deployment": deployment})
    else:
        fail(error, "Scoring failed")


def refresh_snapshot() -> DeploymentList:
    """Lists every deployment now (once per rerun: pages read `snapshot()`)."""
    deck = get_deck()
    snapshot = deck.deployments.snapshot(all_homes=showing_other_homes())
    st.session_state[SNAPSHOT_KEY] = snapshot
    return snapshot


def showing_other_homes() -> bool:
    return st.query_params.get(OTHER_HOMES_PARAM) == "1"


def set_other_homes(show: bool) -> None:
    if show:
        st.query_params[OTHER_HOMES_PARAM] = "1"
    else:
        st.query_params.pop(OTHER_HOMES_PARAM, None)


def snapshot() -> DeploymentList:
    """This rerun's list of deployments (made by the app before the page ran)."""
    found = st.session_state.get(SNAPSHOT_KEY)
    return found if isinstance(found, DeploymentList) else refresh_snapshot()


def presenting() -> bool:
    """Whether presentation mode is on: `?present=1` in the address turns it on (a shared link opens in
    it); the session keeps it while the reader moves between pages (page links drop the address's query)."""
    if st.query_params.get(PRESENT_PARAM) == "1":
        st.session_state[PRESENT_KEY] = True
    on = bool(st.session_state.get(PRESENT_KEY, False))
    if on:
        st.query_params[PRESENT_PARAM] = "1"
    return on


def percent(share: float) -> str:
    """A share as a metric shows it: 89.57% — and 89.6% in presentation mode, where the type is large."""
    return f"{share:.1%}" if presenting() else f"{share:.2%}"


def points(change: float) -> str:
    """A change of a share in percentage points, as a metric's delta shows it (one decimal fewer when presenting)."""
    return f"{change * 100:+.1f} points" if presenting() else f"{change * 100:+.2f} points"


def set_presenting(on: bool) -> None:
    st.session_state[PRESENT_KEY] = on
    if on:
        st.query_params[PRESENT_PARAM] = "1"
    else:
        st.query_params.pop(PRESENT_PARAM, None)


def url_select(label: str, options: Sequence[Any], param: str, *, key: str, default: Any = None,
               format_func: Callable[[Any], str] = str, gone: Callable[[Any], str] | None = None,
               container: Any = None, **kwargs: Any) -> Any:
    """A selectbox whose value is kept in the URL (`?param=value`) and in the session, so a reload or a
    shared link opens the same choice. A remembered value that is no longer an option is never
    replaced silently: the select stays empty with a warning (`gone(value)` says why, as Markdown
    already escaped) until something else is chosen. Otherwise it always holds a value (it cannot be
    cleared by accident). `key` names the choice on its page; pages may share a `param`.

    Returns:
        The chosen option, or None while a remembered choice is gone.
    """
    where = container if container is not None else st
    remembered = f"_remembered_{key}"
    if st.session_state.pop(f"_forget_{key}", False):
        st.session_state.pop(remembered, None)
        st.query_params.pop(param, None)
    # A new widget whenever the options change, so it starts from the remembered choice; and
    # persist_state="page" keeps its value while it is hidden for a rerun (say, while the select it
    # depends on is empty), so the browser and Python never disagree about what is chosen.
    widget_key = f"{key}/{zlib.crc32(repr(list(options)).encode()):08x}"
    from_url = st.query_params.get(param)
    forced = f"_choose_{key}" in st.session_state
    if forced:  # the page chose (say, the deployment just made): that beats the widget and the URL
        wanted = st.session_state[remembered] = st.session_state.pop(f"_choose_{key}")
        st.session_state.pop(widget_key, None)
    elif st.session_state.get(widget_key) is not None:
        wanted = st.session_state[widget_key]  # what was just picked in this very select
    elif from_url is not None and from_url != str(st.session_state.get(remembered)):
        wanted = from_url  # a link, a reload or an edited address names it
    else:
        wanted = st.session_state.get(remembered)
    matches = [option for option in options if str(option) == str(wanted)]
    if matches:
        index: int | None = list(options).index(matches[0])
    elif wanted is None:
        index = list(options).index(default) if default in options else 0 if options else None
    else:
        index = None
        where.warning(gone(wanted) if gone else verbatim(f"{wanted!r} is not available any more: choose again."),
                      icon=":material/warning:")
    value = where.selectbox(label, options, index=index, key=widget_key, format_func=format_func,
                            placeholder="choose…", persist_state="page", **kwargs)
    if value is None:
        st.query_params.pop(param, None)
        if wanted is not None:
            st.session_state[remembered] = wanted  # still gone: keep saying so
    else:
        st.session_state[remembered] = value
        st.query_params[param] = str(value)
    return value


def nothing_chosen(what: str) -> None:
    """Ends the page while a select above is empty, saying so (never a blank page)."""
    st.info(f"Choose {what} above.", icon=":material/arrow_upward:")
    st.stop()


def choose(key: str, value: Any) -> None:
    """Makes the next `url_select(..., key)` pick `value` (say, the deployment just made)."""
    st.session_state[f"_choose_{key}"] = value


def forget_choice(key: str) -> None:
    """Makes the next `url_select(..., key)` start empty without a warning (say, after a delete)."""
    st.session_state[f"_forget_{key}"] = True
