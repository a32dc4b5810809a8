"""Runs the scoring server: `python -m serving --script score.py --model-dir DIR --port N`.

init() runs before the server listens, so a ready answer means a loaded model. If init() raises,
the traceback goes to stderr and the server answers every request with 503 and the error (/ready:
`{"ready": false, "init_failed": ...}`) instead of exiting, so the runtime reads "init() failed" and
no restart loop starts; stopped, it exits with code 3. SIGTERM ends it at once even during init() (as
PID 1 in a container a process without a handler would ignore it).

Every option can also come from the environment (MODELDECK_SCRIPT, MODELDECK_MODEL_DIR, ...; see ENV_OPTIONS):
a self-contained image sets them once, and a Kubernetes manifest or `docker run -e` changes them without
a new command line. MODELDECK_AUTH=key (an image built with key auth) makes a missing keys file an error
at start: such a server never starts open.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import signal
import sys
import tempfile
import traceback
from collections.abc import Mapping
from importlib import metadata

INIT_FAILED_EXIT_CODE = 3
CONFIG_EXIT_CODE = 2
DEFAULT_KEYS_FILE = "/etc/modeldeck/keys/keys.json"  # where an image built with key auth looks by default
# option -> environment variable that gives its default
ENV_OPTIONS = {"script": "MODELDECK_SCRIPT", "model_dir": "MODELDECK_MODEL_DIR", "name": "MODELDECK_DEPLOYMENT",
               "model": "MODELDECK_MODEL", "workers": "MODELDECK_WORKERS", "max_body_mb": "MODELDECK_MAX_BODY_MB",
               "keys_file": "MODELDECK_KEYS_FILE", "uds": "MODELDECK_UDS", "fd": "MODELDECK_LISTEN_FD",
               "run_timeout": "MODELDECK_RUN_TIMEOUT"}
KEYS_MISSING = ("this server was built with key auth (MODELDECK_AUTH=key) but its keys file {path} is missing or "
                "not a file (`docker run -v` of a host file that does not exist mounts an empty folder there): "
                "mount a JSON file {{\"primary\": ..., \"secondary\": ...}} there (docker run -v KEYS.json:{path}:ro; "
                "a Kubernetes Secret), or point MODELDECK_KEYS_FILE at one")
KEYS_UNREADABLE = ("the keys file {path} is there but user {uid} cannot read it: make it readable (mode 0644 in a "
                   "0700 folder keeps it private on the host)")


def _versions() -> dict[str, str]:
    versions = {"python": platform.python_version()}
    for name in ("scikit-learn", "numpy", "scipy", "joblib", "fastapi", "uvicorn"):
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            pass
    return versions


def parse_args(argv: list[str] | None, environ: Mapping[str, str]) -> argparse.Namespace:
    """The server's options: the command line first, then the environment (ENV_OPTIONS), then defaults.

    Raises:
        SystemExit: a required option is missing or a value does not parse (argparse's message, exit 2).
    """
    def env(option: str, default: str = "") -> str:
        return environ.get(ENV_OPTIONS[option], default)

    parser = argparse.ArgumentParser(prog="python -m serving", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--script", default=env("script"), required=not env("script"),
                        help="scoring script with init() and run(raw_data) [MODELDECK_SCRIPT]")
    parser.add_argument("--model-dir", default=env("model_dir"), required=not env("model_dir"),
                        help="folder with the model files [MODELDECK_MODEL_DIR]")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--uds", default=env("uds") or None,
                        help="listen on this unix socket instead of host:port (a front on 127.0.0.1 forwards to "
                             "it, and the model's process needs no network) [MODELDECK_UDS]")
    parser.add_argument("--fd", type=int, default=env("fd") or None,
                        help="listen on this inherited TCP socket, bound and not yet listening, instead of "
                             "host:port (the local runtime binds the port outside the sandbox) [MODELDECK_LISTEN_FD]")
    parser.add_argument("--name", default=env("name"), help="deployment name, shown by /info [MODELDECK_DEPLOYMENT]")
    parser.add_argument("--model", default=env("model"), help="model name:version, shown by /info [MODELDECK_MODEL]")
    parser.add_argument("--workers", type=int, default=env("workers", "1"),
                        help="worker processes, forked after init() [MODELDECK_WORKERS]")
    parser.add_argument("--max-body-mb", type=float, default=env("max_body_mb", "64"),
                        help="largest request body read, MiB (413 above) [MODELDECK_MAX_BODY_MB]")
    parser.add_argument("--run-timeout", type=_positive_seconds, default=env("run_timeout", "60"),
                        help="seconds a request may wait for and run in run(): 504 after that, and a worker whose "
                             "run() overran is replaced [MODELDECK_RUN_TIMEOUT]")
    parser.add_argument("--keys-file", default=env("keys_file"), help='JSON {"primary": ..., "secondary": ...}: '
                        "/score, /info and /metrics then want `Authorization: Bearer <key>` (re-read when it "
                        "changes) [MODELDECK_KEYS_FILE]")
    return parser.parse_args(argv)


def _positive_seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = float("nan")
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"a number of seconds above 0, not {text!r}")
    return value


def use_writable_tmp() -> None:
    """Points TMPDIR at /dev/shm when /tmp is not writable (`docker run --read-only` without a tmpfs):
    the workers' metric files need a folder, and the engine mounts /dev/shm writable even then."""
    if "TMPDIR" in os.environ or os.access("/tmp", os.W_OK) or not os.access("/dev/shm", os.W_OK):
        return
    os.environ["TMPDIR"] = "/dev/shm"
    tempfile.tempdir = None  # gettempdir() may have looked already


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv, os.environ)
    signal.signal(signal.SIGTERM, lambda signum, _frame: os._exit(128 + signum))
    if os.environ.get("MODELDECK_AUTH") == "key":
        args.keys_file = args.keys_file or DEFAULT_KEYS_FILE
        if not (os.path.isfile(args.keys_file) and os.access(args.keys_file, os.R_OK)):
            problem = KEYS_UNREADABLE if os.path.isfile(args.keys_file) else KEYS_MISSING
            print("modeldeck serving: " + problem.format(path=args.keys_file, uid=os.getuid()), file=sys.stderr,
                  flush=True)
            return CONFIG_EXIT_CODE
    use_writable_tmp()
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

    from .script import ScoringScript, load_script

    print(f"modeldeck serving: loading {args.script} with model dir {args.model_dir}", file=sys.stderr, flush=True)
    from .access import AccessLog
    from .auth import KeyFile
    from .metrics import ServerMetrics
    from .routes import create_app, create_failed_app
    from .workers import serve

    try:
        module = load_script(args.script)
        module.init()
        script = ScoringScript.of(module)
    except BaseException as e:
        print("modeldeck serving: init() failed:\n" + traceback.format_exc(), file=sys.stderr, flush=True)
        reason = f"init() failed: {type(e).__name__}: {e}"[:2000]
        serve(create_failed_app(reason), args.host, args.port, 1, log_level="warning", uds=args.uds,
              fd=args.fd)  # the traceback stays last
        return INIT_FAILED_EXIT_CODE
    print("modeldeck serving: init() done", file=sys.stderr, flush=True)

    info = {"deployment": args.name, "model": args.model, "script": os.path.basename(args.script),
            "n_features": script.n_features, "classes": script.classes, "feature_names": script.feature_names,
            "categories": script.categories,
            "workers": max(1, args.workers), "max_body_bytes": int(args.max_body_mb * 2**20),
            "run_timeout_seconds": args.run_timeout,
            "versions": _versions()}
    if os.environ.get("MODELDECK_MANIFEST"):  # a self-contained image says what was baked into it
        try:
            with open(os.environ["MODELDECK_MANIFEST"], encoding="utf-8") as handle:
                info["image"] = json.load(handle)
        except (OSError, ValueError) as e:
            print(f"modeldeck serving: cannot read the image manifest: {e}", file=sys.stderr, flush=True)
    metrics = ServerMetrics()
    # The app writes the access log itself (as uvicorn's looked, for a tenth of the cost), probes and
    # scrapes left out; uvicorn's own is off.
    app = create_app(script, info, KeyFile(args.keys_file) if args.keys_file else None, metrics, AccessLog(sys.stdout))
    return serve(app, args.host, args.port, args.workers, on_worker_exit=metrics.worker_ended, access_log=False,
                 uds=args.uds, fd=args.fd)


if __name__ == "__main__":
    sys.exit(main())
