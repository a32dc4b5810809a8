"""MLflow's model server as a peer: installed in its own virtualenv, serving the same model file."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from backend.registry import Model

MLFLOW_VERSION = "3.17.2"
VENV = Path(os.environ.get("MODELDECK_BENCH_CACHE", Path.home() / ".cache" / "modeldeck-bench")) / \
    f"mlflow-{MLFLOW_VERSION}-venv"
QUIET_ENV = {"MLFLOW_DISABLE_TELEMETRY": "true", "DO_NOT_TRACK": "true"}

_SAVE = """
import sys, joblib, mlflow.sklearn
mlflow.sklearn.save_model(joblib.load(sys.argv[1]), sys.argv[2], serialization_format="cloudpickle")
"""


def ensure_mlflow(model: Model) -> Path:
    """The virtualenv with mlflow and the model's own library versions (created once, then reused)."""
    python = VENV / "bin" / "python"
    if not (VENV / ".complete").exists():
        subprocess.run([sys.executable, "-m", "venv", "--clear", str(VENV)], check=True)
        pins = [f"{lib}=={model.library_versions[lib]}" for lib in ("scikit-learn", "numpy", "scipy", "joblib")
                if lib in model.library_versions]
        print(f"installing mlflow=={MLFLOW_VERSION} {' '.join(pins)} into {VENV} (once)", flush=True)
        subprocess.run([str(python), "-m", "pip", "install", "-q", f"mlflow=={MLFLOW_VERSION}", *pins], check=True)
        (VENV / ".complete").touch()
    return python


def mlflow_model_dir(python: Path, pickle_path: Path, dest: Path) -> Path:
    """The model file saved in MLflow's format by MLflow itself."""
    subprocess.run([str(python), "-c", _SAVE, str(pickle_path), str(dest)], check=True,
                   env={**os.environ, **QUIET_ENV}, capture_output=True)
    return dest


class MlflowServer:
    """`mlflow models serve --env-manager local` on 127.0.0.1:port with one worker."""

    def __init__(self, python: Path, model_dir: Path, port: int, log: Path) -> None:
        self.url = f"http://127.0.0.1:{port}/invocations"
        self._log = open(log, "wb")
        self.proc = subprocess.Popen(
            [str(python.parent / "mlflow"), "models", "serve", "-m", str(model_dir), "--env-manager", "local",
             "-h", "127.0.0.1", "-p", str(port), "-w", "1"],
            env={**os.environ, **QUIET_ENV, "PATH": f"{python.parent}:{os.environ.get('PATH', '/usr/bin:/bin')}"},
            stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mlflow models serve exited {self.proc.returncode}: {log.read_text()[-2000:]}")
            try:
                if urllib.request.urlopen(f"http://127.0.0.1:{port}/ping", timeout=1).status == 200:
                    return
            except OSError:
                time.sleep(0.2)
        self.close()
        raise RuntimeError("mlflow models serve did not answer /ping within 120 s")

    def close(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, 15)
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, 9)
        self._log.close()
