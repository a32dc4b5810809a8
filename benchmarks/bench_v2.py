"""One local deployment of sklearn_mnist:1, scored the tutorial's way (POST /score, JSON) and the Open
Inference Protocol's way (tritonclient.http, FP32 binary tensors, labels only), for 1 row and for the
10,000 rows of the MNIST test set: the median of a few rounds per way, and their ratio. Both ways get the
same labels (checked).

Run: .venv/bin/python -m benchmarks.bench_v2 [--rounds 5]
"""

from __future__ import annotations

import time

import numpy as np
import requests

from backend.datasets import load_mnist_test

from .common import bench_main, scratch_deck, summary

NAME = "v2-bench"


def _timed(call, rounds: int) -> tuple[list[float], object]:
    call()  # warm: connection, first-call costs
    seconds, answer = [], None
    for _ in range(rounds):
        started = time.perf_counter()
        answer = call()
        seconds.append(time.perf_counter() - started)
    return seconds, answer


def run(rounds: int = 5) -> dict:
    import tritonclient.http as triton

    deck = scratch_deck("local")
    deployment = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), NAME, timeout=180)
    uri = deployment.scoring_uri or ""
    client = triton.InferenceServerClient(uri.removeprefix("http://").rsplit("/score", 1)[0], network_timeout=300)
    session = requests.Session()
    X = load_mnist_test().X
    results: dict = {}
    try:
        for rows in (1, len(X)):
            batch = np.ascontiguousarray(X[:rows])

            def score(batch=batch) -> list:
                answer = session.post(uri, json={"data": batch.tolist()})
                answer.raise_for_status()
                return answer.json()

            def infer(batch=batch) -> list:
                tensor = triton.InferInput("input-0", list(batch.shape), "FP32")
                tensor.set_data_from_numpy(batch, binary_data=True)
                result = client.infer("sklearn_mnist", [tensor],
                                      outputs=[triton.InferRequestedOutput("predict", binary_data=True)])
                return result.as_numpy("predict").tolist()

            score_seconds, scored = _timed(score, rounds)
            infer_seconds, inferred = _timed(infer, rounds)
            assert scored == inferred, "the two protocols disagree"
            results[rows] = {"score_json": summary(score_seconds), "v2_binary": summary(infer_seconds)}
    finally:
        client.close()
        deck.deployments.delete(NAME)
    return results


def report(results: dict) -> str:
    lines = []
    for rows, ways in results.items():
        score, v2 = ways["score_json"], ways["v2_binary"]
        lines.append(f"{rows:>6,} rows  /score JSON {score['median'] * 1000:9.2f} ms   V2 binary "
                     f"{v2['median'] * 1000:9.2f} ms   median of {score['n']}; /score takes "
                     f"{score['median'] / v2['median']:.2f}x the time of V2")
    return "\n".join(lines)


if __name__ == "__main__":
    bench_main(__doc__, run, report)
