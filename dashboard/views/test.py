"""Test page: random images with predictions, the whole test set scored, and the raw request.

The chosen deployment and test set live in the URL (?deployment=...&dataset=...); the last results of
each deployment and test set are kept under the home, so a reload or a shared link shows them again.
"""

import numpy as np
import streamlit as st

from backend.datasets import TestSet, datasets_for, load_dataset
from backend.errors import ModelDeckError
from backend.inspection.evaluation import evaluate_endpoint, predictions_csv, sample, supports_binary
from backend.inspection.plots import confusion_heatmap, sample_strip, to_png
from backend.inspection.snippets import curl_snippet, python_snippet
from backend.registry import Signature
from backend.timefmt import age
from dashboard.common import fail, get_deck, nothing_chosen, scoring_failed, snapshot, url_select, verbatim

deck = get_deck()
st.title("Test")


@st.cache_data(show_spinner="Loading the test set…")
def testset(name: str) -> TestSet:
    return load_dataset(name)


@st.cache_data(show_spinner=False)
def takes_binary(uri: str, deployment_uid: str, _key: str | None) -> bool:
    """Whether the endpoint takes .npy bodies; asked once per deployment (a port can be reused)."""
    return supports_binary(deck.client, uri, _key)


listing = snapshot()
for twice in sorted(listing.ambiguous):
    st.warning(f"Deployment {verbatim(repr(twice))} exists on two runtimes (one was made while the other did not "
               "answer): it is not offered here until one is deleted (Deploy page).", icon=":material/warning:")
healthy = {d.name: d for d in listing.healthy if d.name not in listing.ambiguous}
if not healthy:
    st.info("No deployment is Healthy: deploy a model first.")
    st.page_link("views/deploy.py", label="Go to Deploy", icon=":material/rocket_launch:")
    st.stop()


def why_gone(name: str) -> str:
    found = listing.find(name)
    if found is None:
        return verbatim(f"Deployment {name!r} is not a deployment of this home (any more): choose another.")
    return verbatim(f"Deployment {name!r} is {found.state} now, not Healthy: choose another, or see Deploy → Logs.")


newest = max(healthy.values(), key=lambda d: d.created_at).name
left, right = st.columns([3, 2])
chosen = url_select("Deployment", list(healthy), "deployment", key="test_deployment", container=left, default=newest, gone=why_gone,
                    format_func=lambda n: f"{n} — {healthy[n].model_id} on {healthy[n].runtime}")
if chosen is None:
    nothing_chosen("a deployment")
deployment = healthy[chosen]
model = deck.deployments.model_of(deployment)
signature = model.signature if model is not None else Signature()
fitting, hidden = datasets_for(signature)
if not fitting:
    st.warning(verbatim(f"No test set fits {deployment.model_id} ({signature.describe()})."))
    st.stop()
titles = {info.name: info.title for info in fitting}
dataset_name = url_select("Test set", list(titles), "dataset", key="test_dataset", container=right, default=fitting[0].name,
                          format_func=titles.__getitem__,
                          gone=lambda lost: verbatim(f"Test set {lost!r} does not fit {deployment.model_id}: "
                                                     "choose another."))
if dataset_name is None:
    nothing_chosen("a test set")
uri = deployment.scoring_uri or ""
st.caption(verbatim(f"{deployment.model_id} on {deployment.runtime} — ") + f"`{uri}`"
           + verbatim(f" — input: {signature.describe()}"))
if hidden:
    st.caption("Not offered: " + "; ".join(f"{verbatim(info.title)}: {verbatim(why)}" for info, why in hidden))
try:
    data = testset(dataset_name)
except ModelDeckError as e:
    fail(e, "Cannot load the test set")
    st.stop()
try:
    key = deck.deployments.key_for(deployment)  # None without key auth
except ModelDeckError as e:
    fail(e, "Cannot read the deployment's key")
    st.stop()
binary = takes_binary(uri, deployment.record.uid, key)


def scored_caption(kind: str) -> None:
    when = deck.results.saved_at(deployment, dataset_name, kind)
    if when:
        st.caption(verbatim(f"{chosen} ({deployment.model_id}) on {titles[dataset_name]}, scored {age(when)} ago"))


st.subheader("Send random test images")
c1, c2, c3 = st.columns([3, 1, 2])
# Keyed, and kept while hidden: a click is never lost to a widget that changed its identity.
n = c1.slider("How many", 1, 100, 30, key="how_many", persist_state="page")
seed = c2.number_input("Seed (optional)", min_value=0, value=None, step=1, placeholder="any", key="seed",
                       persist_state="page")
if c3.button(f"Send {n} random test images", type="primary", icon=":material/casino:", width="stretch",
             key="send_random"):
    try:
        fresh = sample(deck.client, uri, data, n, seed=seed, use_binary=binary, key=key)
        deck.results.save_samples(deployment, dataset_name, fresh)
    except ModelDeckError as e:
        scoring_failed(e, chosen)
samples = deck.results.load_samples(deployment, dataset_name)
if samples is not None:
    correct = int(samples.correct.sum())
    st.markdown(f"**{correct} of {len(samples.labels)} correct** — each image is titled *prediction (true "
                "label)*; misclassified ones are red, on an inverted colormap.")
    scored_caption("samples")
    strip_png = to_png(sample_strip(samples))
    st.image(strip_png, width="stretch")
    d1, d2 = st.columns(2)
    d1.download_button("Download images (PNG)", strip_png, f"{chosen}-samples.png", "image/png")
    d2.download_button("Download predictions (CSV)", predictions_csv(samples.indices, samples.labels,
                       samples.predictions, samples.class_names), f"{chosen}-samples.csv", "text/csv")

st.subheader("Score the whole test set")
if st.button(f"Score the whole test set ({len(data):,} images)", type="primary", icon=":material/grid_on:",
             key="score_all"):
    bar = st.progress(0.0, text="Scoring…")
    try:
        scored = evaluate_endpoint(deck.client, uri, data, batch_size=2000, use_binary=binary, key=key,
                                   progress=lambda done, total: bar.progress(done / total,
                                                                             text=f"Scored {done:,} of {total:,}"))
        deck.results.save_evaluation(deployment, dataset_name, data.y, scored)
    except ModelDeckError as e:
        scoring_failed(e, chosen)
    bar.empty()
evaluation = deck.results.load_evaluation(deployment, dataset_name)
if evaluation is not None:
    scored_caption("evaluation")
    m1, m2, m3 = st.columns(3)
    m1.metric("Accuracy", f"{evaluation.accuracy:.2%}")
    m2.metric("Images", f"{evaluation.n:,}")
    m3.metric("Errors", f"{evaluation.n - int(np.trace(evaluation.confusion)):,}")
    heat, side = st.columns([3, 2])
    heatmap_png = to_png(confusion_heatmap(evaluation, subject=f"{chosen} ({deployment.model_id}) on {titles[dataset_name]}"))
    heat.image(heatmap_png, caption="Normalised confusion matrix: rows normalised, diagonal zeroed", width="stretch")
    side.markdown("**Most confused**")
    side.markdown("\n".join(f"- {verbatim(str(pair))}" for pair in evaluation.most_confused) or "none")
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
keyed = (chosen, str(deck.home.path)) if deployment.config.auth_enabled else None
t1.code(curl_snippet(uri, row, keyed), language="bash")
t2.code(python_snippet(uri, row, keyed), language="python")
if keyed:
    st.caption("Key auth is on: the snippets read the primary key with `modeldeck deployments keys` "
               "(Deploy page → Keys shows and rotates the keys).")
