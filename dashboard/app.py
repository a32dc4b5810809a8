"""ModelDeck dashboard entry point (issue 4 builds the pages; this shows the registry and deployments)."""

import streamlit as st

from backend.context import open_modeldeck
from backend.errors import ModelDeckError

st.set_page_config(page_title="ModelDeck", page_icon="🚢", layout="wide")
st.title("ModelDeck")
try:
    deck = open_modeldeck()
except ModelDeckError as e:
    st.error(str(e))
    st.stop()
st.caption(f"Runtime: {deck.runtime.describe()}")
st.subheader("Models")
st.dataframe([{"model": m.id, "framework": m.framework, "accuracy": m.metrics.get("accuracy")}
              for m in deck.registry.list()])
st.subheader("Deployments")
st.dataframe([{"name": d.name, "state": str(d.state), "model": d.model_id, "scoring URI": d.scoring_uri}
              for d in deck.deployments.list()])
