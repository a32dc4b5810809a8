"""What every page shares: the backend handle, one deployment list per rerun, selects kept in the URL,
and errors shown verbatim."""

from __future__ import annotations

import re
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import streamlit as st

from backend.context import ModelDeck, open_modeldeck
from backend.data.testset import TestSet
from backend.deployments import DeploymentList
from backend.errors import DeploymentDownError, ModelDeckError, ScoringError, ScoringServerError
from backend.runtimes.base import Deployment, DeploymentState
from backend.services import managing
from backend.services.testsets import load_testset, testset_revision
from backend.shown import shown

SNAPSHOT_KEY = "_deployments_snapshot"
DELETED_KEY = "_deleted_here"  # names of deployments deleted in this session (and not made again since)
NO_ANSWER_KEY = "_no_answer"  # the last request that got no answer: (deployment name, why), shown once
OTHER_HOMES_PARAM = "others"  # ?others=1: also list other homes' deployments (read-only)
PRESENT_PARAM = "present"  # ?present=1: presentation mode
PRESENT_KEY = "_presenting"
PAGE_KEY = "_page"  # the page the last run showed, and whether this run opened another
PAGE_CHANGED_KEY = "_page_changed"
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
    return load_testset(get_deck(), name)


def revision_of(name: str) -> int:
    """Changes when the user's test set `name` is replaced (0 for a bundled set)."""
    return testset_revision(get_deck(), name)


def verbatim(text: str) -> str:
    """`text` escaped so Markdown shows it as typed (underscores, asterisks and colons included; a
    bidirectional-control character as its escape, see backend.shown)."""
    return _MARKDOWN_SPECIALS.sub(r"\\\1", shown(text)).replace("\n", "  \n")


def fail(error: Exception | str, what: str) -> None:
    """Shows a backend error as a message, verbatim (never a traceback, never reformatted)."""
    st.error(f"{what}: {verbatim(str(error))}", icon=":material/error:")


@dataclass(frozen=True)
class Notice:
    """A message about a choice, as Markdown already escaped; `kind` is st.warning, error, success or info,
    and `logs_of` names a deployment whose logs it points at."""

    text: str
    kind: str = "warning"
    logs_of: str | None = None


def show_notice(notice: Notice, where: Any = None) -> None:
    """Draws `notice` (in `where`, a column say), with the link to the logs it points at."""
    place = where if where is not None else st
    icon = {"error": ":material/cloud_off:", "success": ":material/check_circle:",
            "info": ":material/hourglass_top:"}.get(notice.kind, ":material/warning:")
    getattr(place, notice.kind)(notice.text, icon=icon)
    if notice.logs_of is not None:
        logs_link(notice.logs_of, place)


def logs_link(deployment: str, where: Any = None) -> None:
    """A link to the Deploy page with `deployment` chosen, where its Logs are."""
    (where if where is not None else st).page_link("views/deploy.py", label=f"Logs of {deployment}",
                                                   icon=":material/article:", query_params={"deployment": deployment})


T = TypeVar("T")


def answered(call: Callable[[], T], what: str, deployment: Deployment) -> T | None:
    """`call()`, or None once its failure is said: a scoring error as `scoring_failed` says it (the deployment gone,
    its logs), any other as `fail(e, what)`."""
    try:
        return call()
    except ScoringError as e:
        scoring_failed(e, deployment)
    except ModelDeckError as e:
        fail(e, what)
    return None


def scoring_failed(error: Exception, *deployments: Deployment) -> None:
    """A failed scoring call to one of `deployments`: a fault of the deployment's own script points at
    its logs; a request its server gave no answer to says the deployment's state now and why (read from
    its runtime). Where that state stays down (Failed, Unhealthy, deleted; not Transitioning, which ends
    by itself) the whole page is drawn again from it, so it offers nothing to send to a deployment that
    cannot answer, and says it there, once (`no_answer_said`)."""
    if isinstance(error, ModelDeckError):
        for deployment in deployments:
            explained = managing.explain(get_deck(), deployment, error)
            if explained is not error:
                error = explained
                break
    if isinstance(error, DeploymentDownError):
        if error.state not in (DeploymentState.HEALTHY, DeploymentState.TRANSITIONING):  # it stays down
            st.session_state[NO_ANSWER_KEY] = (error.name, str(error), error.gone)
            st.rerun(scope="app")
        show_notice(Notice(verbatim(f"No answer: {error}."), "error", logs_of=None if error.gone else error.name))
    elif isinstance(error, ScoringServerError) and error.script_error:
        st.error(verbatim(f"The scoring script raised {error.script_error} — see Logs on the Deploy page "
                          f"(request id {error.request_id})."), icon=":material/bug_report:")
        if deployments:
            logs_link(deployments[0].name)
    else:
        fail(error, "Scoring failed")


def no_answer_said() -> str | None:
    """Shows, once, why the last request got no answer (see scoring_failed); returns that deployment's name."""
    said = st.session_state.pop(NO_ANSWER_KEY, None)
    if said is None:
        return None
    name, why, gone = said
    if gone:  # deleted: no logs to read, nothing to wait for
        show_notice(Notice(verbatim(f"No answer: {why}. Choose another deployment."), "error"))
    else:
        show_notice(Notice(verbatim(f"No answer: {why}. Nothing can be sent to it until it is Healthy again: "
                                    "choose another deployment, or read its logs."), "error", logs_of=name))
    return str(name)


def cannot_answer(deployment: Deployment) -> Notice:
    """Why a chosen deployment of this home is not offered as a target: its state and why, as the list says."""
    if deployment.state is DeploymentState.TRANSITIONING:  # it ends by itself: not an error
        return Notice(verbatim(f"{deployment.status}. It answers once it is Healthy: open this page again in a "
                               "moment, or read its logs."), "info", logs_of=deployment.name)
    return Notice(verbatim(f"{deployment.status}. It cannot answer requests now: choose another deployment, or "
                           "read its logs."), "error", logs_of=deployment.name)


def refresh_snapshot() -> DeploymentList:
    """Lists every deployment now (once per rerun: pages read `snapshot()`)."""
    deck = get_deck()
    snapshot = managing.listing(deck, all_homes=showing_other_homes())
    st.session_state[SNAPSHOT_KEY] = snapshot
    if deleted := st.session_state.get(DELETED_KEY):  # made again since: a later loss is not this session's delete
        st.session_state[DELETED_KEY] = deleted - {d.name for d in snapshot.owned}
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


def share_decimals() -> int:
    """Decimals of a percentage or of points on screen: 2, and 1 in presentation mode, where the type is large."""
    return 1 if presenting() else 2


def percent(share: float) -> str:
    """A share as a metric shows it: 89.53% — and 89.5% in presentation mode."""
    return f"{share:.{share_decimals()}%}"


def points(change: float) -> str:
    """A change of a share in percentage points, as a metric's delta shows it (one decimal fewer when presenting)."""
    return f"{change * 100:+.{share_decimals()}f} points"


def set_presenting(on: bool) -> None:
    st.session_state[PRESENT_KEY] = on
    if on:
        st.query_params[PRESENT_PARAM] = "1"
    else:
        st.query_params.pop(PRESENT_PARAM, None)


def url_select(label: str, options: Sequence[Any], param: str, *, key: str, default: Any = None,
               format_func: Callable[[Any], str] = str, gone: Callable[[Any], str | Notice | None] | None = None,
               container: Any = None, follows: Callable[[Any], dict[str, str]] | None = None,
               **kwargs: Any) -> Any:
    """A selectbox whose value is kept in the URL (`?param=value`) and in the session, so a reload or a
    shared link opens the same choice. A remembered value that is no longer an option is never
    replaced silently: the select stays empty with a warning (`gone(value)` says why, as Markdown
    already escaped, or as a Notice; None when the page said it already) until something else is
    chosen; its name stays in the address. Otherwise it always holds a value (it cannot be cleared by
    accident). `key` names the choice on its page; pages may share a `param`.

    The browser's history gets one entry per choice: the address is written only when the reader picks
    here (with `follows(value)`, the params that go with it, in the same entry) or the page chose
    (`choose`), never for a default. An address that changed under the page (a link, a reload, Back or
    Forward) wins over what the select held: Streamlit reruns the page with it.

    Returns:
        The chosen option, or None while a remembered choice is gone.
    """
    where = container if container is not None else st
    remembered = f"_remembered_{key}"
    seen = f"_in_address_{key}"  # the param as the address had it when this select last ran
    # A new widget whenever the options change, so it starts from the remembered choice; and
    # persist_state="page" keeps its value while it is hidden for a rerun (say, while the select it
    # depends on is empty), so the browser and Python never disagree about what is chosen.
    widget_key = f"{key}/{zlib.crc32(repr(list(options)).encode()):08x}"
    from_url = st.query_params.get(param)
    held = st.session_state.get(widget_key)
    before = st.session_state.get(remembered)
    picked = True
    if f"_choose_{key}" in st.session_state:  # the page chose (say, the deployment just made): that beats all
        wanted = st.session_state[remembered] = st.session_state.pop(f"_choose_{key}")
    elif st.session_state.pop(f"_picked_{key}", False) and held is not None:
        wanted = held  # just picked in this very select
    else:
        picked = False
        if from_url is not None and from_url != str(before):
            wanted = from_url  # a link, a reload, Back/Forward or an edited address names it
        elif from_url is None and st.session_state.get(seen) is not None and not st.session_state.get(PAGE_CHANGED_KEY):
            wanted = None  # Back to before it was chosen here: the default again
        else:
            wanted = before if before is not None else held
    caller_on_change = kwargs.pop("on_change", None)

    def on_pick(*args: Any, **kw: Any) -> None:
        st.session_state[f"_picked_{key}"] = True
        if caller_on_change is not None:
            caller_on_change(*args, **kw)

    matches = [option for option in options if str(option) == str(wanted)]
    if matches:
        index: int | None = list(options).index(matches[0])
    elif wanted is None:
        index = list(options).index(default) if default in options else 0 if options else None
    else:
        index = None
        said = gone(wanted) if gone else verbatim(f"{wanted!r} is not available any more: choose again.")
        if said is not None:
            show_notice(said if isinstance(said, Notice) else Notice(said), where)
    if widget_key in st.session_state:
        target = None if index is None else list(options)[index]
        if st.session_state[widget_key] != target:  # set through the state, so the browser shows it too
            st.session_state[widget_key] = target  # (say, after Back: the browser still shows the later pick)
        index = 0  # the state decides; a default beside it only draws Streamlit's warning
    value = where.selectbox(label, options, index=index, key=widget_key, format_func=format_func,
                            placeholder="choose…", persist_state="page", on_change=on_pick, **kwargs)
    if value is None:
        if wanted is not None:
            st.session_state[remembered] = wanted  # still gone: keep saying so, and keep it in the
            if from_url != str(wanted):  # address (a reload says so too, and never opens another)
                st.query_params[param] = str(wanted)
        elif from_url is not None:
            st.query_params.pop(param, None)
    else:
        st.session_state[remembered] = value
        if picked:  # one message, so one history entry, with what follows this choice
            written = {param: str(value), **(follows(value) if follows is not None else {})}
            if any(st.query_params.get(k) != v for k, v in written.items()):
                st.query_params.update(written)
    st.session_state[seen] = st.query_params.get(param)
    return value


def deployment_gone(name: str) -> str:
    """Why a deployment named in the address (or chosen before) is not offered: it is not this home's (any more)."""
    return verbatim(f"Deployment {name!r} is not a deployment of this home (any more): choose another.")


def gone_notice(name: str) -> Notice:
    """`deployment_gone`, or, for a deployment this session deleted, a success that says so."""
    if name in st.session_state.get(DELETED_KEY, set()):
        return Notice(verbatim(f"Deleted {name}."), "success")
    return Notice(deployment_gone(name))


def note_deleted(name: str) -> None:
    """This session deleted deployment `name`: pages that still name it say so as a success."""
    st.session_state[DELETED_KEY] = st.session_state.get(DELETED_KEY, set()) | {name}


def remembered(key: str, param: str) -> str | None:
    """What `url_select(..., param, key=key)` would open on: the address's choice, else the session's."""
    found = st.query_params.get(param, st.session_state.get(f"_remembered_{key}"))
    return None if found is None else str(found)


def note_page(path: str) -> None:
    """The router says which page this run shows: a select whose param left the address goes back to
    its default on the same page (Back), but keeps its remembered choice on a page just opened (the
    sidebar's links drop the address's query)."""
    st.session_state[PAGE_CHANGED_KEY] = st.session_state.get(PAGE_KEY) != path
    st.session_state[PAGE_KEY] = path


def nothing_chosen(what: str) -> None:
    """Ends the page while a select above is empty, saying so (never a blank page)."""
    st.info(f"Choose {what} above.", icon=":material/arrow_upward:")
    st.stop()


def choose(key: str, value: Any) -> None:
    """Makes the next `url_select(..., key)` pick `value` (say, the deployment just made)."""
    st.session_state[f"_choose_{key}"] = value


def scroll_into_view(container_key: str, occasion: str) -> None:
    """Scrolls the browser to the container made with `key=container_key`, once per distinct `occasion`
    (say, a deploy's start and its end): what a click set off shows where the reader looks."""
    st.html(f"""<script data-occasion="{occasion}">
setTimeout(() => document.querySelector(".st-key-{container_key}")?.scrollIntoView({{block: "start",
    behavior: "smooth"}}), 150);
</script>""", unsafe_allow_javascript=True)
