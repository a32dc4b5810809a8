"""ModelDeck dashboard: `streamlit run dashboard/app.py`. This file only routes and draws the sidebar."""

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:  # `streamlit run dashboard/app.py` puts only dashboard/ on the path
    sys.path.insert(0, str(ROOT))

import streamlit as st  # noqa: E402

from backend.errors import ModelDeckError  # noqa: E402
from backend.runtimes import DeploymentState  # noqa: E402
from backend.training import ensure_sample_model  # noqa: E402
from dashboard.common import get_deck  # noqa: E402

st.set_page_config(page_title="ModelDeck", page_icon="🚢", layout="wide")
deck = get_deck()

if deck.settings.auto_train and "sample_checked" not in st.session_state:
    if not deck.registry.list():
        with st.status("First run: training the sample model sklearn_mnist…", expanded=True) as status:
            model = ensure_sample_model(deck.registry, progress=st.write)
            status.update(label=f"Sample model {model.id} registered", state="complete", expanded=False)
    st.session_state.sample_checked = True

pages = [
    st.Page(str(ROOT / "dashboard" / "views" / "models.py"), title="Models", icon=":material/inventory_2:", url_path="models"),
    st.Page(str(ROOT / "dashboard" / "views" / "deploy.py"), title="Deploy", icon=":material/rocket_launch:", url_path="deploy",
            default=True),
    st.Page(str(ROOT / "dashboard" / "views" / "test.py"), title="Test", icon=":material/labs:", url_path="test"),
]
page = st.navigation(pages)

with st.sidebar:
    st.markdown("### :material/sailing: ModelDeck")
    st.caption(deck.runtime.describe())
    try:
        deployments = deck.deployments.list()
        healthy = sum(d.state is DeploymentState.HEALTHY for d in deployments)
        st.metric("Deployments", len(deployments), help=f"{healthy} healthy")
    except ModelDeckError as e:
        st.error(str(e))
    st.caption(f"Registry: {deck.settings.home}")

page.run()
