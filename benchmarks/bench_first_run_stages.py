"""Where a first run's seconds go, stage by stage, against the share of the progress bar each stage is given
(backend/training.py `_Shares`): a first run in a fresh home, in this process, timed at each progress event.

Run: .venv/bin/python -m benchmarks.bench_first_run_stages [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from backend.config import Settings
from backend.context import open_modeldeck
from backend.progress import ProgressEvent
from backend.training import ensure_sample_models


def one_run() -> list[tuple[float, float, str]]:
    """(seconds since the start, fraction the bar shows, message) of each event of one first run."""
    with tempfile.TemporaryDirectory(prefix="modeldeck-stages-") as tmp:
        deck = open_modeldeck(Settings(home=Path(tmp) / "home", runtime="local", auto_train=False))
        events: list[tuple[float, float, str]] = []
        started = time.perf_counter()

        def record(event: ProgressEvent) -> None:
            events.append((time.perf_counter() - started, event.fraction or 0.0, event.message))

        ensure_sample_models(deck.registry, progress=record)
        return events


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=3)
    rounds = [one_run() for _ in range(parser.parse_args().rounds)]
    print("stage (ends with the event)                         median s  share of time  share of bar")
    for i in range(1, len(rounds[0])):
        took = statistics.median(r[i][0] - r[i - 1][0] for r in rounds)
        time_share = statistics.median((r[i][0] - r[i - 1][0]) / r[-1][0] for r in rounds)
        bar = rounds[0][i][1] - rounds[0][i - 1][1]
        print(f"{rounds[0][i][2][:52]:52} {took:8.2f}  {time_share:12.1%}  {bar:12.1%}")
    print(f"whole run: median {statistics.median(r[-1][0] for r in rounds):.1f} s over {len(rounds)} rounds")


if __name__ == "__main__":
    main()
