"""The floor of the page benchmark: a Streamlit page with a title, a select and a button and nothing
behind them, served like the dashboard. No page of the dashboard can be interactive sooner.

Run: .venv/bin/python -m streamlit run benchmarks/floor_page.py
"""

import streamlit as st

st.title("Floor")
kind = st.selectbox("Kind", ["one", "two", "three"], key="kind")
st.button(f"Go with {kind}", key="go")
