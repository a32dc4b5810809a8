"""The whole MNIST 10k test set scored in one call against a ModelDeck container: the tutorial's client
(standard `json` + `requests`, the baseline) against ModelDeck's JSON path (orjson) and binary path
(.npy body: float32, and the 8-bit pixels themselves, which the endpoint scales), alternating; predictions
must be identical on every path.

Run: .venv/bin/python -m benchmarks.bench_testset [--rounds 5]
"""

from __future__ import annotations

import io
import json
import time

import numpy as np
import requests

from backend.data.builtin import load_mnist_test
from backend.runtimes import DeployConfig

from .common import bench_main, scratch_deck, summary


def tutorial_client(uri: str, X: np.ndarray) -> tuple[list, int]:
    """What the Azure ML tutorial does: json.dumps of X.tolist(), requests.post, json.loads."""
    test_samples = json.dumps({"data": X.tolist()})
    response = requests.post(uri, test_samples, headers={"Content-Type": "application/json"}, timeout=300)
    response.raise_for_status()
    return json.loads(response.text), len(test_samples)


def run(rounds: int = 5) -> dict:
    deck = scratch_deck("docker")
    model = deck.registry.get("sklearn_mnist", 1)
    mnist = load_mnist_test()
    X, pixels = mnist.X, mnist.pixels
    assert pixels is not None
    try:
        uri = deck.deployments.deploy_and_wait(model, "bench-testset", DeployConfig(cpu_cores=1, memory_gb=2)).scoring_uri
        client = deck.client
        paths = {
            "tutorial client: json + requests (baseline)": lambda: tutorial_client(uri, X)[0],
            "ModelDeck JSON path (orjson)": lambda: client.run(uri, X),
            "ModelDeck binary path (.npy)": lambda: client.run_array(uri, X),
            "ModelDeck binary path, 8-bit pixels (.npy uint8)": lambda: client.run_array(uri, pixels),
        }
        reference = np.asarray(paths["ModelDeck binary path (.npy)"]())
        times: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(rounds):
            for name, call in paths.items():
                started = time.perf_counter()
                predictions = call()
                times[name].append(time.perf_counter() - started)
                assert np.array_equal(np.asarray(predictions), reference), f"{name} predicted differently"
        npy, npy8 = io.BytesIO(), io.BytesIO()
        np.save(npy, X)
        np.save(npy8, pixels)
        sizes = {"ModelDeck binary path, 8-bit pixels (.npy uint8)": len(npy8.getvalue()),"tutorial client: json + requests (baseline)": tutorial_client(uri, X)[1],
                 "ModelDeck JSON path (orjson)": len(__import__("orjson").dumps({"data": X},
                                                     option=__import__("orjson").OPT_SERIALIZE_NUMPY)),
                 "ModelDeck binary path (.npy)": len(npy.getvalue())}
    finally:
        if deck.deployments.list():
            deck.deployments.delete("bench-testset")
    return {"rounds": rounds, "n": len(X), "results": {name: {**summary(t), "bytes": sizes[name]}
                                                          for name, t in times.items()}}


def report(results: dict) -> str:
    rows = results["results"]
    base = rows["tutorial client: json + requests (baseline)"]["median"]
    lines = [f"### The whole MNIST test set ({results['n']:,} x 784) in one call, Docker container (1 CPU)", "",
             f"{results['rounds']} rounds, the paths alternating; identical predictions on every path.", "",
             "| path | request body | median | min | max | speed-up vs baseline |", "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['bytes'] / 2**20:.1f} MiB | {r['median']:.3f} s | {r['min']:.3f} s | "
                     f"{r['max']:.3f} s | {base / r['median']:.1f}x |")
    return "\n".join(lines)


def main() -> None:
    bench_main(__doc__, run, report)


if __name__ == "__main__":
    main()
