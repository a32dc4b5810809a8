"""Deploy page: launch a deployment with live progress; list, inspect and delete deployments."""

import os
import secrets

import streamlit as st

from backend.context import ModelDeck
from backend.errors import DeploymentFailedError, ModelDeckError
from backend.packaging.self_contained import default_tag
from backend.packaging.writer import apply_command, build_command, zip_export
from backend.progress import ProgressKind
from backend.registry import parse_tags
from backend.runtimes import DeployConfig, validate_name
from backend.runtimes.base import (
    CPU_CORES_RANGE,
    DEFAULT_RUN_TIMEOUT_SECONDS,
    MAX_BODY_MB_RANGE,
    MEMORY_GB_RANGE,
    RUN_TIMEOUT_RANGE,
    Deployment,
    Keys,
)
from backend.services import managing
from backend.services.deploying import DeployJob, UploadedScript, deploys_of, forget, start_deploy
from backend.services.models import registered_model, registered_models
from backend.services.packaging import export_of
from backend.timefmt import age
from dashboard.common import (
    choose,
    fail,
    get_deck,
    gone_notice,
    note_deleted,
    nothing_chosen,
    presenting,
    scroll_into_view,
    set_other_homes,
    show_notice,
    showing_other_homes,
    snapshot,
    url_select,
    verbatim,
)
from dashboard.endpoints_view import endpoints_section
from dashboard.tables import without_empty_columns
from dashboard.traffic import deployment_traffic

STREAMED_LINES_SHOWN = 12
JOB_KEY = "_deploy_job"
SCROLL_KEY = "_deploy_scroll"
STATUS_AREA = "deploy-status"
PROGRESS_SECONDS = 0.5  # 0.25 s measured no sooner (bench_pages, n=3 each, same run)
STREAMED = (ProgressKind.BUILD_LOG, ProgressKind.SERVER_LOG)  # shown as the last lines of each log
EXPORT_TARGETS = {"Kubernetes": "kubernetes", "KServe": "kserve"}


def export_section(deck: ModelDeck, deployment: Deployment) -> None:
    """Manifests for the chosen deployment (its name, cpu, memory and auth as deployed), as a zip."""
    try:
        served = registered_model(deck, deployment.record.model_name, deployment.record.model_version)
    except ModelDeckError as e:
        fail(e, "Cannot export")
        return
    st.caption(verbatim(f"{deployment.model_id} as {deployment.name}: {deployment.config.cpu_cores:g} CPU, "
                        f"{deployment.config.memory_gb:g} GB, auth {'key' if deployment.config.auth_enabled else 'none'} "
                        "(as deployed here), in the self-contained image."))
    export_target = st.radio("Target", list(EXPORT_TARGETS), horizontal=True, key="export_target",
                             help="Kubernetes: Deployment, Service, PodDisruptionBudget, NetworkPolicy (+ HPA, "
                                  "Secret). KServe: an InferenceService (RawDeployment, Open Inference Protocol).")
    left_col, right_col = st.columns(2)
    image = left_col.text_input("Image", value=default_tag(served.name, served.version), key=f"export_image/{deployment.name}",
                                help="The tag `modeldeck build` gives the image with the model in it")
    namespace = right_col.text_input("Namespace", value="", key="export_namespace", placeholder="the current one",
                                     help="Created by the export; empty: kubectl's current namespace")
    replicas_col, scale_col, low_col, high_col = st.columns([2, 2, 1, 1], vertical_alignment="bottom")
    autoscaled = scale_col.toggle("Autoscale on CPU", value=False, key="export_autoscale")
    replicas = replicas_col.number_input("Replicas", min_value=1, value=1, step=1, key="export_replicas",
                                         disabled=autoscaled, help="With autoscale: from Min to Max")
    low = low_col.number_input("Min", min_value=1, value=1, step=1, key="export_min", disabled=not autoscaled)
    high = high_col.number_input("Max", min_value=1, value=3, step=1, key="export_max", disabled=not autoscaled)
    keys_key = f"_export_keys/{deployment.record.uid}"
    if deployment.config.auth_enabled and keys_key not in st.session_state:
        st.session_state[keys_key] = Keys.generate()  # fresh keys for the cluster, the same across reruns
    try:
        bundle = export_of(deck, deployment, EXPORT_TARGETS[export_target], image.strip(),
                           replicas=1 if autoscaled else int(replicas), autoscale=(int(low), int(high)) if autoscaled else None,
                           namespace=namespace.strip() or None, keys=st.session_state.get(keys_key))
    except ModelDeckError as e:
        fail(e, "Check the export options")
    else:
        st.download_button(f"Download {bundle.default_folder}.zip", data=zip_export(bundle),
                           file_name=f"{bundle.default_folder}.zip", mime="application/zip",
                           icon=":material/download:", on_click="ignore", key="export_download")
        st.caption(f"Files: {', '.join(bundle.files(bundle.default_folder))}. README.txt says how to reach it"
                   + (" and read its keys back." if deployment.config.auth_enabled else ".")
                   + " Make the image, unzip, apply:")
        st.code(f"{build_command(bundle.model, bundle.options)}\nunzip {bundle.default_folder}.zip\n"
                f"{apply_command(bundle.default_folder)}", language="bash", wrap_lines=True)


deck = get_deck()
presentation = presenting()  # technical detail (hashes, URIs, logs, keys) hidden
st.title("Deploy")
listing = snapshot()

models = registered_models(deck)
if not models:
    st.info("No model is registered: train the sample model or register one on the Models page.")
    st.page_link("views/models.py", label="Go to Models", icon=":material/inventory_2:")
    st.stop()

names = sorted({m.name for m in models})
left, right = st.columns([3, 1])
model_name = url_select("Model", names, "model", key="deploy_model", container=left,
                        default="sklearn_mnist" if "sklearn_mnist" in names else names[0],
                        follows=lambda picked: {"version": str(max(m.version for m in models if m.name == picked))})
if model_name is None:  # (a model picked here starts at its latest version; a link naming both keeps both)
    nothing_chosen("a model")
versions = sorted((m.version for m in models if m.name == model_name), reverse=True)
version = url_select("Version", versions, "version", key=f"deploy_version/{model_name}", container=right,
                     default=versions[0], format_func=lambda v: f"{v} (latest)" if v == versions[0] else str(v))
if version is None:
    nothing_chosen("a version")
model = registered_model(deck, model_name, version)
accuracy = model.metrics.get("accuracy")
st.caption(verbatim(f"{model.description or 'no description'}"
                    + (f" — accuracy {accuracy:.2%}" if accuracy is not None else "")
                    + ("" if presentation else f" — scikit-learn {model.sklearn_version or '?'} — model sha256 "
                                               f"{model.sha256[:12]} — input: {model.signature.describe()}")))

available = [t.name for t in listing.runtimes if t.available]
preferred = deck.settings.runtime if deck.settings.runtime in available else available[0]
kept_jobs = deploys_of(deck.home.path)  # this home's deploys in this server, whichever session started them
job = st.session_state.get(JOB_KEY)
if not isinstance(job, DeployJob) and kept_jobs:  # started before a reload, or in another tab: followed here
    job = st.session_state[JOB_KEY] = kept_jobs[0]
    st.session_state[SCROLL_KEY] = not job.done
# read once: a deploy that ends while this run draws the page would otherwise show its outcome above a
# still-disabled Deploy button
job_running = isinstance(job, DeployJob) and not job.done
deploying = job_running or any(not j.done for j in kept_jobs if j is not job)
status_area = st.container(key=STATUS_AREA)  # progress and outcome above the form, scrolled into view
with st.form("deploy"):
    name = st.text_input("Deployment name", value=managing.suggest_name(deck, model, {d.name for d in listing.owned}),
                         help="3-63 lowercase letters, digits and '-'")
    runtime = st.radio("Runtime", [t.name for t in listing.runtimes], horizontal=True, key="deploy_runtime",
                      index=[t.name for t in listing.runtimes].index(preferred)
                      if preferred in [t.name for t in listing.runtimes] else 0,
                      captions=[("" if presentation else verbatim(t.description)) if t.available else "unavailable"
                                for t in listing.runtimes],
                      help="Where the new deployment runs. Deployments on every runtime are listed below.")
    c1, c2 = st.columns(2)
    cpu = c1.number_input("CPU cores", value=1.0, step=0.25, format="%g",
                          help=f"{CPU_CORES_RANGE[0]:g} to {CPU_CORES_RANGE[1]:g}; this machine has "
                               f"{os.cpu_count()} cores. One worker process per core.")
    memory = c2.number_input("Memory (GB)", value=1.0, step=0.25, format="%g",
                             help=f"{MEMORY_GB_RANGE[0]:g} to {MEMORY_GB_RANGE[1]:g} GB")
    c3, c4 = st.columns(2)
    max_body = c3.number_input("Largest request body (MB)", value=None, step=16.0, format="%g",
                               placeholder="automatic (at least 64)",
                               help=f"{MAX_BODY_MB_RANGE[0]:g} to {MAX_BODY_MB_RANGE[1]:g} MB; larger requests get "
                                    "HTTP 413 and the container stays up. Empty: what the memory limit holds, at "
                                    "least 64 MB")
    run_timeout = c4.number_input("Time limit per request (s)", value=DEFAULT_RUN_TIMEOUT_SECONDS, step=10.0,
                                  format="%g", key="deploy_run_timeout",
                                  help=f"{RUN_TIMEOUT_RANGE[0]:g} to {RUN_TIMEOUT_RANGE[1]:g} s that a request may "
                                       "wait for and run in the scoring script's run(); later ones get HTTP 504, "
                                       "and a worker whose run() overran is replaced by a new one")
    auth = st.toggle("Key auth", value=False, key="deploy_auth",
                     help="Requests to /score must carry `Authorization: Bearer <key>` with one of the "
                          "deployment's two keys (shown under Keys below; the Test page sends it for you)")
    tags = st.text_input("Tags", value="", placeholder="team=vision, stage=demo")
    description = st.text_input("Description", value=f"{model.id} served by ModelDeck")
    script = st.file_uploader("Entry script (optional)", type=["py"], key="deploy_entry_script",
                              help="A scoring script with init() and run(raw_data), as the tutorial's score.py "
                                   "(`modeldeck deploy --entry-script`). Empty: the model's own score.py if it was "
                                   "registered with one, else the built-in scikit-learn script.")
    trust = st.checkbox("Trust the model's code", value=False, key="deploy_trust_model",
                        help="Only matters on the local runtime where it cannot sandbox the model (no bubblewrap): "
                             "deploy it anyway. Loading a pickled model runs code it carries, and so does a scoring "
                             "script: unsandboxed, that code runs with your user's full rights — it can read and "
                             "change your files, other deployments' keys and the registry, and reach the network. "
                             "Leave it off for a model you did not make. Where the sandbox works, this changes "
                             "nothing (`modeldeck deploy --trust-model`).")
    submitted = st.form_submit_button("Deploy", type="primary", icon=":material/rocket_launch:", disabled=deploying,
                                      help="A deploy is running: wait for it" if deploying else None)

if submitted and not deploying:  # one deploy per click: a submit while one runs (Enter, say) starts nothing
    try:
        validate_name(name)
        config = DeployConfig(cpu_cores=cpu, memory_gb=memory, tags=parse_tags(tags), description=description,
                              max_body_mb=max_body, auth_enabled=auth, trust_model=trust,
                              run_timeout_s=run_timeout)
        st.session_state[JOB_KEY] = start_deploy(
            deck, model, name, config, runtime=runtime,
            script=UploadedScript(script.name, script.getvalue()) if script is not None else None)
    except ModelDeckError as e:
        with status_area:
            fail(e, "Check the form")
            scroll_into_view(STATUS_AREA, f"refused-{secrets.token_hex(4)}")
    else:
        st.session_state[SCROLL_KEY] = True
        st.rerun()  # the form again, its Deploy button disabled while the deploy runs


@st.fragment(run_every=PROGRESS_SECONDS)
def deploy_progress(running: DeployJob) -> None:
    """The running deploy's steps and streamed logs; once it ended, the whole page again (list, sidebar)."""
    if running.done:
        st.rerun()
    events = list(running.events)
    # Not a `with` block: leaving one marks the status complete (a check mark while the deploy still runs)
    box = st.status(f"Deploying {running.model.id} as {running.name}…", expanded=True, state="running")
    for event in (e for e in events if e.kind not in STREAMED):
        box.write(verbatim(event.message))
    for kind in STREAMED:
        lines = [e.message for e in events if e.kind is kind]
        if lines:
            box.code("\n".join(lines[-STREAMED_LINES_SHOWN:]), language=None)


with status_area:
    if isinstance(job, DeployJob) and job_running:
        if st.session_state.pop(SCROLL_KEY, False):
            scroll_into_view(STATUS_AREA, f"{id(job)}-start")
        deploy_progress(job)
    elif isinstance(job, DeployJob):
        st.session_state.pop(JOB_KEY)
        forget(job)  # shown: a later session of the page does not show it again
        scroll_into_view(STATUS_AREA, f"{id(job)}-end")
        if job.deployment is not None or isinstance(job.error, DeploymentFailedError):
            choose("manage_deployment", job.name)  # the one just made, managed below (its logs, say)
        shown_steps = [str(e) for e in job.events]
        if job.deployment is not None:
            st.success(f"**{verbatim(job.name)}** is Healthy." + ("" if presentation else " Scoring URI:"),
                       icon=":material/check_circle:")
            if not presentation:
                st.code(job.deployment.scoring_uri or "", language=None)
            st.page_link("views/test.py", label="Test it", icon=":material/labs:",
                         query_params={"deployment": job.name})
            if not presentation:
                with st.expander("How it went (steps and the server's log)"):
                    st.code("\n".join(shown_steps), language=None, height=320)
        elif isinstance(job.error, DeploymentFailedError):
            fail(job.error.reason, f"Deployment {job.name} {job.error.state.lower()}")
            st.caption("The deployment is stopped and kept so its logs can be read: delete it below.")
            if job.error.logs and not presentation:
                with st.expander("The server's log"):
                    st.code(job.error.logs, language=None)
        else:
            fail(job.error or "no answer", f"{job.name} could not be deployed")

st.divider()
st.subheader("Deployments")
# the toggle and Refresh on a row of their own: beside the heading the toggle's label was cut at 1024 px
toggle, refresh = st.columns([3, 1], vertical_alignment="center")
toggle.toggle("Other homes (read-only)", value=showing_other_homes(), key="deploy_other_homes",
              on_change=lambda: set_other_homes(bool(st.session_state.deploy_other_homes)),
              help="Deployments made from other ModelDeck homes on the same Docker engine (kept in the URL)")
if refresh.button("Refresh", icon=":material/refresh:", width="stretch"):
    st.rerun()
for unavailable in (t for t in listing.runtimes if not t.available):
    st.caption(f":material/cancel: {unavailable.name} runtime unavailable: {verbatim(unavailable.description)}")
if not listing.deployments:
    if (lost := st.query_params.get("deployment")) is not None:  # deleted, say: the address keeps its name
        show_notice(gone_notice(lost))
    st.info("No deployment yet.")
    st.stop()

show_homes = any(not d.owned for d in listing.deployments) or showing_other_homes()
rows = []
for d in listing.deployments:
    row = {"name": d.name}
    if show_homes:  # right after the name: whose it is must never be off-screen
        row["home"] = "this home" if d.owned else f"read-only: {d.record.home or '?'}"
    # What went wrong ("detail") next to the state: it must never be off-screen either. The limits and tags are
    # the chosen deployment's caption below: as columns they pushed the table past a 1024 px screen.
    row.update({"state": str(d.state), "detail": d.detail, "model": d.model_id, "runtime": d.runtime,
                "scoring URI": d.scoring_uri or "", "auth": "key" if d.config.auth_enabled else "none",
                "age": age(d.created_at)})
    if presentation:
        for technical in ("scoring URI", "auth"):
            row.pop(technical)
    rows.append(row)
# Columns nobody filled ("detail" while all is well) give their room to the others
st.dataframe(without_empty_columns(rows, keep=["name", "state"]), hide_index=True, width="stretch",
             column_config={"scoring URI": st.column_config.TextColumn(width="medium"),
                            "detail": st.column_config.TextColumn(
                                width="medium", help="Why it is not Healthy; a long reason is cut here: choose the "
                                                     "deployment below and its Traffic section gives it whole")})

owned = [d.name for d in listing.owned]
if not owned:
    if (lost := st.query_params.get("deployment")) is not None:
        show_notice(gone_notice(lost))
    st.info("This home has no deployment: the ones above belong to other homes.")
    st.stop()
newest = max(listing.owned, key=lambda d: d.created_at).name
chosen = url_select("Deployment", owned, "deployment", key="manage_deployment", default=newest,
                    gone=gone_notice)
if chosen is None:
    nothing_chosen("a deployment for Logs or Delete")
managed = listing.find(chosen)
if managed is not None:
    config = managed.config
    limits = f"{config.cpu_cores:g} CPU, {config.memory_gb:g} GB memory"
    if not presentation:
        limits += f", request bodies up to {config.body_limit_mb:g} MB, {config.run_timeout_s:g} s per request"
    tags = ", ".join(f"{k}={v}" for k, v in config.tags.items())
    st.caption(verbatim(f"{chosen}: {limits}" + (f"; tags: {tags}" if tags else "")))
    if managed.isolation and not presentation:  # what the model's code may do where it runs
        st.caption(("" if managed.isolation.startswith(("sandboxed", "container: no network")) else ":material/warning: ")
                   + verbatim(f"Model code: {managed.isolation}."))
columns = st.columns(3)
# while presenting Logs and Keys are not drawn: Delete takes the first place, not the last beside two gaps
show_logs, show_keys, delete = (columns[1], columns[2], columns[0]) if presentation else columns
if not presentation and show_logs.button("Logs", icon=":material/article:", width="stretch"):
    try:
        st.code(managing.logs(deck, chosen, tail=200) or "(no output yet)", language=None)
    except ModelDeckError as e:
        fail(e, "Cannot read the logs")
keyed = managed is not None and managed.config.auth_enabled
if not presentation and show_keys.button("Keys", icon=":material/key:", width="stretch", disabled=not keyed,
                    help="The deployment's primary and secondary keys" if keyed else "Deployed without key auth"):
    st.session_state.show_keys = chosen
if st.session_state.get("show_keys") not in (None, chosen):
    st.session_state.pop("show_keys")  # another deployment was chosen: its keys stay hidden until asked
if keyed and st.session_state.get("show_keys") == chosen and not presentation:
    try:
        keys = managing.keys(deck, chosen)
        st.caption("Send one as `Authorization: Bearer <key>`. Regenerating one key leaves the other working, so "
                   "clients can move over first; the server takes a new key at once, without a restart.")
        for which, value in (("primary", keys.primary), ("secondary", keys.secondary)):
            label, shown, again = st.columns([1, 5, 2], vertical_alignment="center")
            label.markdown(f"**{which.capitalize()}**")
            shown.code(value, language=None)
            if again.button(f"Regenerate {which}", key=f"regen_{which}", icon=":material/autorenew:",
                            width="stretch"):
                managing.regenerate_key(deck, chosen, which)
                st.toast(f"New {which} key for {chosen}; the old one no longer works")
                st.rerun()
        if st.button("Hide keys", icon=":material/visibility_off:", key="hide_keys"):
            st.session_state.pop("show_keys", None)
            st.rerun()
    except ModelDeckError as e:
        fail(e, "Cannot read the keys")
if delete.button("Delete…", icon=":material/delete:", width="stretch"):
    st.session_state.confirm_delete = chosen
if st.session_state.get("confirm_delete") == chosen:
    st.warning(f"Delete **{verbatim(chosen)}**? Its container (or process), logs and kept results are removed.")
    yes, no = st.columns(2)
    with yes.container(key="danger-zone"):
        confirmed = st.button(f"Yes, delete {chosen}", type="primary", icon=":material/delete_forever:",
                              width="stretch")
    if confirmed:
        try:
            managing.delete(deck, chosen)
            # Its name stays chosen and in the address: the page says "Deleted" (a reload of the address
            # says it is gone), and never opens another by itself
            note_deleted(chosen)
            st.session_state.pop("confirm_delete", None)
            st.rerun()
        except ModelDeckError as e:
            fail(e, "Cannot delete")
    if no.button("Cancel", width="stretch"):
        st.session_state.pop("confirm_delete", None)
        st.rerun()

if managed is not None and not presentation:
    with st.expander("Export for Kubernetes", icon=":material/deployed_code:"):
        export_section(deck, managed)

st.divider()
endpoints_section(deck, [d.name for d in listing.healthy])
st.divider()
deployment_traffic(deck, managed)
