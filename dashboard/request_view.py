"""The Test page's request console and request snippets: shown whether or not a test set fits the model."""

import json

import numpy as np
import streamlit as st

from backend.client import RawAnswer
from backend.context import ModelDeck
from backend.errors import ModelDeckError
from backend.inspection.snippets import Example, curl_snippet, payload, python_snippet
from backend.registry import Signature
from backend.runtimes.base import Deployment
from backend.services.reaching import send_as_is
from dashboard.common import scoring_failed, verbatim


def example_row(signature: Signature) -> Example:
    """A row to start the console and the snippets from when no test set fits: the model's number of
    values, each the low end of its value range (0 when unknown); for a model that takes some columns as text,
    an object of its columns, those at their first category."""
    low = signature.value_range[0] if signature.value_range else 0.0
    categories = signature.categories_of()
    if categories and signature.feature_names:
        return {name: categories[name][0] if name in categories else low for name in signature.feature_names}
    return np.full(signature.n_features or 1, low, dtype=np.float32)


def pretty_body(body: bytes) -> str:
    try:
        return json.dumps(json.loads(body), indent=2)[:20_000]
    except ValueError:
        return body.decode("utf-8", errors="replace")[:20_000]


@st.fragment
def console_view(deck: ModelDeck, deployment: Deployment, key: str | None, row: Example, source: str,
                 rival: tuple[Deployment, str | None] | None = None) -> None:
    """Any body sent as it is to the deployment (and to the `rival` in a duel), starting from `row`; the answer as it
    comes. `source` (the test set's name) keeps one body per test set."""
    st.caption("Any body, sent as it is; the answer as it comes — refusals included.")
    console_key = f"console/{deployment.record.uid}/{source}"
    body = st.text_area("Request body", value=payload(row), height=120, key=console_key)
    b1, b2, b3 = st.columns([2, 2, 3])
    content_type = b1.selectbox("Content-Type", ["application/json", "text/plain", "application/xml"],
                                key="console_type", persist_state="page")
    # keyed by the deployment: a toggle left off for one without key auth must not carry over to a keyed one
    send_key = b2.toggle("Send the key", value=key is not None, disabled=key is None, key=f"{console_key}/send-key",
                         help="Key auth is on for this deployment" if key else "This deployment has no key auth")
    targets = [(deployment, key if send_key else None)] + ([(rival[0], rival[1] if send_key else None)] if rival else [])
    if b3.button("Send" + (" to both" if rival else ""), icon=":material/send:", key="console_send", width="stretch"):
        for target, target_key in targets:
            try:
                raw = send_as_is(deck, target, body.encode(), content_type, key=target_key)
                st.session_state[f"{console_key}/answer/{target.record.uid}"] = raw
            except ModelDeckError as e:
                scoring_failed(e, target)
    answers = [(target, st.session_state.get(f"{console_key}/answer/{target.record.uid}")) for target, _ in targets]
    shown_answers = [(target, answer) for target, answer in answers if answer is not None]
    if len(shown_answers) == 2:
        first, second = shown_answers[0][1], shown_answers[1][1]
        if first.body != second.body or first.status != second.status:
            st.markdown(":red-badge[The answers differ]")
        else:
            st.markdown(":green-badge[Both answer the same]" if first.status < 400 else
                        ":orange-badge[Both refuse it alike]")
        for column, (target, answer) in zip(st.columns(2), shown_answers, strict=True):
            with column:
                st.markdown(f"**{verbatim(target.name)}**")
                _answer_view(answer, headers=False)
    elif shown_answers:
        _answer_view(shown_answers[0][1])


def _answer_view(answer: RawAnswer, *, headers: bool = True) -> None:
    status_color = "green" if answer.status < 400 else "orange" if answer.status < 500 else "red"
    st.markdown(f":{status_color}-badge[HTTP {answer.status} {verbatim(answer.reason)}] "
                f":gray-badge[{answer.latency_ms:.1f} ms] :gray-badge[{len(answer.body):,} bytes]")
    if not headers:
        st.code(pretty_body(answer.body), language="json", wrap_lines=True)
        return
    h1, h2 = st.columns([2, 3])
    h1.dataframe({"header": list(answer.headers), "value": list(answer.headers.values())}, hide_index=True)
    h2.code(pretty_body(answer.body), language="json", wrap_lines=True)


def snippets_view(deck: ModelDeck, deployment: Deployment, row: Example) -> None:
    """curl and Python snippets that send `row` to the deployment (reading its key where auth is on)."""
    uri = deployment.scoring_uri or ""
    t1, t2 = st.tabs(["curl", "Python (requests)"])
    keyed = (deployment.name, str(deck.home.path)) if deployment.config.auth_enabled else None
    t1.code(curl_snippet(uri, row, keyed), language="bash")
    t2.code(python_snippet(uri, row, keyed), language="python")
    if keyed:
        st.caption("Key auth is on: the snippets read the primary key with `modeldeck deployments keys` "
                   "(Deploy page → Keys shows and rotates the keys).")


def request_sections(deck: ModelDeck, deployment: Deployment, key: str | None, row: Example, source: str, *,
                     rival: tuple[Deployment, str | None] | None = None) -> None:
    """The "Request console" and "The raw request" sections of the Test page; with a `rival` (a deployment and its
    key), every body the console sends goes there too, the answers side by side."""
    st.subheader("Request console")
    console_view(deck, deployment, key, row, source, rival)
    st.subheader("The raw request")
    snippets_view(deck, deployment, row)
