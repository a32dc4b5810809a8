"""Runs every benchmark and writes benchmarks/RESULTS.md (medians, min/max, ratios, the machine).

Each benchmark's section replaces the section of the same heading in the existing file; every other
section (those of benchmarks not run this time, and hand-written ones) is kept as it was.

Run: .venv/bin/python -m benchmarks.run_all [--rounds 5] [--output benchmarks/RESULTS.md] [--only deploy,requests]
"""

from __future__ import annotations

import argparse
import time
from datetime import UTC, datetime
from pathlib import Path

from . import (
    bench_build,
    bench_dashboard,
    bench_deploy,
    bench_pages,
    bench_requests,
    bench_samples,
    bench_testset,
    bench_v2,
)
from .common import machine, userland_proxy_enabled

MADE_BY = "Made by `.venv/bin/python -m benchmarks.run_all"
REMADE = "Re-made since:"

BENCHMARKS = {
    "deploy": (lambda rounds: bench_deploy.run(cold=3, warm=rounds), bench_deploy.report),
    "requests": (bench_requests.run, bench_requests.report),
    "testset": (bench_testset.run, bench_testset.report),
    "dashboard": (bench_dashboard.run, bench_dashboard.report),
    "samples": (bench_samples.run, bench_samples.report),
    "build": (bench_build.run, bench_build.report),
    "v2": (bench_v2.run, bench_v2.report),
    "pages": (bench_pages.run, bench_pages.report),
}


def split_sections(text: str) -> tuple[list[str], list[str]]:
    """(the lines before the first `### ` heading, the sections from each `### ` heading to the next)."""
    head: list[str] = []
    sections: list[list[str]] = []
    for line in text.splitlines():
        if line.startswith("### "):
            sections.append([])
        (sections[-1] if sections else head).append(line)
    return head, ["\n".join(lines).strip("\n") for lines in sections]


def merge(old: str, new: list[str]) -> list[str]:
    """The sections of `old` with each of `new` in place of the one of the same heading; new headings go
    after the last replaced section (or at the end)."""
    _, sections = split_sections(old)
    at = len(sections)
    for section in new:
        heading = section.splitlines()[0]
        found = [i for i, s in enumerate(sections) if s.splitlines()[0] == heading]
        if found:
            sections[found[0]] = section
            at = found[0] + 1
        else:
            sections.insert(at, section)
            at += 1
    return sections


def made_by_lines(old: str, chosen: list[str], rounds: int, stamp: str) -> list[str]:
    """Which command made the file, and when: a full run says so alone; a partial run keeps the line of
    the last full run (and of other partial runs) and adds, or replaces, the one for its own sections."""
    if set(chosen) == set(BENCHMARKS):
        return [f"{MADE_BY} --rounds {rounds}` on {stamp}."]
    remade = f"{REMADE} {', '.join(chosen)} by"
    head, _ = split_sections(old)
    kept = [line for line in head if line.startswith((MADE_BY, REMADE)) and not line.startswith(remade)]
    return kept + [f"{remade} `{MADE_BY.removeprefix('Made by `')} --rounds {rounds} --only {','.join(chosen)}` "
                   f"on {stamp}."]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--output", type=Path, default=Path(__file__).resolve().parent / "RESULTS.md")
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS))
    args = parser.parse_args()
    chosen = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = [name for name in chosen if name not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}: choose from {', '.join(BENCHMARKS)}")
    sections = []
    proxy = userland_proxy_enabled()
    for name in chosen:
        run, report = BENCHMARKS[name]
        started = time.perf_counter()
        print(f"running {name}…", flush=True)
        results = run(args.rounds)
        sections.append(report(results))
        print(sections[-1] + f"\n({name}: {time.perf_counter() - started:.0f} s)\n", flush=True)
    old = args.output.read_text() if args.output.exists() else ""
    header = [
        "# ModelDeck benchmarks", "",
        *made_by_lines(old, chosen, args.rounds, f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC ({machine()})"), "",
        f"Machine of the latest run: {machine()}.",
        f"Published ports go through the engine's userland proxy (docker-proxy): {'yes' if proxy else 'no'}.", "",
        "Medians of repeated runs on a shared, noisy 2-core machine; compare the ratios more than the seconds.", "",
    ]
    args.output.write_text("\n".join(header + [s + "\n" for s in merge(old, sections)]))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
