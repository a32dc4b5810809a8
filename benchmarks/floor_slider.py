"""The floor of an edit in the what-if benchmark: a Streamlit page with one slider in a fragment whose value is
echoed beneath it, served like the dashboard. No edit of the what-if editor can be answered sooner.

Run: .venv/bin/python -m streamlit run benchmarks/floor_slider.py
"""

import streamlit as st

st.title("Floor")


@st.fragment
def edit() -> None:
    value = st.slider("Value", 0.0, 10.0, 5.0, 0.1, key="value")
    st.caption(f"Value now {value:.1f}")


edit()
