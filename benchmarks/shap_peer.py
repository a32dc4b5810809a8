"""shap's Partition explainer through a deployment's scoring endpoint, for the deletion test's comparison (issue 24).
Runs in the shap virtualenv (benchmarks/peers.ensure_shap), not in ModelDeck's: it imports only shap and numpy.

  python shap_peer.py IMAGES.npy OUT.npz --uri URI [--max-evals N] [--background V]
  (the key, if any, in MODELDECK_PEER_KEY)

IMAGES.npy holds N x H x W images as scored; OUT.npz gets `saliency` (N x H x W, for the class the deployment
predicts), `seconds` and `requests` per image.
"""

import argparse
import json
import os
import time
import urllib.request

import numpy as np
import shap


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("images")
    parser.add_argument("out")
    parser.add_argument("--uri", required=True)
    parser.add_argument("--max-evals", type=int, default=500)
    parser.add_argument("--background", type=float, default=0.0)
    args = parser.parse_args()
    images = np.load(args.images)
    shape = (*images.shape[1:], 1)  # the image masker takes height x width x channels
    key = os.environ.get("MODELDECK_PEER_KEY")
    calls = [0]

    def model(x: np.ndarray) -> np.ndarray:
        calls[0] += 1
        body = json.dumps({"data": x.reshape(len(x), -1).tolist(), "proba": True}).encode()
        headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
        with urllib.request.urlopen(urllib.request.Request(args.uri, body, headers), timeout=120) as response:
            return np.asarray(json.loads(response.read())["probabilities"], dtype=np.float64)

    masker = shap.maskers.Image(np.full(shape, args.background), shape)
    explainer = shap.explainers.Partition(model, masker)
    saliency, seconds, requests = [], [], []
    for image in images:
        calls[0] = 0
        started = time.perf_counter()
        predicted = int(np.argmax(model(image[None])))
        values = explainer(image.reshape(1, *shape), max_evals=args.max_evals, batch_size=args.max_evals, outputs=[predicted],
                           silent=True).values
        seconds.append(time.perf_counter() - started)
        requests.append(calls[0])
        saliency.append(np.asarray(values).reshape(images.shape[1:]))
    np.savez(args.out, saliency=np.stack(saliency), seconds=np.asarray(seconds), requests=np.asarray(requests))


if __name__ == "__main__":
    main()
