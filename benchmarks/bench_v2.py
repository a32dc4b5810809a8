"""One local deployment of sklearn_mnist:1, scored the tutorial's way (POST /score, JSON), ModelDeck's
binary way (POST /score, .npy float32) and the Open Inference Protocol's way (FP32 binary tensors, labels
only; sent by `requests` and by tritonclient.http), for 1 row and for the 10,000 rows of the MNIST test set: the median of a
few rounds per way, and their ratios. /score .npy is the fair baseline for V2 binary (both send raw
float32); JSON's cost is mostly the client encoding 7.8 M numbers. Every way gets the same labels (checked).

Run: .venv/bin/python -m benchmarks.bench_v2 [--rounds 5]
"""

from __future__ import annotations

import io
import time

import numpy as np
import orjson
import requests

from backend.data.builtin import load_mnist_test

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
    base = uri.rsplit("/score", 1)[0]
    client = triton.InferenceServerClient(base.removeprefix("http://"), network_timeout=300)
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

            def score_npy(batch=batch) -> list:
                buffer = io.BytesIO()
                np.save(buffer, batch)
                answer = session.post(uri, data=buffer.getvalue(), headers={"Content-Type": "application/x-npy"})
                answer.raise_for_status()
                return answer.json()

            def infer_raw(batch=batch) -> list:
                """The same V2 binary request, sent by `requests`: the server's side without tritonclient's."""
                header = orjson.dumps({"inputs": [{"name": "input-0", "shape": list(batch.shape), "datatype": "FP32",
                                                   "parameters": {"binary_data_size": batch.nbytes}}],
                                      "outputs": [{"name": "predict"}]})  # labels only, as JSON
                answer = session.post(base + "/v2/models/sklearn_mnist/infer", data=header + batch.tobytes(),
                                      headers={"Inference-Header-Content-Length": str(len(header)),
                                               "Content-Type": "application/octet-stream"})
                answer.raise_for_status()
                return answer.json()["outputs"][0]["data"]

            def infer(batch=batch) -> list:
                tensor = triton.InferInput("input-0", list(batch.shape), "FP32")
                tensor.set_data_from_numpy(batch, binary_data=True)
                result = client.infer("sklearn_mnist", [tensor],
                                      outputs=[triton.InferRequestedOutput("predict", binary_data=True)])
                return result.as_numpy("predict").tolist()

            score_seconds, scored = _timed(score, rounds)
            npy_seconds, scored_npy = _timed(score_npy, rounds)
            raw_seconds, raw = _timed(infer_raw, rounds)
            infer_seconds, inferred = _timed(infer, rounds)
            assert scored == inferred == scored_npy == raw, "the ways disagree"
            results[rows] = {"score_json": summary(score_seconds), "score_npy": summary(npy_seconds),
                             "v2_requests": summary(raw_seconds), "v2_binary": summary(infer_seconds)}
    finally:
        client.close()
        deck.deployments.delete(NAME)
    return results


def report(results: dict) -> str:
    lines = ["### The Open Inference Protocol (V2) against /score (issue 12)", "",
             "One local deployment of sklearn_mnist:1; client time included; every way got the same labels.", ""]
    for rows, ways in results.items():
        score, npy, raw, v2 = ways["score_json"], ways["score_npy"], ways["v2_requests"], ways["v2_binary"]
        lines.append(f"- {rows:,} rows: /score JSON {score['median'] * 1000:.2f} ms, /score .npy "
                     f"{npy['median'] * 1000:.2f} ms, V2 binary by requests {raw['median'] * 1000:.2f} ms, by "
                     f"tritonclient {v2['median'] * 1000:.2f} ms (medians of {score['n']}); V2 by requests takes "
                     f"{raw['median'] / npy['median']:.2f}x the time of .npy, by tritonclient "
                     f"{v2['median'] / npy['median']:.2f}x (its own client included), {v2['median'] / score['median']:.3f}x "
                     "that of JSON")
    return "\n".join(lines)


if __name__ == "__main__":
    bench_main(__doc__, run, report)
