"""Deploy page: launch a deployment with live progress; list, inspect and delete deployments."""

import os

import streamlit as st

from backend.errors import DeploymentFailedError, ModelDeckError
from backend.registry import parse_tags
from backend.runtimes import DeployConfig, validate_name
from backend.timefmt import age
from dashboard.common import fail, get_deck

STREAMED_LINES_SHOWN = 12

deck = get_deck()
st.title("Deploy")
st.caption(f"Runtime: {deck.runtime.describe()}")

models = deck.registry.list()
if not models:
    st.info("No model is registered: train the sample model or register one on the Models page.")
    st.page_link("views/models.py", label="Go to Models", icon=":material/inventory_2:")
    st.stop()

names = sorted({m.name for m in models})
left, right = st.columns([3, 1])
model_name = left.selectbox("Model", names, index=names.index("sklearn_mnist") if "sklearn_mnist" in names else 0)
versions = sorted((m.version for m in models if m.name == model_name), reverse=True)
version = right.selectbox("Version", versions, format_func=lambda v: f"{v} (latest)" if v == versions[0] else str(v))
model = deck.registry.get(model_name, version)
accuracy = model.metrics.get("accuracy")
st.caption(f"{model.description or 'no description'}"
           + (f" — accuracy {accuracy:.4f}" if accuracy is not None else "")
           + f" — scikit-learn {model.sklearn_version or '?'} — sha256 {model.sha256[:12]}")

with st.form("deploy"):
    name = st.text_input("Deployment name", value=deck.deployments.suggest_name(model),
                         help="3-63 lowercase letters, digits and '-'")
    c1, c2 = st.columns(2)
    cpu = c1.number_input("CPU cores", min_value=0.25, max_value=float(os.cpu_count() or 1), value=1.0, step=0.25)
    memory = c2.number_input("Memory (GB)", min_value=0.125, max_value=64.0, value=1.0, step=0.25)
    tags = st.text_input("Tags", value="", placeholder="team=vision, stage=demo")
    description = st.text_input("Description", value=f"{model.id} served by ModelDeck")
    submitted = st.form_submit_button("Deploy", type="primary", icon=":material/rocket_launch:")

if submitted:
    try:
        validate_name(name)
        config = DeployConfig(cpu_cores=float(cpu), memory_gb=float(memory), tags=parse_tags(tags),
                              description=description)
    except ModelDeckError as e:
        fail(e, "Check the form")
        st.stop()
    deployed, failure = None, None
    with st.status(f"Deploying {model.id} as {name}…", expanded=True) as status:
        steps = st.container()
        build_box, log_box = st.empty(), st.empty()
        streamed: dict[str, list[str]] = {"build: ": [], "log: ": []}

        def progress(message: str) -> None:
            for prefix, box in (("build: ", build_box), ("log: ", log_box)):
                if message.startswith(prefix):
                    streamed[prefix].append(message.removeprefix(prefix))
                    box.code("\n".join(streamed[prefix][-STREAMED_LINES_SHOWN:]), language=None)
                    return
            steps.write(message)

        try:
            deck.deployments.deploy(model, name, config, progress=progress)
            deployed = deck.deployments.wait_for_deployment(name, progress=progress)
            status.update(label=f"{name} is Healthy", state="complete", expanded=False)
        except DeploymentFailedError as e:
            status.update(label=f"{name} failed", state="error", expanded=False)
            failure = e
        except ModelDeckError as e:
            status.update(label=f"{name} could not be deployed", state="error", expanded=False)
            failure = e
    if isinstance(failure, DeploymentFailedError):
        st.error(f"Deployment {name} {failure.state.lower()}: {failure.reason}")
        if failure.logs:
            st.code(failure.logs, language=None)
        st.caption("The deployment is stopped and kept so its logs can be read: delete it below.")
    elif failure is not None:
        fail(failure, "Deployment failed")
    if deployed is not None:
        st.session_state.test_deployment = name
        st.success(f"**{name}** is Healthy. Scoring URI:")
        st.code(deployed.scoring_uri, language=None)
        st.page_link("views/test.py", label="Test it", icon=":material/labs:")

st.divider()
head, refresh = st.columns([5, 1])
head.subheader("Deployments")
refresh.button("Refresh", icon=":material/refresh:", width="stretch")
try:
    deployments = deck.deployments.list()
except ModelDeckError as e:
    fail(e, "Cannot list deployments")
    st.stop()
if not deployments:
    st.info("No deployment yet.")
    st.stop()

st.dataframe([{"name": d.name, "state": str(d.state), "model": d.model_id,
               "runtime": d.runtime, "scoring URI": d.scoring_uri or "", "CPU": d.config.cpu_cores,
               "memory (GB)": d.config.memory_gb, "age": age(d.created_at), "detail": d.detail,
               "tags": ", ".join(f"{k}={v}" for k, v in d.config.tags.items())} for d in deployments],
             hide_index=True, width="stretch")

chosen = st.selectbox("Deployment", [d.name for d in deployments], key="manage_deployment")
show_logs, delete = st.columns(2)
if show_logs.button("Logs", icon=":material/article:", width="stretch"):
    try:
        st.code(deck.deployments.get_logs(chosen, tail=200) or "(no output yet)", language=None)
    except ModelDeckError as e:
        fail(e, "Cannot read the logs")
if delete.button("Delete…", icon=":material/delete:", width="stretch"):
    st.session_state.confirm_delete = chosen
if st.session_state.get("confirm_delete") == chosen:
    st.warning(f"Delete **{chosen}**? Its container (or process) and logs are removed.")
    yes, no = st.columns(2)
    if yes.button(f"Yes, delete {chosen}", type="primary", width="stretch"):
        try:
            deck.deployments.delete(chosen)
            st.session_state.pop("confirm_delete", None)
            st.toast(f"Deleted {chosen}")
            st.rerun()
        except ModelDeckError as e:
            fail(e, "Cannot delete")
    if no.button("Cancel", width="stretch"):
        st.session_state.pop("confirm_delete", None)
        st.rerun()
