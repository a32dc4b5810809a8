"""A 100,000-row table test set, from file to accuracy: importing it as CSV and as Parquet, loading it, and scoring
the whole set at a Docker deployment of the breast-cancer sample, as .npy bodies (the default) and as the
tutorial's JSON; with the bytes each sends. Baseline in the same run: scikit-learn's own predict on the same rows in
this process (the floor of the work: no HTTP, no copy), and the 143-row built-in set scored the same way.

The rows are the built-in breast-cancer test rows drawn with replacement, each column moved by Gaussian noise of a
tenth of its standard deviation (seed 0): realistic values, a realistic accuracy.

Run: .venv/bin/python -m benchmarks.bench_table_scoring [--rounds 3] [--rows 100000]
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import joblib
import numpy as np
import orjson
import pandas as pd

from .common import machine, scratch_deck, summary

DEPLOYMENT = "bench-table"
IMAGE_BATCH = 2000  # rows a request for images (and, before, for every set)


def table(rows: int) -> pd.DataFrame:
    from backend.data.builtin import BREAST_CANCER_FEATURES, load_breast_cancer_test

    test = load_breast_cancer_test()
    rng = np.random.default_rng(0)
    picked = rng.integers(len(test), size=rows)
    X = test.X[picked] + rng.normal(size=(rows, test.X.shape[1])).astype(np.float32) * 0.1 * test.X.std(axis=0)
    frame = pd.DataFrame(X, columns=list(BREAST_CANCER_FEATURES))
    frame["diagnosis"] = np.array(test.class_names)[test.y[picked]]
    return frame


def bytes_sent(X: np.ndarray, rows: int) -> tuple[int, int]:
    """(.npy bytes, JSON bytes) of the bodies a whole-set scoring sends in requests of `rows` rows."""
    npy = json_bytes = 0
    for start in range(0, len(X), rows):
        batch = X[start:start + rows]
        buffer = io.BytesIO()
        np.save(buffer, np.ascontiguousarray(batch), allow_pickle=False)
        npy += len(buffer.getvalue())
        json_bytes += len(orjson.dumps({"data": batch, "proba": True}, option=orjson.OPT_SERIALIZE_NUMPY))
    return npy, json_bytes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    print(machine())
    from backend.inspection.evaluation import rows_per_request
    from backend.runtimes import DeployConfig
    from backend.services.scoring import score_and_keep
    from backend.services.testsets import add_testset, load_testset
    from backend.training import train_sample

    deck = scratch_deck("docker")
    model = train_sample(deck.registry, "breast-cancer", "logistic")
    deck.deployments.deploy_and_wait(model, DEPLOYMENT, DeployConfig(cpu_cores=1, memory_gb=1), timeout=600)
    deployment = deck.deployments.get(DEPLOYMENT)
    folder = Path(deck.settings.home) / "bench-files"
    folder.mkdir()
    frame = table(args.rows)
    frame.to_csv(folder / "rows.csv", index=False)
    frame.to_parquet(folder / "rows.parquet", index=False)
    sizes = {kind: (folder / f"rows.{kind}").stat().st_size for kind in ("csv", "parquet")}
    fitted = joblib.load(deck.settings.blobs_dir / model.files[0].sha256)
    times: dict[str, list[float]] = {key: [] for key in (
        "import CSV", "import Parquet", "load", "score .npy", f"score .npy, {IMAGE_BATCH:,} a request", "score JSON",
        "scikit-learn in process", "score 143 rows .npy")}
    accuracy = 0.0
    try:
        for r in range(args.rounds):
            for kind, key in (("csv", "import CSV"), ("parquet", "import Parquet")):
                started = time.perf_counter()
                add_testset(deck, f"rows-{kind}", [folder / f"rows.{kind}"], label="diagnosis", replace=True)
                times[key].append(time.perf_counter() - started)
            started = time.perf_counter()
            data = load_testset(deck, "rows-csv")
            times["load"].append(time.perf_counter() - started)
            for key, use_json, batch in (("score .npy", False, None), ("score JSON", True, None),
                                         (f"score .npy, {IMAGE_BATCH:,} a request", False, IMAGE_BATCH)):
                started = time.perf_counter()
                evaluation = score_and_keep(deck, deployment, data, source="benchmark", use_json=use_json,
                                            batch_size=batch)
                times[key].append(time.perf_counter() - started)
                accuracy = evaluation.accuracy
            rows = pd.DataFrame(data.X, columns=list(data.feature_names or ()))
            started = time.perf_counter()
            fitted.predict(rows)
            times["scikit-learn in process"].append(time.perf_counter() - started)
            small = load_testset(deck, "breast-cancer")
            started = time.perf_counter()
            score_and_keep(deck, deployment, small, source="benchmark")
            times["score 143 rows .npy"].append(time.perf_counter() - started)
            print(f"round {r + 1} of {args.rounds} done", flush=True)
    finally:
        deck.deployments.delete(DEPLOYMENT)
    per_request = rows_per_request(data)
    npy, json_bytes = bytes_sent(data.X, per_request)
    stats = {key: summary(values) for key, values in times.items()}
    print(f"\n### A {args.rows:,}-row table (30 columns) on Docker: {args.rounds} rounds (s: median, min, max)\n")
    print(f"files: CSV {sizes['csv'] / 1e6:.1f} MB, Parquet {sizes['parquet'] / 1e6:.1f} MB; accuracy {accuracy:.2%}")
    for key, s in stats.items():
        print(f"- {key:24} {s['median']:7.3f}  ({s['min']:.3f}, {s['max']:.3f})")
    small = stats[f"score .npy, {IMAGE_BATCH:,} a request"]["median"]
    print(f"\nsent: .npy {npy / 1e6:.1f} MB, JSON {json_bytes / 1e6:.1f} MB ({json_bytes / npy:.2f}x) in "
          f"{-(-len(data) // per_request)} requests of {per_request:,} rows ({stats['score .npy']['median'] / small:.2f}x "
          f"the time of {-(-len(data) // IMAGE_BATCH)} requests of {IMAGE_BATCH:,}); "
          f".npy {stats['score .npy']['median'] / stats['score JSON']['median']:.2f}x "
          f"JSON's time; the endpoint {stats['score .npy']['median'] / stats['scikit-learn in process']['median']:.1f}x "
          f"scikit-learn in process; {len(data) / stats['score .npy']['median']:,.0f} rows/s")


if __name__ == "__main__":
    main()
