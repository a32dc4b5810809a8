"""Test page: random images with predictions, the whole test set scored, and the raw request."""

import numpy as np
import streamlit as st

from backend.datasets import DATASET_NAMES, TestSet, load_dataset
from backend.errors import ModelDeckError
from backend.inspection.evaluation import evaluate, predictions_csv, sample, score_testset, supports_binary
from backend.inspection.plots import confusion_heatmap, sample_strip, to_png
from backend.inspection.snippets import curl_snippet, python_snippet
from backend.runtimes import DeploymentState
from dashboard.common import fail, get_deck

deck = get_deck()
st.title("Test")


@st.cache_data(show_spinner="Loading the test set…")
def testset(name: str) -> TestSet:
    return load_dataset(name)


try:
    healthy = [d for d in deck.deployments.list() if d.state is DeploymentState.HEALTHY]
except ModelDeckError as e:
    fail(e, "Cannot list deployments")
    st.stop()
if not healthy:
    st.info("No deployment is Healthy: deploy a model first.")
    st.page_link("views/deploy.py", label="Go to Deploy", icon=":material/rocket_launch:")
    st.stop()

names = [d.name for d in healthy]
preferred = st.session_state.get("test_deployment")
left, right = st.columns([3, 1])
chosen = left.selectbox("Deployment", names, index=names.index(preferred) if preferred in names else len(names) - 1)
dataset_name = right.selectbox("Test set", DATASET_NAMES, index=0,
                               format_func={"mnist": "MNIST 10k (bundled)", "digits": "scikit-learn digits 8x8",
                                            "fashion-mnist": "Fashion-MNIST 10k"}.get)
deployment = next(d for d in healthy if d.name == chosen)
uri = deployment.scoring_uri
st.caption(f"{deployment.model_id} on {deployment.runtime} — `{uri}`")
try:
    data = testset(dataset_name)
except ModelDeckError as e:
    fail(e, "Cannot load the test set")
    st.stop()
binary = supports_binary(deck.client, uri)
key = f"{chosen}/{dataset_name}"

st.subheader("Send random test images")
c1, c2, c3 = st.columns([3, 1, 2])
n = c1.slider("How many", 1, 100, 30)
seed = c2.number_input("Seed (optional)", min_value=0, value=None, step=1, placeholder="random")
if c3.button(f"Send {n} random test images", type="primary", icon=":material/casino:", width="stretch"):
    try:
        st.session_state[f"samples/{key}"] = sample(deck.client, uri, data, n, seed=seed, use_binary=binary)
    except ModelDeckError as e:
        fail(e, "Scoring failed")
samples = st.session_state.get(f"samples/{key}")
if samples is not None:
    correct = int(samples.correct.sum())
    st.markdown(f"**{correct} of {len(samples.labels)} correct** — misclassified images have a red title "
                "on an inverted colormap.")
    strip_png = to_png(sample_strip(samples))
    st.image(strip_png, width="stretch")
    d1, d2 = st.columns(2)
    d1.download_button("Download images (PNG)", strip_png, f"{chosen}-samples.png", "image/png")
    d2.download_button("Download predictions (CSV)", predictions_csv(samples.indices, samples.labels,
                       samples.predictions, samples.class_names), f"{chosen}-samples.csv", "text/csv")

st.subheader("Score the whole test set")
if st.button(f"Score the whole test set ({len(data):,} images)", type="primary", icon=":material/grid_on:"):
    bar = st.progress(0.0, text="Scoring…")
    try:
        predictions = score_testset(deck.client, uri, data, batch_size=2000, use_binary=binary,
                                    progress=lambda done, total: bar.progress(done / total,
                                                                              text=f"Scored {done:,} of {total:,}"))
        st.session_state[f"evaluation/{key}"] = evaluate(data.y, predictions, data.class_names)
        bar.empty()
    except ModelDeckError as e:
        bar.empty()
        fail(e, "Scoring failed")
evaluation = st.session_state.get(f"evaluation/{key}")
if evaluation is not None:
    m1, m2, m3 = st.columns(3)
    m1.metric("Accuracy", f"{evaluation.accuracy:.2%}")
    m2.metric("Images", f"{evaluation.n:,}")
    m3.metric("Errors", f"{evaluation.n - int(np.trace(evaluation.confusion)):,}")
    heat, side = st.columns([3, 2])
    heatmap_png = to_png(confusion_heatmap(evaluation))
    heat.image(heatmap_png, caption="Normalised confusion matrix: rows normalised, diagonal zeroed", width="stretch")
    side.markdown("**Most confused**")
    side.markdown("\n".join(f"- {pair}" for pair in evaluation.most_confused) or "none")
    side.markdown("**Per class**")
    side.dataframe({"class": list(evaluation.labels), "precision": evaluation.precision.round(4),
                    "recall": evaluation.recall.round(4)}, hide_index=True)
    with st.expander("Confusion matrix (counts; rows: true label, columns: predicted label)"):
        st.dataframe({"true \\ predicted": list(evaluation.labels),
                      **{label: evaluation.confusion[:, j] for j, label in enumerate(evaluation.labels)}},
                     hide_index=True)
    d1, d2 = st.columns(2)
    d1.download_button("Download heatmap (PNG)", heatmap_png, f"{chosen}-confusion.png", "image/png")
    d2.download_button("Download all predictions (CSV)", predictions_csv(np.arange(len(data)), data.y,
                       evaluation.predictions, data.class_names), f"{chosen}-predictions.csv", "text/csv")

st.subheader("The raw request")
row = data.X[0]
t1, t2 = st.tabs(["curl", "Python (requests)"])
t1.code(curl_snippet(uri, row), language="bash")
t2.code(python_snippet(uri, row), language="python")
