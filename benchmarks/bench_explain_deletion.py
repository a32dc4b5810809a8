"""The deletion test of the image explanations (issue 24): for N test images, the fall in the predicted class's
probability with the most salient 10 % of pixels removed (set to the background), against as many random ink pixels
removed (the baseline, in the same run), for sklearn_mnist:1 (logistic regression) and :2 (the calibrated SVC), each
on a one-core Docker deployment; and the time of one explanation (median, min, max). With --shap, the same test of
shap's Partition explainer (an image masker with the same blank background) through the same endpoint, given
--max-evals model evaluations per image (500 = ModelDeck's own count), in a virtualenv of its own.

Run: .venv/bin/python -m benchmarks.bench_explain_deletion [--images 100] [--runtime docker] [--shap [--max-evals 500 2000]]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .common import machine, scratch_deck, summary
from .peers import SHAP_VERSION, ensure_shap

if TYPE_CHECKING:
    from backend.context import ModelDeck
    from backend.data.testset import TestSet
    from backend.runtimes import Deployment
    from backend.services.explaining import Deletion


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--runtime", default="docker")
    parser.add_argument("--fraction", type=float, default=0.1)
    parser.add_argument("--shap", action="store_true", help="also shap's Partition explainer (a virtualenv, made once)")
    parser.add_argument("--max-evals", type=int, nargs="+", default=[500, 2000])
    args = parser.parse_args()
    print(machine())
    from backend.data.builtin import load_mnist_test
    from backend.runtimes import DeployConfig
    from backend.services.explaining import deletion_test
    from backend.training import train_sample

    deck = scratch_deck(args.runtime)
    train_sample(deck.registry, "mnist", "svc")
    mnist = load_mnist_test()
    indices = list(range(args.images))
    print(f"\n### Deletion test: {args.images} MNIST test images, {args.fraction:.0%} of the pixels removed "
          f"({args.runtime}, one core)\n")
    print("| model | method | P(predicted) falls, top pixels | random ink pixels | ratio | one explanation, s "
          "(median, min, max) | requests |")
    print("|---|---|---|---|---|---|---|")
    for version in (1, 2):
        name = f"bench-explain-{version}"
        deployment = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", version), name,
                                                      DeployConfig(cpu_cores=1, memory_gb=2), runtime=args.runtime,
                                                      timeout=900)
        try:
            rows = [("ModelDeck patches (49, 10 orderings, 500 rows)", deletion_test(deck, deployment, mnist, indices,
                                                                                    fraction=args.fraction), 1.0)]
            if args.shap:
                python = ensure_shap(deck.registry.get("sklearn_mnist", version))
                for evals in args.max_evals:
                    result, requests = _shap_deletion(python, deck, deployment, mnist, indices, evals, args.fraction)
                    rows.append((f"shap {SHAP_VERSION} Partition, max_evals={evals}", result, requests))
        finally:
            deck.deployments.delete(name)
        for method, result, requests in rows:
            s = summary(list(result.seconds))
            print(f"| sklearn_mnist:{version} | {method} | {result.top_drop:.3f} | {result.random_drop:.3f} | "
                  f"{result.top_drop / max(result.random_drop, 1e-9):.1f}x | {s['median']:.2f} ({s['min']:.2f}, "
                  f"{s['max']:.2f}) | {requests:g} |", flush=True)


def _shap_deletion(python: Path, deck: ModelDeck, deployment: Deployment, testset: TestSet, indices: list[int],
                   evals: int, fraction: float) -> tuple[Deletion, float]:
    """shap's saliency maps for the images (benchmarks/shap_peer.py in its own virtualenv, through the endpoint),
    put through the same deletion test; and the median requests per explanation."""
    from backend.services.explaining import deletion_of
    from backend.services.reaching import reach_of

    reach = reach_of(deck, deployment)
    shape = testset.image_shape
    assert shape is not None, "images only"
    with tempfile.TemporaryDirectory() as scratch:
        images, out = Path(scratch) / "images.npy", Path(scratch) / "out.npz"
        np.save(images, testset.X[indices].reshape(len(indices), *shape).astype(np.float64))
        subprocess.run([str(python), str(Path(__file__).with_name("shap_peer.py")), str(images), str(out),
                        "--uri", reach.uri, "--max-evals", str(evals), "--background",
                        str(testset.value_range[0])],
                       check=True, env={**os.environ, "MODELDECK_PEER_KEY": reach.key or ""}, timeout=3600)
        found = np.load(out)
        result = deletion_of(deck, deployment, testset, indices, list(found["saliency"]), list(found["seconds"]),
                             fraction=fraction)
        return result, float(np.median(found["requests"]))

if __name__ == "__main__":
    main()
