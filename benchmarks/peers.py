"""The other servers of the request benchmark, each pinned to SERVER_CPU: MLflow's `mlflow models serve`
and Seldon's MLServer (each in its own virtualenv, serving the same model file), and the bare-ASGI floor."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from backend.registry import Model

from .common import SERVER_CPU, pinned

CACHE = Path(os.environ.get("MODELDECK_BENCH_CACHE", Path.home() / ".cache" / "modeldeck-bench"))
MLFLOW_VERSION = "3.17.2"
VENV = CACHE / f"mlflow-{MLFLOW_VERSION}-venv"
MLSERVER_VERSION = "1.7.1"
MLSERVER_VENV = CACHE / f"mlserver-{MLSERVER_VERSION}-venv"
MODEL_LIBRARIES = ("scikit-learn", "numpy", "scipy", "joblib")
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}
REPO = Path(__file__).resolve().parent.parent

_SAVE = """
import sys, joblib, mlflow.sklearn
mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], serialization_format="cloudpickle")
"""


def _ensure_venv(venv: Path, packages: list[str], model: Model) -> Path:
    """A virtualenv with `packages` and the model's own library versions (created once, then reused while
    those stay the same: .complete records what was installed)."""
    python = venv / "bin" / "python"
    pins = [f"{lib}=={model.library_versions[lib]}" for lib in MODEL_LIBRARIES if lib in model.library_versions]
    wanted = " ".join(packages + pins)
    marker = venv / ".complete"
    if not marker.exists() or marker.read_text() != wanted:
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(venv)], check=True)
        print(f"installing {wanted} into {venv} (once)", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", *packages, *pins], check=True)
        marker.write_text(wanted)
    return python


def ensure_mlflow(model: Model) -> Path:
    """The python of the MLflow virtualenv."""
    return _ensure_venv(VENV, [f"mlflow=={MLFLOW_VERSION}"], model)


def ensure_mlserver(model: Model) -> Path:
    """The python of the MLServer virtualenv. mlserver 1.7.1 accepts the model's pins as they are
    (scikit-learn 1.9.1, numpy 2.4.6, scipy 1.17.1, joblib 1.6.0: pip resolved them with no conflict)."""
    return _ensure_venv(MLSERVER_VENV, [f"mlserver=={MLSERVER_VERSION}", f"mlserver-sklearn=={MLSERVER_VERSION}"],
                        model)


def mlflow_model_dir(python: Path, pickle_path: Path, dest: Path) -> Path:
    """The model file saved in MLflow's format by MLflow itself."""
    subprocess.run([str(python), "-c", _SAVE, str(pickle_path), str(dest)], check=True,
                   env={**os.environ, **QUIET_ENV}, capture_output=True, timeout=300)
    return dest


class PinnedServer:
    """A server process (and its children) on SERVER_CPU, in its own process group, output to `log`;
    ready once `ready_url` answers 200 (gives up early if the process dies)."""

    def __init__(self, what: str, command: list[str], ready_url: str, log: Path, env: dict[str, str] | None = None,
                 cwd: Path | None = None, timeout: float = 120.0) -> None:
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(pinned(command, SERVER_CPU), env=env, cwd=cwd, stdin=subprocess.DEVNULL,
                                     stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self._log.close()
                raise RuntimeError(f"{what} exited {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if urllib.request.urlopen(ready_url, timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError(f"{what} did not answer {ready_url} within {timeout:.0f} s")

    def close(self) -> None:
        """SIGTERM to the process group, SIGKILL after 20 s."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
                self.proc.wait(timeout=10)
        self._log.close()


class MlflowServer(PinnedServer):
    """`mlflow models serve --env-manager local` on 127.0.0.1:port with one worker."""

    def __init__(self, python: Path, model_dir: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}/invocations"
        super().__init__(
            "mlflow models serve",
            [str(python.parent / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            f"http://127.0.0.1:{port}/ping", log,
            env={**os.environ, **QUIET_ENV, "PATH": f"{python.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"})


class MlserverServer(PinnedServer):
    """`mlserver start` with mlserver-sklearn on the pickle file itself, otherwise as shipped: HTTP on
    127.0.0.1:port, inference in the server process (parallel_workers 0; 1 would add a pool of one
    worker process behind a queue), no metrics server (metrics_endpoint None), gRPC on 127.0.0.1 too
    (it cannot be turned off). Its uvicorn parses HTTP with h11: mlserver does not install httptools."""

    MODEL_NAME = "sklearn-mnist"

    def __init__(self, python: Path, pickle_path: Path, workdir: Path, port: int, grpc_port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}/v2/models/{self.MODEL_NAME}/infer"
        workdir.mkdir(parents=True, exist_ok=True)
        (workdir / "settings.json").write_text(json.dumps({
            "host": "127.0.0.1", "http_port": port, "grpc_port": grpc_port, "parallel_workers": 0,
            "metrics_endpoint": None}))
        (workdir / self.MODEL_NAME).mkdir(exist_ok=True)  # a model's folder is named as the model
        (workdir / self.MODEL_NAME / "model-settings.json").write_text(json.dumps({
            "name": self.MODEL_NAME, "implementation": "mlserver_sklearn.SKLearnModel",
            "parameters": {"uri": str(pickle_path)}}))
        super().__init__("mlserver start", [str(python.parent / "mlserver"), "start", str(workdir)],
                         f"http://127.0.0.1:{port}/v2/models/{self.MODEL_NAME}/ready", log,
                         env={**os.environ, "PATH": f"{python.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
                         cwd=workdir)


def v2_request(row: list[float]) -> dict:
    """One row as an Open Inference Protocol (V2) JSON tensor."""
    return {"inputs": [{"name": "input-0", "shape": [1, len(row)], "datatype": "FP32", "data": row}]}


def v2_labels(answer: dict) -> list:
    """The predicted labels of a V2 answer (mlserver-sklearn's `predict` output)."""
    return list(answer["outputs"][0]["data"])


class FloorServer(PinnedServer):
    """benchmarks/floor_app.py: a bare ASGI app on ModelDeck's uvicorn + httptools + uvloop stack."""

    def __init__(self, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}/score"
        super().__init__("the bare-ASGI floor", [sys.executable, "-m", "benchmarks.floor_app", "--port", str(port)],
                         self.url.replace("/score", "/health"), log, cwd=REPO)


SHAP_VERSION = "0.51.0"  # the newest for Python 3.11 (0.52 needs 3.12)
SHAP_VENV = CACHE / f"shap-{SHAP_VERSION}-venv"


def ensure_shap(model: Model) -> Path:
    """The python of the shap virtualenv (benchmarks/shap_peer.py runs there)."""
    return _ensure_venv(SHAP_VENV, [f"shap=={SHAP_VERSION}"], model)
