"""How long the stakeholder's answers take, on the local runtime: comparing sklearn_mnist:1 with :2 on the
MNIST 10k test set, and writing the report (HTML from kept scorings, and its PDF). The baseline in the same run:
scoring the whole test set at one deployment, what every comparison does twice.

Run: .venv/bin/python -m benchmarks.bench_report [--rounds 5]
"""

from __future__ import annotations

import argparse
import statistics
import time

from backend.data.builtin import load_mnist_test
from backend.inspection.report import render, to_pdf
from backend.services.comparing import compare_deployments
from backend.services.reports import report_inputs
from backend.services.scoring import score_and_keep
from backend.training import train_sample

from .common import fmt, machine, scratch_deck, summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    print(machine())
    deck = scratch_deck("local")
    train_sample(deck.registry, algorithm="svc")  # sklearn_mnist:2, as a first run registers it
    first, latest = deck.registry.get("sklearn_mnist", 1), deck.registry.get("sklearn_mnist", 2)
    a = deck.deployments.deploy_and_wait(first, "bench-report-a", timeout=180)
    b = deck.deployments.deploy_and_wait(latest, "bench-report-b", timeout=180)
    testset = load_mnist_test()
    print(f"A = {a.model_id}, B = {b.model_id}; {len(testset):,} images; {args.rounds} rounds, medians")
    scored, compared, html, pdf = [], [], [], []
    size = 0
    try:
        for _ in range(args.rounds):
            started = time.perf_counter()
            score_and_keep(deck, a, testset, source="bench")
            scored.append(time.perf_counter() - started)
            started = time.perf_counter()
            compare_deployments(deck, a, b, testset, source="bench")
            compared.append(time.perf_counter() - started)
            started = time.perf_counter()
            document = render(report_inputs(deck, b, testset, compare_with=a))  # from the kept scorings
            html.append(time.perf_counter() - started)
            size = len(document)
            started = time.perf_counter()
            to_pdf(document)
            pdf.append(time.perf_counter() - started)
    finally:
        for deployment in (a, b):
            deck.deployments.delete(deployment.name)
    base = statistics.median(scored)
    print(f"score the test set at A (baseline):   {fmt(summary(scored))}")
    print(f"compare A and B (scores both):        {fmt(summary(compared))} = {statistics.median(compared) / base:.2f}x "
          "the baseline")
    print(f"report with the comparison, HTML:     {fmt(summary(html))} = {statistics.median(html) / base:.2f}x "
          f"the baseline ({size / 1e6:.2f} MB)")
    print(f"the same report printed to PDF:       {fmt(summary(pdf))}")


if __name__ == "__main__":
    main()
