"""The deletion test of the image explanations (issue 24): for N test images, the fall in the predicted class's
probability with the most salient 10 % of pixels removed (set to the background), against as many random ink pixels
removed (the baseline, in the same run), for sklearn_mnist:1 (logistic regression) and :2 (the calibrated SVC), each
on a one-core Docker deployment; and the time of one explanation (median, min, max).

Run: .venv/bin/python -m benchmarks.bench_explain_deletion [--images 100] [--runtime docker]
"""

from __future__ import annotations

import argparse

from .common import machine, scratch_deck, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--runtime", default="docker")
    parser.add_argument("--fraction", type=float, default=0.1)
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
    print("| model | P(predicted) falls, top pixels | random ink pixels | ratio | one explanation, s (median, min, max) |")
    print("|---|---|---|---|---|")
    for version in (1, 2):
        name = f"bench-explain-{version}"
        deployment = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", version), name,
                                                      DeployConfig(cpu_cores=1, memory_gb=2), runtime=args.runtime,
                                                      timeout=900)
        try:
            result = deletion_test(deck, deployment, mnist, indices, fraction=args.fraction)
        finally:
            deck.deployments.delete(name)
        s = summary(list(result.seconds))
        print(f"| sklearn_mnist:{version} | {result.top_drop:.3f} | {result.random_drop:.3f} | "
              f"{result.top_drop / max(result.random_drop, 1e-9):.1f}x | {s['median']:.2f} ({s['min']:.2f}, "
              f"{s['max']:.2f}) |", flush=True)


if __name__ == "__main__":
    main()
