"""A 100,000-row table with text columns, scored whole at a Docker deployment of a pipeline that encodes them (a
ColumnTransformer with a OneHotEncoder): the rows go as pandas split tables with the category names (JSON: an .npy
body cannot carry text). Baselines in the same run: scikit-learn's own predict_proba on the same DataFrame in this
process (the floor), the client's own share (making the JSON bodies, no HTTP), and the same rows with the text
columns as their indices, scored as numbers by a model fitted on those (.npy and JSON), to price the text.

Run: .venv/bin/python -m benchmarks.bench_text_scoring [--rounds 3] [--rows 100000]
"""

from __future__ import annotations

import argparse
import pickle
import time
from pathlib import Path

import numpy as np
import pandas as pd

from .common import machine, scratch_deck, summary

NUMBERS = [f"x{j}" for j in range(8)]
TEXTS = {"colour": ["blue", "green", "red"], "city": [f"city-{k:02d}" for k in range(50)]}


def frame_of(rows: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(rows, len(NUMBERS))).round(4), columns=NUMBERS)
    for name, known in TEXTS.items():
        frame[name] = rng.choice(known, size=rows)
    score = frame["x0"] + frame["x1"] * 0.5 + (frame["colour"] == "red") - (frame["city"] < "city-20") * 0.7
    return frame, np.where(score + rng.normal(size=rows) * 0.3 > 0, "yes", "no")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--rows", type=int, default=100_000)
    args = parser.parse_args()
    print(machine())
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    from backend.client import json_body
    from backend.inspection.evaluation import rows_per_request
    from backend.runtimes import DeployConfig
    from backend.services.scoring import score_and_keep
    from backend.services.testsets import add_testset, scoring_target

    deck = scratch_deck("docker")
    folder = Path(deck.settings.home) / "bench-files"
    folder.mkdir()
    train, labels = frame_of(5_000, 0)
    texts = make_pipeline(ColumnTransformer([("numbers", StandardScaler(), NUMBERS),
                                             ("names", OneHotEncoder(), list(TEXTS))]),
                          LogisticRegression(max_iter=500)).fit(train, labels)
    coded = train.copy()
    for name, known in TEXTS.items():
        coded[name] = coded[name].map({category: k for k, category in enumerate(known)}).astype(np.float64)
    numbers = make_pipeline(StandardScaler(), LogisticRegression(max_iter=500)).fit(coded, labels)
    for name, fitted in (("texts", texts), ("numbers", numbers)):
        (folder / f"{name}.pkl").write_bytes(pickle.dumps(fitted))
        model = deck.registry.register(f"bench-{name}", [folder / f"{name}.pkl"])
        deck.deployments.deploy_and_wait(model, f"bench-{name}", DeployConfig(cpu_cores=1, memory_gb=1), timeout=900)
    rows, truth = frame_of(args.rows, 1)
    rows.assign(outcome=truth).to_csv(folder / "texts.csv", index=False)
    coded_rows = rows.copy()
    for name, known in TEXTS.items():
        coded_rows[name] = coded_rows[name].map({category: k for k, category in enumerate(known)})
    coded_rows.assign(outcome=truth).to_csv(folder / "numbers.csv", index=False)
    add_testset(deck, "bench-texts", [folder / "texts.csv"], label="outcome")
    add_testset(deck, "bench-numbers", [folder / "numbers.csv"], label="outcome")
    text_deployment, text_set = scoring_target(deck, "bench-texts", "bench-texts")
    number_deployment, number_set = scoring_target(deck, "bench-numbers", "bench-numbers")
    keys = ("text columns as names, JSON", "client: making those bodies", "text columns as indices, .npy",
            "text columns as indices, JSON", "scikit-learn in process")
    times: dict[str, list[float]] = {key: [] for key in keys}
    accuracy = 0.0
    per_request = rows_per_request(text_set)
    try:
        for r in range(args.rounds):
            started = time.perf_counter()
            accuracy = score_and_keep(deck, text_deployment, text_set, source="benchmark").accuracy
            times[keys[0]].append(time.perf_counter() - started)
            started = time.perf_counter()
            sent = sum(len(json_body(text_set.as_sent(text_set.X[k:k + per_request]), proba=True))
                       for k in range(0, len(text_set), per_request))
            times[keys[1]].append(time.perf_counter() - started)
            for key, use_json in ((keys[2], False), (keys[3], True)):
                started = time.perf_counter()
                score_and_keep(deck, number_deployment, number_set, source="benchmark", use_json=use_json)
                times[key].append(time.perf_counter() - started)
            started = time.perf_counter()
            texts.predict_proba(rows)
            times[keys[4]].append(time.perf_counter() - started)
            print(f"round {r + 1} of {args.rounds} done", flush=True)
    finally:
        for name in ("texts", "numbers"):
            deck.deployments.delete(f"bench-{name}")
    stats = {key: summary(values) for key, values in times.items()}
    print(f"\n### A {args.rows:,}-row table (8 number and 2 text columns) on Docker: {args.rounds} rounds "
          "(s: median, min, max)\n")
    print(f"accuracy {accuracy:.2%}; {-(-len(text_set) // per_request)} requests of {per_request:,} rows, "
          f"{sent / 1e6:.1f} MB of JSON")
    for key, s in stats.items():
        print(f"- {key:32} {s['median']:7.3f}  ({s['min']:.3f}, {s['max']:.3f})")
    named = stats[keys[0]]["median"]
    print(f"\nnames in JSON: {named / stats[keys[2]]['median']:.2f}x indices in .npy, "
          f"{named / stats[keys[3]]['median']:.2f}x indices in JSON, {named / stats[keys[4]]['median']:.1f}x "
          f"scikit-learn in process; the client's bodies {stats[keys[1]]['median'] / named:.0%} of it; "
          f"{len(text_set) / named:,.0f} rows/s")


if __name__ == "__main__":
    main()
