"""Runs the scoring server: `python -m serving --script score.py --model-dir DIR --port N`.

init() runs before the server listens, so a ready answer means a loaded model. If init() raises,
the traceback goes to stderr and the server answers every request with 503 and the error (/ready:
`{"ready": false, "init_failed": ...}`) instead of exiting, so the runtime reads "init() failed" and
no restart loop starts; stopped, it exits with code 3. SIGTERM ends it at once even during init() (as
PID 1 in a container a process without a handler would ignore it).
"""

from __future__ import annotations

import argparse
import logging
import os
import platform
import signal
import sys
import traceback
from importlib import metadata

INIT_FAILED_EXIT_CODE = 3


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("scikit-learn", "numpy", "scipy", "joblib", "fastapi", "uvicorn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


class _QuietProbes(logging.Filter):
    """Keeps readiness and liveness probes and metrics scrapes out of the access log, so the log shows
    real traffic."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args if isinstance(record.args, tuple) else ()
        return not (len(args) >= 3 and args[2] in ("/ready", "/health", "/metrics"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__)
    parser.add_argument("--script", required=True, help="scoring script with init() and run(raw_data)")
    parser.add_argument("--model-dir", required=True, help="folder with the model files")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--name", default="", help="deployment name, shown by /info")
    parser.add_argument("--model", default="", help="model name:version, shown by /info")
    parser.add_argument("--workers", type=int, default=1, help="worker processes, forked after init()")
    parser.add_argument("--max-body-mb", type=float, default=64.0, help="largest request body read, MiB (413 above)")
    parser.add_argument("--keys-file", default="", help='JSON {"primary": ..., "secondary": ...}: /score, '
                        "/info and /metrics then want `Authorization: Bearer <key>` (re-read when it changes)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda signum, _frame: os._exit(128 + signum))
    from .metrics import remove_folder, use_fresh_folder

    metrics_folder = use_fresh_folder()  # before prometheus_client is imported: it picks its mode then
    try:
        return _serve(args)
    finally:
        remove_folder(metrics_folder)


def _serve(args: argparse.Namespace) -> int:
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("AZUREML_MODEL_DIR", args.model_dir)
    os.environ.setdefault("MODEL_DIR", args.model_dir)

    from .script import load_script

    print(f"modeldeck serving: loading {args.script} with model dir {args.model_dir}", file=sys.stderr, flush=True)
    from .app import create_app, create_failed_app
    from .auth import KeyFile
    from .metrics import ServerMetrics
    from .workers import serve

    try:
        script = load_script(args.script)
        script.init()
    except BaseException as e:
        print("modeldeck serving: init() failed:\n" + traceback.format_exc(), file=sys.stderr, flush=True)
        reason = f"init() failed: {type(e).__name__}: {e}"[:2000]
        serve(create_failed_app(reason), args.host, args.port, 1, log_level="warning")  # the traceback stays last
        return INIT_FAILED_EXIT_CODE
    print("modeldeck serving: init() done", file=sys.stderr, flush=True)

    info = {"deployment": args.name, "model": args.model, "script": os.path.basename(args.script),
            "n_features": getattr(script, "n_features", None), "classes": getattr(script, "classes", None),
            "workers": max(1, args.workers), "max_body_bytes": int(args.max_body_mb * 2**20),
            "versions": _versions()}
    metrics = ServerMetrics()
    app = create_app(script, info, KeyFile(args.keys_file) if args.keys_file else None, metrics)
    logging.getLogger("uvicorn.access").addFilter(_QuietProbes())
    return serve(app, args.host, args.port, args.workers, on_worker_exit=metrics.worker_ended)


if __name__ == "__main__":
    sys.exit(main())
