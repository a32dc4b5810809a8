"""Runs every benchmark and writes benchmarks/RESULTS.md (medians, min/max, ratios, the machine).

Run: .venv/bin/python -m benchmarks.run_all [--rounds 5] [--output benchmarks/RESULTS.md] [--only deploy,requests]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from . import bench_dashboard, bench_deploy, bench_requests, bench_testset
from .common import machine, userland_proxy_enabled

BENCHMARKS = {
    "deploy": (lambda rounds: bench_deploy.run(cold=3, warm=rounds), bench_deploy.report),
    "requests": (bench_requests.run, bench_requests.report),
    "testset": (bench_testset.run, bench_testset.report),
    "dashboard": (bench_dashboard.run, bench_dashboard.report),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    sections = []
    proxy = userland_proxy_enabled()
    for name in chosen:
        run, report = BENCHMARKS[name]
        started = time.perf_counter()
        print(f"running {name}…", flush=True)
        results = run(args.rounds)
        sections.append(report(results))
        print(sections[-1] + f"\n({name}: {time.perf_counter() - started:.0f} s)\n", flush=True)
    header = [
        "# ModelDeck benchmarks", "",
        f"Made by `.venv/bin/python -m benchmarks.run_all --rounds {args.rounds}` on "
        f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC.", "",
        f"Machine: {machine()}.",
        f"Published ports go through the engine's userland proxy (docker-proxy): {'yes' if proxy else 'no'}.", "",
        "Medians of repeated runs on a shared, noisy 2-core machine; compare the ratios more than the seconds.", "",
    ]
    args.output.write_text("\n".join(header + [s + "\n" for s in sections]))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
