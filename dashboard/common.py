"""What every page shares: the backend handle, made once per process, and error display."""

from __future__ import annotations

import streamlit as st

from backend.context import ModelDeck, open_modeldeck
from backend.errors import ModelDeckError


@st.cache_resource(show_spinner=False)
def _open(runtime: str | None) -> ModelDeck:
    return open_modeldeck(runtime=runtime)


def get_deck() -> ModelDeck:
    """The backend for this process; a readable error and a stop when it cannot be opened."""
    try:
        return _open(None)
    except ModelDeckError as e:
        st.error(f"ModelDeck cannot start: {e}")
        st.stop()


def fail(error: Exception, what: str) -> None:
    """Shows a backend error as a message (never a traceback)."""
    st.error(f"{what}: {error}")
