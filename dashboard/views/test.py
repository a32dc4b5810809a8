"""Test page: random images with predictions, the whole test set scored, and the raw request.

The chosen deployment, test set and perturbation live in the URL (?deployment=...&dataset=...&perturb=rotate=15);
the last results of each deployment and test set are kept under the home, so a reload or a shared link shows
them again.
"""

import zlib
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import streamlit as st

from backend.data.preprocess import InputForm
from backend.data.testset import TestSet, format_range
from backend.data.uploads import formats_help
from backend.errors import InvalidPerturbationError, ModelDeckError, ScoringError
from backend.inspection.calibration import BINS, calibration_of
from backend.inspection.evaluation import Evaluation, Samples, class_name, predictions_csv
from backend.inspection.explain import Explanation
from backend.inspection.figures import (
    confusion_heatmap,
    flip_figure,
    image_grid,
    patch_explanation,
    patch_reach,
    sample_strip,
    to_png,
    weight_figure,
)
from backend.inspection.flip import Flip
from backend.inspection.interactive_charts import (
    CELL,
    PREDICTED_CLASS,
    TRUE_CLASS,
    confusion_chart,
    duel_bars,
    probability_bars,
    reliability_chart,
    robustness_chart,
)
from backend.inspection.perturb import Perturbation, kinds_of
from backend.inspection.rows import row_table
from backend.inspection.snippets import example_of
from backend.registry import Signature, parse_image_shape, parse_value_range
from backend.runtimes.base import Deployment
from backend.services import kept, managing
from backend.services.explaining import class_weight_maps, explain_row
from backend.services.flipping import counterfactual_image
from backend.services.reports import make_report, report_pdf
from backend.services.scoring import ImagePrediction, predict_image, robustness_curve, score_and_keep, send_random
from backend.services.scoring import input_form as input_form_of
from backend.services.testsets import add_testset, fitting_testsets, for_model
from backend.shown import shown
from backend.timefmt import friendly_time
from backend.words import count
from dashboard.cache import kept_evaluation, vega_spec
from dashboard.canvas import drawing_pad
from dashboard.cases_view import cases_view, flag_own, flag_rows, said_flagged
from dashboard.common import (
    NO_SHRINK,
    Notice,
    answered,
    cannot_answer,
    choose,
    fail,
    get_deck,
    gone_notice,
    no_answer_said,
    nothing_chosen,
    percent,
    presenting,
    remembered,
    revision_of,
    scoring_failed,
    show_notice,
    snapshot,
    testset,
    url_select,
    verbatim,
)
from dashboard.request_view import example_row, request_sections
from dashboard.tables import show_rows
from dashboard.whatif import importance_view, whatif_view

deck = get_deck()
st.title("Test")



def own_set_form(model_range: tuple[float, float] | None) -> None:
    """Upload an .npz, two IDX files or a zip of class folders; the new set is chosen at once. Its values
    are kept, or rescaled onto `model_range` (the model's) when the user asks."""
    st.caption(verbatim(f"Give {formats_help()}.") + " Same as `modeldeck datasets add NAME FILE...`"
               " (`--label COLUMN` for a table).")
    # The form's widgets are made anew after each set added (a new key), so the next one starts empty: a kept
    # upload would join the next one's files (two .npz read as an IDX pair)
    added = st.session_state.get("_own_sets_added", 0)
    with st.form("own_set"):
        files = st.file_uploader("Files", accept_multiple_files=True, key=f"own_set_files/{added}")
        n1, n2 = st.columns(2)
        set_name = n1.text_input("Name", placeholder="my-digits", help="3-63 of a-z, 0-9, '-' and '_'",
                                 key=f"own_set_name/{added}")
        set_title = n2.text_input("Title (optional)", key=f"own_set_title/{added}")
        r1, r2 = st.columns(2)
        set_range = r1.text_input("Value range (optional)", placeholder="read from the data, e.g. 0-16",
                                  key=f"own_set_range/{added}",
                                  help="The range the values are on, e.g. 0-1, 0-16 or 0-255. Values are kept as "
                                       "they are: a model whose range they do not fit is not offered this set.")
        set_shape = r2.text_input("Image shape (h×w, optional)", placeholder="e.g. 5x6", key=f"own_set_shape/{added}",
                                  help="For rows of values that are not square images: HEIGHTxWIDTH, e.g. 5x6 for "
                                       "rows of 30 values. Same as --image-shape.")
        set_label = st.text_input("Label column (a CSV or Parquet table)", placeholder="e.g. target",
                                  key=f"own_set_label/{added}",
                                  help="The column of true labels; the other columns are the features. Same as --label.")
        rescale = model_range is not None and st.checkbox(
            verbatim(f"Rescale the values onto the model's range {format_range(model_range)}"),
            key=f"own_set_rescale/{added}",
            help="Maps the set's range (as declared or read) linearly onto the model's. Only when you ask.")
        submitted = st.form_submit_button("Add test set", icon=":material/add:")
    if submitted:
        try:
            info = add_testset(deck, set_name.strip(), {upload.name: upload.getvalue() for upload in files or []},
                               set_title.strip(), value_range=parse_value_range(set_range),
                               rescale_to=model_range if rescale else None, image_shape=parse_image_shape(set_shape),
                               label=set_label.strip() or None)
        except ModelDeckError as e:
            fail(e, "Cannot add that test set")
            return
        st.session_state["_own_sets_added"] = added + 1
        choose("test_dataset", info.name)
        st.toast(verbatim(f"Added test set {info.name}, " + (f"a table of {info.shape_text}" if info.is_table else
                                                              f"values in {format_range(info.value_range)}")))
        st.rerun()


@st.cache_data(max_entries=4, show_spinner="Perturbing the test set…")
def perturbed_set(name: str, revision: int, perturbation: Perturbation) -> TestSet:
    return perturbation.apply(testset(name, revision))


@st.cache_data(max_entries=16, show_spinner=False)
def input_form(name: str, revision: int) -> InputForm:
    """The form of the set's images: what a drawn or uploaded digit is made into."""
    return input_form_of(testset(name, revision))


listing = snapshot()
said = no_answer_said()  # the deployment the last request got no answer from, said above (once)
for twice in sorted(listing.ambiguous):
    st.warning(f"Deployment {verbatim(repr(twice))} exists on two runtimes (one was made while the other did not "
               "answer): it is not offered here until one is deleted (Deploy page).", icon=":material/warning:")
# Only deployments that can answer are offered; a chosen one that cannot is named with its state and why.
healthy = {d.name: d for d in listing.healthy if d.name not in listing.ambiguous}


def why_gone(name: str) -> Notice | None:
    if name == said:
        return None  # said above
    found = listing.find(name)
    return gone_notice(name) if found is None else cannot_answer(found)


if not healthy:
    if (wanted := remembered("test_deployment", "deployment")) is not None and (lost := why_gone(wanted)):
        show_notice(lost)
    st.info("No deployment is Healthy: deploy a model first (the Deploy page lists each deployment's state).")
    st.page_link("views/deploy.py", label="Go to Deploy", icon=":material/rocket_launch:")
    st.stop()


newest = max(healthy.values(), key=lambda d: d.created_at).name
left, right = st.columns([3, 2])
chosen = url_select("Deployment", list(healthy), "deployment", key="test_deployment", container=left, default=newest, gone=why_gone,
                    format_func=lambda n: f"{n} — {healthy[n].model_id} on {healthy[n].runtime}")
if chosen is None:
    nothing_chosen("a deployment")
deployment = healthy[chosen]
model = managing.model_of(deck, deployment)
signature = model.signature if model is not None else Signature()
choice = fitting_testsets(deck, model)
fitting, hidden = choice.fitting, choice.hidden
with st.expander("Add your own test set", icon=":material/upload_file:"):
    own_set_form(signature.value_range)
if not fitting:  # the set-based sections need a set; the request console and snippets do not
    st.warning(verbatim(f"No test set fits {deployment.model_id} ({signature.describe()}).") + "\n\n"
               + "\n".join(f"- {verbatim(info.title)}: {verbatim(why)}" for info, why in hidden),
               icon=":material/warning:")
    try:
        if not presenting():  # technical detail, as below
            request_sections(deck, deployment, managing.key_for(deck, deployment), example_row(signature), "none")
    except ModelDeckError as e:
        fail(e, "Cannot read the deployment's key")
    st.stop()
titles = {info.name: shown(info.title) for info in fitting}
# Opens on the test set of this deployment's latest kept evaluation, where the address names none.
latest = next((r.dataset for r in kept.evaluations(deck, deployment=deployment.name)
               if r.deployment_uid == deployment.record.uid and r.dataset in titles), fitting[0].name)
not_fitting = {info.name: why for info, why in hidden}


def why_not_offered(lost: str) -> str:
    if lost in not_fitting:
        return verbatim(f"Test set {lost!r} does not fit {deployment.model_id}: {not_fitting[lost]}. "
                        "Choose another.")
    return verbatim(f"Test set {lost!r} is not a test set of this home (any more): choose another.")


dataset_name = url_select("Test set", list(titles), "dataset", key="test_dataset", container=right, default=latest,
                          format_func=titles.__getitem__, gone=why_not_offered)
uri = deployment.scoring_uri or ""
presentation = presenting()
if not presentation:  # technical detail
    st.caption(verbatim(f"{deployment.model_id} on {deployment.runtime} — ") + f"`{uri}`"
               + verbatim(f" — input: {signature.describe()}"))
if hidden and not presentation:  # drawn while no set is chosen too: why the others are not offered
    st.caption("Not offered: " + "; ".join(f"{verbatim(info.title)}: {verbatim(why)}" for info, why in hidden))
if dataset_name is None:
    nothing_chosen("a test set")
try:
    data = for_model(testset(dataset_name, revision_of(dataset_name)), model)  # a table's columns in the model's order
except ModelDeckError as e:
    fail(e, "Cannot load the test set")
    st.stop()
perturb_kinds = kinds_of(data)  # the kinds for these images (8x8: shift up to 2.25) or for a table's rows
noun = data.rows_noun  # "image" or "row"
PERTURB_PARAM = "perturb"
linked: Perturbation | None = None  # the address's (a link or a reload): where the widgets start when new
try:
    if (linked_text := st.query_params.get(PERTURB_PARAM)) is not None:
        linked = Perturbation.from_key(linked_text)
        if linked.kind not in perturb_kinds:
            raise InvalidPerturbationError(f"{linked.describe()} does not apply to {noun}s")
        # onto the slider's steps, so what the slider shows is what is applied
        sized = perturb_kinds[linked.kind]
        linked = replace(linked, strength=min(sized.maximum, max(sized.minimum, sized.snapped(linked.strength))))
except InvalidPerturbationError as e:
    linked = None
    st.warning(verbatim(f"The address asks for a perturbation that cannot be applied: {e}. The {noun}s are shown as "
                        "they are."), icon=":material/warning:")
kinds = ["none", *perturb_kinds]
if st.session_state.get("perturb_kind", "none") not in kinds:  # chosen for another set (images, not rows)
    del st.session_state["perturb_kind"]
if st.session_state.get("perturb_kind", linked.kind if linked else "none") != "none":
    st.session_state["_perturb_opened"] = True  # stays open once used, "none" chosen again included
with st.expander("Perturb the rows: noise, columns set to their median" if data.is_table else
                 "Perturb the images: noise, rotation, shift, blur, stroke thickness",
                 expanded=st.session_state.get("_perturb_opened", False), icon=":material/blur_on:"):
    pc1, pc2, pc3 = st.columns([2, 3, 1])
    kind_name = pc1.selectbox("Perturbation", kinds, index=kinds.index(linked.kind) if linked else 0,
                              key="perturb_kind", persist_state="page",
                              format_func=lambda k: "none" if k == "none" else perturb_kinds[k].label)
    perturbation = None
    if kind_name != "none":
        kind = perturb_kinds[kind_name]
        start = linked.strength if linked and linked.kind == kind_name else kind.curve[len(kind.curve) // 2]
        strength = pc2.slider(f"Strength: {kind.unit}", kind.minimum, kind.maximum, start, kind.step,
                              format=f"%.{kind.decimals}f", persist_state="page",  # a key per range (image size)
                              key=f"perturb_strength/{kind_name}/{kind.minimum:g}-{kind.maximum:g}")
        perturb_seed = pc3.number_input("Seed", 0, value=linked.seed if linked else 0, key="perturb_seed",
                                        persist_state="page", disabled=not kind.random,
                                        help="for the random kinds (noise, shift)")
        if strength != 0:
            perturbation = Perturbation(kind_name, float(strength), int(perturb_seed))
        st.caption(f"Applies to the random {noun}s (shown under the originals) and to the whole test set.")
if perturbation is None:
    st.query_params.pop(PERTURB_PARAM, None)
else:  # a reload or a shared link opens the same perturbation
    st.query_params[PERTURB_PARAM] = perturbation.key
scored_set = data if perturbation is None else perturbed_set(dataset_name, revision_of(dataset_name), perturbation)
results_key = scored_set.name if perturbation is not None else dataset_name
set_title = titles[dataset_name] + ("" if perturbation is None else f", {perturbation.describe()}")
try:
    key = managing.key_for(deck, deployment)  # None without key auth
except ModelDeckError as e:
    fail(e, "Cannot read the deployment's key")
    st.stop()


def clicked(event: object, memory: str) -> tuple[int | None, int | None]:
    """(true label, predicted label) the reader last clicked in the confusion chart: a cell gives both,
    a margin bar one; None where nothing is chosen. The chart keeps a selection per part, so the part
    whose selection changed since the last run (remembered under `memory`) is the one just clicked."""
    selection = getattr(event, "selection", None) or {}
    current = {name: selection.get(name) or [] for name in (CELL, TRUE_CLASS, PREDICTED_CLASS)}
    before, last = st.session_state.get(memory, ({}, None))
    changed = [name for name, points in current.items() if points and points != before.get(name)]
    latest = changed[0] if changed else last if last and current.get(last) else next(
        (name for name, points in current.items() if points), None)
    st.session_state[memory] = (current, latest)
    if latest is None or not isinstance(current[latest][0], dict):
        return None, None
    point = current[latest][0]
    return (int(point["true"]) if latest in (CELL, TRUE_CLASS) else None,
            int(point["predicted"]) if latest in (CELL, PREDICTED_CLASS) else None)


def gallery(title: str, indices: np.ndarray, scored: TestSet, evaluation: Evaluation, key: str,
            paged: bool = True) -> None:
    """Test images of the set as scored by index, titled "prediction (true)", most confident first where known (a
    table's rows as a table), with a Flag button for them."""
    shown_gallery(title, indices, scored, evaluation, key, paged)
    page = st.session_state.get(f"page/{key}", 1)
    on_page = indices[(page - 1) * GALLERY_PAGE:page * GALLERY_PAGE]
    flag_rows(deployment, data, [int(i) for i in on_page], [int(p) for p in evaluation.predictions[on_page]],
              f"flag/{key}", perturbation)
    explain_one(scored.X[on_page], [int(i) for i in on_page], [int(p) for p in evaluation.predictions[on_page]], key)


GALLERY_PAGE = 30


def shown_gallery(title: str, indices: np.ndarray, data: TestSet, evaluation: Evaluation, key: str,
                  paged: bool = True) -> None:
    per_page = GALLERY_PAGE
    st.markdown(f"**{verbatim(title)}**")
    if len(indices) == 0:
        st.caption("none")
        return
    page = 1
    if paged and len(indices) > per_page:
        pages = (len(indices) + per_page - 1) // per_page
        page = int(st.columns([1, 4])[0].number_input(f"Page (of {pages})", 1, pages, 1, key=f"page/{key}"))
    shown = indices[(page - 1) * per_page:page * per_page]
    if data.feature_names is not None:
        confidence = evaluation.confidence
        show_rows(row_table(data.X[shown], data.feature_names, shown, data.y[shown], evaluation.predictions[shown],
                            data.class_names, None if confidence is None else confidence[shown],
                            categories=data.categories))
        return
    st.image(grid_png(deployment.record.uid, results_key, kept.revision(deck, deployment, results_key, "evaluation"),
                      tuple(int(i) for i in shown), data, evaluation), width="stretch")
    st.caption("Test images " + ", ".join(f"#{int(i)}" for i in shown[:12]) + (" …" if len(shown) > 12 else ""))


@st.cache_data(max_entries=64, show_spinner=False)
def grid_png(uid: str, dataset: str, revision: int, shown: tuple[int, ...], _data: TestSet,
             _evaluation: Evaluation) -> bytes:
    """The gallery picture of test images `shown` of one kept evaluation (by deployment id, test set
    and when it was saved): drawn once, not on every click."""
    indices = np.asarray(shown, dtype=np.int64)
    confidence = _evaluation.confidence
    assert _data.image_shape is not None  # a table's rows are shown as a table
    return to_png(image_grid(_data.X[indices], _data.image_shape, _data.y[indices], _evaluation.predictions[indices],
                             _data.class_names, None if confidence is None else confidence[indices],
                             value_range=_data.value_range))


@st.cache_data(max_entries=16, show_spinner=False)
def strip_png_of(uid: str, dataset: str, revision: int, _samples: Samples) -> bytes:
    return to_png(sample_strip(_samples))


def scored_caption(kind: str, results: str, title: str) -> None:
    when = kept.saved_at(deck, deployment, results, kind)
    if when:
        st.caption(verbatim(f"{chosen} ({deployment.model_id}) on {title}, scored {friendly_time(when)}"))



def rivals() -> list[str]:
    """The other Healthy deployments whose model takes this test set: what a duel can be fought with."""
    return [name for name, other in healthy.items() if name != deployment.name and dataset_name in
            {info.name for info in fitting_testsets(deck, managing.model_of(deck, other)).fitting}]


duel_choices = ["none", *rivals()] if not data.is_table else ["none"]


def rival_of(name: str | None) -> Deployment | None:
    """The deployment a duel is fought with (`?duel=NAME`): it scores every drawn, uploaded and console input too."""
    return healthy.get(name) if name is not None and name != "none" and name in duel_choices else None


rival = rival_of(remembered("test_duel", "duel"))


@st.cache_resource(max_entries=32, show_spinner=False)
def explained_at(uid: str, dataset: str, digest: int, class_index: int, _row: np.ndarray) -> Explanation:
    """An image's explanation for one class at the deployment (by uid), for the set's form, by the image's digest:
    once, not on every rerun of the page while it is shown."""
    return explain_row(deck, deployment, data, _row, class_index=class_index)


@st.cache_resource(max_entries=16, show_spinner=False)
def flipped_at(uid: str, dataset: str, digest: int, to: int, _row: np.ndarray) -> Flip:
    """The search's edit toward class `to` (index) for an image at the deployment, once per image and class."""
    return counterfactual_image(deck, deployment, data, _row, data.class_names[to])


def digest(row: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(row).tobytes())


EXPLAINED = ("Each patch switched from a blank image to this one's pixels, in {} random orders of the patches: blue "
             "patches pushed the answer toward the class, red ones away; together they add up to the difference from "
             "the blank image.")


def explain_image(row: np.ndarray, predicted: int) -> None:
    """Each patch's part in the class the deployment predicts for the image (Shapley values through the endpoint)."""
    assert data.image_shape is not None
    explanation = answered(lambda: explained_at(deployment.record.uid, dataset_name, digest(row), predicted, row),
                           "Cannot explain it", deployment)
    if explanation is None:
        return
    st.image(to_png(patch_explanation(explanation, data.image_shape, data.value_range, data.class_names)), width=720)
    st.caption(EXPLAINED.format(explanation.orderings) + " " + explanation.precision_words())


def weights_view() -> None:
    """What the deployment looks for in each class (one request), and whether those are its exact weights."""
    assert data.image_shape is not None
    maps = answered(lambda: class_weight_maps(deck, deployment, data), "Cannot read what it looks for", deployment)
    if maps is None:
        return
    st.image(to_png(weight_figure(maps, data.image_shape, data.class_names)), width=720)
    st.caption("Each class's map: ink on blue pixels raises that class, on red ones lowers it. " + (
        "The model is linear (its answers to test images match the maps): these are its exact weights, each class's "
        "minus their mean." if maps.linear else
        f"The model is not linear (its answers to test images differ from what the maps predict "
        f"{maps.mismatch_words()}): these "
        "are its answers to single inked pixels, a first look only."))


def flip_view(row: np.ndarray, said: int, key: str) -> None:
    """ "What would make it a ...?": the smallest edit the search finds that makes the deployment answer the class
    chosen, as the image, the edited image and their difference."""
    assert data.image_shape is not None
    to = st.selectbox("What would make it a …", [k for k in range(len(data.class_names)) if k != said], index=None,
                      format_func=lambda k: class_name(data.class_names, k), key=f"{key}/flip",
                      placeholder="choose a class", help="Brush marks (ink added beside the strokes, or taken away) "
                      "tried through the endpoint, the best kept each step, those not needed taken back")
    if to is None:
        return
    with st.spinner("Searching through the endpoint…"):
        found = answered(lambda: flipped_at(deployment.record.uid, dataset_name, digest(row), to, row), "Cannot search", deployment)
    if found is None:
        return
    st.image(to_png(flip_figure(found, data.image_shape, data.value_range, data.class_names)), width=720)
    target = class_name(data.class_names, to)
    at = f"at {deployment.name}" + (f" (not {rival.name})" if rival is not None else "")
    if found.said_already:
        st.info(f"It answers {target} already.")
    elif found.found:
        st.caption(f"{count(found.changed_pixels, 'pixel')} changed in {count(found.marks, 'mark')} make it answer "
                   f"{target} ({found.probabilities[to]:.0%}) {at}; {count(found.requests, 'request')}.")
    else:
        st.warning(f"No edit of up to {count(found.steps, 'mark')} made it answer {target} {at}: it still says "
                   f"{class_name(data.class_names, found.answer)}, and P({target}) is "
                   f"{found.probabilities[to]:.0%}; {count(found.requests, 'request')}.", icon=":material/search_off:")


def explain_one(images: np.ndarray, indices: Sequence[int], predictions: Sequence[int], key: str) -> None:
    """Under a strip or a gallery: pick one of its images (as scored: `images`), and see which parts made the answer
    and, where it is wrong, which made the true class."""
    if data.image_shape is None or not len(indices):
        return
    labels = data.y
    order = sorted(range(len(indices)), key=lambda k: labels[indices[k]] == predictions[k])  # wrong ones first
    with st.expander("Explain one: which parts of an image made its answer", icon=":material/lightbulb:"):
        pick = st.selectbox("Image", order, index=None, key=f"{key}/explain", placeholder="choose an image",
                            format_func=lambda k: f"#{indices[k]}: said {class_name(data.class_names, int(predictions[k]))}"
                                                  f", labelled {class_name(data.class_names, int(labels[indices[k]]))}")
        if pick is None:
            return
        said, true = int(predictions[pick]), int(labels[indices[pick]])
        flip_view(images[pick], said, f"{key}/{pick}")
        if said == true:
            explain_image(images[pick], said)
            return
        row = images[pick]
        both = answered(lambda: [explained_at(deployment.record.uid, dataset_name, digest(row), k, row) for k in (said, true)],
                        "Cannot explain it", deployment)
        if both is None:
            return
        reach = max(patch_reach(e) for e in both)  # one colour scale for both: the same blue is the same amount
        # side by side, or one under the other on a projector (two columns at 1024 make their words 8 px high)
        places = [st.container(), st.container()] if presentation else st.columns(2)
        for column, explanation, title in zip(places, both, (
                f"**Why {verbatim(class_name(data.class_names, said))}** (its answer)",
                f"**What speaks for {verbatim(class_name(data.class_names, true))}** (its label)"), strict=True):
            column.markdown(title)
            column.image(to_png(patch_explanation(explanation, data.image_shape, data.value_range, data.class_names,
                                                  reach)), width=720 if presentation else "stretch")
        st.caption(EXPLAINED.format(both[0].orderings) + " Both pictures share one colour scale. " +
                   max(both, key=lambda e: float(e.errors.max(initial=0.0))).precision_words())


st.subheader(f"Send random test {noun}s")
c1, c2 = st.columns([3, 1])  # the button below: in a third column its label broke over three lines at 1024 px
# Keyed, and kept while hidden: a click is never lost to a widget that changed its identity.
n = c1.slider("How many", 1, 100, 30, key="how_many", persist_state="page")
seed = c2.number_input("Seed (optional)", min_value=0, value=None, step=1, placeholder="any", key="seed",
                       persist_state="page")
if st.button(f"Send {n} random test {noun}s", type="primary", icon=":material/casino:", key="send_random"):
    try:
        send_random(deck, deployment, data, n, seed=seed, perturbation=perturbation)  # perturbed: the same images too
    except ModelDeckError as e:
        scoring_failed(e, deployment)


def rows_of(samples: Samples) -> None:
    """Random rows of a table as scored: a table, the wrong ones red."""
    show_rows(row_table(samples.images, samples.feature_names or (), samples.indices, samples.labels,
                        samples.predictions, samples.class_names, samples.confidence, categories=samples.categories))


samples = kept.samples(deck, deployment, dataset_name)
if samples is not None and samples.feature_names is not None:  # a table's rows
    st.markdown(f"**{int(samples.correct.sum())} of {len(samples.labels)} correct** — each row with the model's "
                "prediction, the true label" + (" and the confidence" if samples.probabilities is not None else "")
                + ", then its values; misclassified rows are red.")
    scored_caption("samples", dataset_name, titles[dataset_name])
    rows_of(samples)
    flag_rows(deployment, data, samples.indices.tolist(), samples.predictions.tolist(), "flag/strip")
    changed = kept.samples(deck, deployment, results_key) if perturbation is not None else None
    if perturbation is not None and changed is not None and np.array_equal(changed.indices, samples.indices):
        st.markdown(verbatim(f"The same rows with {perturbation.describe()}: ")
                    + f"**{int(changed.correct.sum())} of {len(changed.labels)} correct**")
        rows_of(changed)
        flag_rows(deployment, data, changed.indices.tolist(), changed.predictions.tolist(), "flag/strip-perturbed",
                  perturbation)
    elif perturbation is not None:
        st.caption(verbatim(f"Send again to see these rows with {perturbation.describe()} under them."))
    st.download_button("Download predictions (CSV)", predictions_csv(samples.indices, samples.labels,
                       samples.predictions, samples.class_names), f"{chosen}-samples.csv", "text/csv")
elif samples is not None:
    correct = int(samples.correct.sum())
    st.markdown(f"**{correct} of {len(samples.labels)} correct** — each image is titled *prediction (true "
                "label)*; misclassified ones are red, on an inverted colormap"
                + (", with the confidence beneath." if samples.probabilities is not None else
                   ". This scoring script returns labels only: no confidence."))
    scored_caption("samples", dataset_name, titles[dataset_name])
    strip_png = strip_png_of(deployment.record.uid, dataset_name,
                             kept.revision(deck, deployment, dataset_name, "samples"), samples)
    st.image(strip_png, width="stretch")
    flag_rows(deployment, data, samples.indices.tolist(), samples.predictions.tolist(), "flag/strip")
    explain_one(samples.images, samples.indices.tolist(), samples.predictions.tolist(), "strip")
    changed = kept.samples(deck, deployment, results_key) if perturbation is not None else None
    if perturbation is not None and changed is not None and np.array_equal(changed.indices, samples.indices):
        st.markdown(verbatim(f"The same images with {perturbation.describe()}: ")
                    + f"**{int(changed.correct.sum())} of {len(changed.labels)} correct**")
        st.image(strip_png_of(deployment.record.uid, results_key,
                              kept.revision(deck, deployment, results_key, "samples"), changed), width="stretch")
        flag_rows(deployment, data, changed.indices.tolist(), changed.predictions.tolist(), "flag/strip-perturbed",
                  perturbation)
        explain_one(changed.images, changed.indices.tolist(), changed.predictions.tolist(), "strip-perturbed")
    elif perturbation is not None:
        st.caption(verbatim(f"Send again to see these images with {perturbation.describe()} under them."))
    downloads = st.container(horizontal=True)
    downloads.download_button("Download images (PNG)", strip_png, f"{chosen}-samples.png", "image/png")
    downloads.download_button("Download predictions (CSV)", predictions_csv(samples.indices, samples.labels,
                              samples.predictions, samples.class_names), f"{chosen}-samples.csv", "text/csv")

def calibration_view(evaluation: Evaluation, revision: int) -> None:
    """How sure the model is of its answers against how often it is right: the reliability diagram and
    its expected calibration error (only when the endpoint gave probabilities); `revision` is the kept
    evaluation's."""
    calibration = calibration_of(evaluation)
    if calibration is None:
        return
    st.markdown("#### How sure, and how often right (calibration)")
    number, words = st.columns([1, 2])
    number.metric("Calibration error", f"{calibration.ece:.1%}",
                  help=f"Expected calibration error (ECE) over {BINS} equal-width bins of confidence; per bin, "
                       "the gap between the mean confidence and the share of answers right, weighted by the bin's "
                       "share of the answers. 0 % is a model whose \"90 % sure\" answers are right 90 % of the time, "
                       "and so on for every bin.")
    words.caption(verbatim(calibration.summary()) + " Bars: share right per band of confidence; dashed: perfectly "
                  "calibrated; red lines: the mean confidence in the band; beneath: answers per band.")
    st.vega_lite_chart(spec=vega_spec(("calibration", deployment.record.uid, results_key, revision),
                                      lambda: reliability_chart(calibration)),
                       key=f"calibration/{deployment.record.uid}/{results_key}")


# Each part below reruns alone when its own controls change (a whole-set score, a click on the matrix, a
# stroke on the pad, a Send in the console), not the whole page.
@st.fragment
def evaluation_view() -> None:
    """The whole-set score and what it found. Its button is in here, so a score reruns this section alone:
    the random images above and the sections below are neither made nor drawn again."""
    st.subheader("Score the whole test set")
    if st.button(f"Score the whole test set ({len(data):,} {noun}s"
                 + ("" if perturbation is None else f", {perturbation.describe()}") + ")",
                 type="primary", icon=":material/grid_on:", key="score_all"):
        bar = st.progress(0.0, text="Scoring…")
        try:
            score_and_keep(deck, deployment, data, source="dashboard", perturbation=perturbation,
                           progress=lambda done, total: bar.progress(done / total,
                                                                     text=f"Scored {done:,} of {total:,}"))
        except ModelDeckError as e:
            scoring_failed(e, deployment)
        bar.empty()
    evaluation = kept_evaluation(deck, deployment, results_key)
    evaluation_revision = kept.revision(deck, deployment, results_key, "evaluation")
    if evaluation is not None:
        scored_caption("evaluation", results_key, set_title)
        m1, m2, m3 = st.columns(3)
        m1.metric("Accuracy", percent(evaluation.accuracy))
        m2.metric(f"{noun.capitalize()}s", f"{evaluation.n:,}")
        m3.metric("Errors", f"{evaluation.n - int(np.trace(evaluation.confusion)):,}")
        subject = f"{chosen} ({deployment.model_id}) on {set_title}"
        if evaluation.probabilities is None:
            st.caption(":material/info: This scoring script returns labels only: no confidence, and galleries are in "
                       "test-set order.")
        heat, side = st.columns([3, 2])
        with heat, st.container(key=f"{NO_SHRINK}-confusion"):  # the table moves below it when narrow
            counts = st.toggle("Counts in the cells", key="cm_counts", persist_state="page")
            st.caption(f"Normalised confusion matrix: rows normalised, diagonal zeroed. Click a cell for its {noun}s, a "
                       "bar for a class's errors; double-click to clear.")
            # Keyed by deployment id and test set: a click on one deployment's matrix never shows another's images.
            event = st.vega_lite_chart(spec=vega_spec(
                ("confusion", deployment.record.uid, results_key, evaluation_revision, counts),
                lambda: confusion_chart(evaluation, counts, noun)), on_select="rerun",
                key=f"cm/{deployment.record.uid}/{results_key}", selection_mode=[CELL, TRUE_CLASS, PREDICTED_CLASS])
        side.markdown("**Most confused**")
        side.markdown("\n".join(f"- {verbatim(str(pair))}" for pair in evaluation.most_confused) or "none")
        side.markdown("**Per class**")
        held, said_as = evaluation.confusion.sum(axis=1), evaluation.confusion.sum(axis=0)
        side.dataframe({"class": list(evaluation.labels),  # a class no row holds (or none is said to be): no rate
                        "precision": [p * 100 if n else None for p, n in zip(evaluation.precision, said_as, strict=True)],
                        "recall": [r * 100 if n else None for r, n in zip(evaluation.recall, held, strict=True)]},
                       hide_index=True,
                       column_config={rate: st.column_config.NumberColumn(format="%.1f%%")
                                      for rate in ("precision", "recall")})
        true_class, predicted_class = clicked(event, f"cm-clicked/{deployment.record.uid}/{results_key}")
        if true_class is None and predicted_class is None:
            st.info(f"Click a cell of the matrix to see exactly those {noun}s.", icon=":material/touch_app:")
        elif true_class is not None and predicted_class is not None:
            shown = evaluation.cell(true_class, predicted_class)
            gallery(f"{len(shown):,} {noun}{'' if len(shown) == 1 else 's'} with true label {evaluation.labels[true_class]} and predicted "
                    f"{evaluation.labels[predicted_class]}", shown, scored_set, evaluation,
                    f"cell/{true_class}/{predicted_class}")
        else:  # a margin bar: that class's errors, as the bar counts them
            shown = evaluation.cell(true_class, predicted_class, errors_only=True)
            what = (f"true label {evaluation.labels[true_class]}, taken for another" if true_class is not None
                    else f"predicted {evaluation.labels[predicted_class]}, true label another" if predicted_class is not None
                    else "")
            gallery(f"{len(shown):,} error{'' if len(shown) == 1 else 's'}: {what}", shown, scored_set, evaluation,
                    f"errors/{true_class}/{predicted_class}")
        sure = evaluation.probabilities is not None
        # Only the open tab's gallery is drawn (each picture takes ~0.5-1.5 s the first time)
        wrong, unsure = st.tabs(["Confidently wrong", "Least confident right"] if sure else
                                ["Wrong (test-set order)", "Right (test-set order)"], key="gallery_tabs",
                                on_change="rerun")
        if wrong.open:
            with wrong:
                gallery("Wrong, with the highest probability on the wrong label" if sure else "Wrong answers",
                        evaluation.confidently_wrong(30), scored_set, evaluation, "wrong", paged=False)
        if unsure.open:
            with unsure:
                gallery("Right, with the lowest probability" if sure else "Right answers",
                        evaluation.least_confident_right(30), scored_set, evaluation, "unsure", paged=False)
        with st.expander("Confusion matrix (counts; rows: true label, columns: predicted label)"):
            st.dataframe({"true \\ predicted": list(evaluation.labels),
                          **{label: evaluation.confusion[:, j] for j, label in enumerate(evaluation.labels)}},
                         hide_index=True)
        calibration_view(evaluation, evaluation_revision)
        # one row that wraps: in four columns the labels broke over three or four lines at 1024 px
        downloads = st.container(horizontal=True)
        downloads.download_button("Download heatmap (PNG)",
                                  lambda: to_png(confusion_heatmap(evaluation, subject=subject)),
                                  f"{chosen}-confusion.png", "image/png")
        downloads.download_button("Download all predictions (CSV)", lambda: predictions_csv(
            np.arange(len(data)), data.y, evaluation.predictions, data.class_names), f"{chosen}-predictions.csv", "text/csv")
        if perturbation is None:  # the report is of the test set as it is
            downloads.download_button("Download report (HTML)", lambda: make_report(deck, deployment, data).html,
                                      f"{chosen}-{dataset_name}-report.html", "text/html", type="primary",
                                      icon=":material/summarize:", help="One self-contained file: model card, "
                                      "configuration, accuracy, confusion, examples, the latest load test. Opens offline.")
            downloads.download_button("Download report (PDF)",
                                      lambda: report_pdf(make_report(deck, deployment, data).html),
                                      f"{chosen}-{dataset_name}-report.pdf", "application/pdf",
                                      icon=":material/picture_as_pdf:")


def said_by_both(first: ImagePrediction, second: ImagePrediction) -> None:
    """A duel's answers side by side, whether they agree said first."""
    a, b = (class_name(data.class_names, p.predicted) for p in (first, second))
    assert rival is not None
    st.markdown(f"#### :green[Both say {verbatim(a)}]" if a == b else  # a heading: the point of a duel, seen from afar
                f"#### :red[They disagree: {verbatim(deployment.name)} says {verbatim(a)}, "
                f"{verbatim(rival.name)} says {verbatim(b)}]")
    for column, name, prediction in zip(st.columns(2), (deployment.name, rival.name), (first, second), strict=True):
        column.metric(verbatim(name), class_name(data.class_names, prediction.predicted),
                      f"{prediction.confidence:.0%} sure" if prediction.confidence is not None else None,
                      delta_color="off", delta_arrow="off")
    if first.probabilities is not None and second.probabilities is not None:  # one chart across: readable at 1024
        st.vega_lite_chart(spec=duel_bars(first.probabilities, second.probabilities, data.class_names,
                                          (deployment.name, rival.name), height=180))


@st.fragment
def own_digit_view() -> None:
    if signature.image_shape is None:
        st.info(verbatim(f"Drawing and uploads are for image models; {deployment.model_id} takes "
                         f"{signature.describe()}."))
    else:
        draw, result = st.columns([1, 1])
        with draw:
            st.caption("Draw a digit (white on black, as MNIST), or upload a photo or scan of one (while an "
                       "upload is chosen, it is the one scored).")
            drawn = drawing_pad(key=f"pad/{deployment.record.uid}")
            uploaded = st.file_uploader("Upload an image", type=["png", "jpg", "jpeg"], key="own_upload")
            # here, not beside the answer: a widget that keeps its place keeps its state in the browser too
            explain = st.toggle("Explain the answer", key="own_explain",
                                help="Which parts of the image made it: each patch's share, drawn over the image")
            looks_for = st.toggle("What it looks for", key="own_weights",
                                  help="In each class: where ink raises it (blue) or lowers it (red), read through "
                                       "the endpoint (a linear model's exact weights)")
        source = uploaded.getvalue() if uploaded is not None else drawn
        prediction = None
        with result:
            if source is None:
                st.info("Draw on the pad or upload an image: the prediction follows.", icon=":material/draw:")
            else:
                try:
                    # in the set's form: its size, how its digits fill it, its value range (8x8 in 0-16, say)
                    prediction = predict_image(deck, deployment, data, source,
                                               form=input_form(dataset_name, revision_of(dataset_name)))
                except ModelDeckError as e:
                    if isinstance(e, ScoringError):
                        scoring_failed(e, deployment)
                    else:
                        fail(e, "Cannot use that image")
                else:
                    second = None
                    if rival is not None:
                        try:
                            second = predict_image(deck, rival, data, source,
                                                   form=input_form(dataset_name, revision_of(dataset_name)))
                        except ScoringError as e:
                            scoring_failed(e, rival)
                    height, width = prediction.prepared.pixels.shape
                    if second is not None:
                        said_by_both(prediction, second)
                        st.image(prediction.prepared.pixels, caption=f"What both received ({height}x{width})",
                                 width=140, clamp=True)
                    else:
                        p1, p2 = st.columns([1, 1])
                        p1.metric("Prediction", class_name(data.class_names, prediction.predicted),
                                  f"{prediction.confidence:.0%} sure" if prediction.confidence is not None else None,
                                  delta_color="off", delta_arrow="off")
                        p2.image(prediction.prepared.pixels, caption=f"What the model received ({height}x{width})",
                                 width=140, clamp=True)
                        if prediction.probabilities is None:
                            st.caption("This scoring script returns labels only: no probabilities.")
                        else:
                            st.vega_lite_chart(spec=probability_bars(prediction.probabilities, data.class_names))
                    flag_own(deployment, data, prediction.prepared.row, prediction.predicted,
                             "uploaded" if uploaded is not None else "drawn", "flag/own")
        if prediction is not None:  # keyed by the digit: another drawing starts without a class chosen
            flip_view(prediction.prepared.row, prediction.predicted, f"own/{digest(prediction.prepared.row)}")
        if explain and prediction is not None:  # the width of the page: its labels readable at 1024 too
            explain_image(prediction.prepared.row, prediction.predicted)
        if looks_for:
            weights_view()


evaluation_view()

st.subheader("Robustness")


@st.fragment
def robustness_view() -> None:
    """Choosing a kind or drawing its curve reruns this section alone (the matrix above stays as it is)."""
    r1, r2 = st.columns([2, 3], vertical_alignment="bottom")
    curve_kind = r1.selectbox("Perturbation", list(perturb_kinds), format_func=lambda k: perturb_kinds[k].label, key="curve_kind",
                              persist_state="page")
    strengths = perturb_kinds[curve_kind].curve
    if r2.button(f"Robustness curve: {perturb_kinds[curve_kind].label.lower()} at {len(strengths)} strengths",
                 icon=":material/show_chart:", key="curve_go", width="stretch"):
        bar = st.progress(0.0, text="Scoring…")
        try:
            robustness_curve(deck, deployment, data, curve_kind, source="dashboard robustness",
                             progress=lambda done, total: bar.progress(done / total,
                                                                       text=f"{done} of {total} strengths scored"))
        except ModelDeckError as e:
            scoring_failed(e, deployment)
        bar.empty()
    curve = kept.curve(deck, deployment, dataset_name, curve_kind)
    if curve is None:
        st.caption(verbatim(f"Accuracy against the strength of one perturbation: strengths {', '.join(f'{v:g}' for v in strengths)} "
                            f"({perturb_kinds[curve_kind].unit})."))
    else:
        scored_caption(f"robustness-{curve_kind}", dataset_name, titles[dataset_name])
        if curve.partial:
            st.warning(f"Cut short: {len(curve.points)} of {curve.planned} strengths scored (the page was used "
                       "while it ran). Draw the curve again for all of them.", icon=":material/timelapse:")
        st.altair_chart(robustness_chart(tuple((p.strength, p.accuracy) for p in curve.points),
                                         perturb_kinds[curve_kind].label, perturb_kinds[curve_kind].unit))


robustness_view()

if data.is_table:
    st.subheader("What if")
    whatif_view(deployment, data, dataset_name, revision_of(dataset_name))
    st.subheader("Which columns matter")
    importance_view(deployment, data, dataset_name, revision_of(dataset_name))
else:  # drawing and uploads make images
    st.subheader("Try your own digit")
    rival = rival_of(url_select(
        "Duel with", duel_choices, "duel", key="test_duel", default="none", width=360,
        format_func=lambda name: name if name == "none" else f"{name} — {healthy[name].model_id}",
        gone=lambda name: verbatim(f"{name!r} cannot duel here (it is not a Healthy deployment whose model takes "
                                   "this test set): choose another, or none."),
        help="Score every drawn, uploaded and console input at a second deployment too, side by side: the live way "
             "to show where two versions differ"))
    own_digit_view()
st.subheader("Flagged cases")
said_flagged()
cases_view(deployment, [name for name in healthy if name != deployment.name])
if presentation:  # the console and the snippets are technical detail
    st.stop()
request_sections(deck, deployment, key, example_of(data), dataset_name,
                 rival=(rival, managing.key_for(deck, rival)) if rival is not None else None)
