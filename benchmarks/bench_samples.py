"""The sample models as a user meets them: a first run (`modeldeck models list` on a fresh home: both
sklearn_mnist versions trained and registered, Python start-up and imports included) and
`modeldeck train-sample --dataset fashion-mnist`, each in a fresh home, one after the other.

Run: .venv/bin/python -m benchmarks.bench_samples [--rounds 5]
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from .common import bench_main, fmt, summary

ROOT = Path(__file__).resolve().parent.parent


def _modeldeck(home: Path, *args: str) -> tuple[float, str, str]:
    env = {**os.environ, "MODELDECK_HOME": str(home), "MODELDECK_RUNTIME": "local", "PYTHONPATH": str(ROOT)}
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "backend", *args], env=env, capture_output=True, text=True,
                          timeout=600, check=True)
    return time.perf_counter() - started, done.stdout, done.stderr


def run(rounds: int = 5) -> dict:
    first_run, fashion, accuracy, train_seconds = [], [], {}, {}
    for _ in range(rounds):
        with tempfile.TemporaryDirectory(prefix="modeldeck-bench-") as tmp:
            seconds, out, _ = _modeldeck(Path(tmp) / "first", "models", "list", "--json")
            first_run.append(seconds)
            models = json.loads(out)
            assert [m["id"] for m in models] == ["sklearn_mnist:1", "sklearn_mnist:2"], out
            seconds, out, _ = _modeldeck(Path(tmp) / "fashion", "train-sample", "--dataset", "fashion-mnist", "--json")
            fashion.append(seconds)
            for m in [*models, json.loads(out)]:
                accuracy[m["id"]] = m["metrics"]["accuracy"]
                train_seconds.setdefault(m["id"], []).append(m["metrics"]["train_seconds"])
    return {"rounds": rounds, "first_run": summary(first_run), "fashion": summary(fashion), "accuracy": accuracy,
            "train_seconds": {k: summary(v) for k, v in train_seconds.items()}}


def report(results: dict) -> str:
    lines = ["### Sample models: first run and Fashion-MNIST", "",
             f"{results['rounds']} rounds, each in fresh homes; whole commands, Python start-up included.", "",
             f"- first run (`models list` on an empty home: sklearn_mnist:1 and :2): {fmt(results['first_run'])}",
             f"- `train-sample --dataset fashion-mnist`: {fmt(results['fashion'])}", "",
             "| model | accuracy on its 10k test set | fit (train_seconds) |", "|---|---|---|"]
    for model, accuracy in results["accuracy"].items():
        lines.append(f"| {model} | {accuracy:.2%} | {fmt(results['train_seconds'][model])} |")
    return "\n".join(lines)


def main() -> None:
    bench_main(__doc__, run, report)


if __name__ == "__main__":
    main()
