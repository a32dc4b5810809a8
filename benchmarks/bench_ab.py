"""A/B of ModelDeck's single-row throughput: the scoring server of a base git revision against the
working tree's, each started as the local runtime starts it (`python -m serving` with its own built-in
score_sklearn.py, the same common flags and the same model file), one at a time on CPU core 0, wrk on
core 1, the sides alternating (and which goes first) round by round.

Run: .venv/bin/python -m benchmarks.bench_ab [--base 6d586d5] [--rounds 7] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import requests

from backend.data.builtin import load_mnist_test
from backend.runtimes.base import serving_environment
from backend.runtimes.probe import free_port

from .bench_requests import REQUEST_TIMEOUT, wrk_throughput
from .common import machine, require_wrk, scratch_deck
from .peers import REPO, PinnedServer

# Flags both sides must accept (checked against each side's --help); nothing else is passed.
COMMON_FLAGS = ("--script", "--model-dir", "--host", "--port", "--workers", "--name", "--model")
WARM_UP_REQUESTS = 50


def export_serving(rev: str, dest: Path) -> Path:
    """`backend/serving` of git revision `rev` under dest; returns the folder to put on PYTHONPATH."""
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev, "backend/serving"], check=True,
                             capture_output=True).stdout
    dest.mkdir(parents=True, exist_ok=True)
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    return dest / "backend"


def check_flags(serving_parent: Path) -> None:
    """Raises SystemExit when the `serving` under serving_parent lacks one of COMMON_FLAGS."""
    help_text = subprocess.run([sys.executable, "-m", "serving", "--help"], capture_output=True, text=True,
                               env={**os.environ, "PYTHONPATH": str(serving_parent)}, cwd=serving_parent,
                               timeout=60).stdout
    missing = [flag for flag in COMMON_FLAGS if flag not in help_text]
    if missing:
        raise SystemExit(f"the server in {serving_parent} lacks {', '.join(missing)}")


class Side:
    """One side of the A/B: a copy of the `serving` package and its built-in scoring script."""

    def __init__(self, label: str, serving_parent: Path, model_dir: Path, model_id: str, logs: Path,
                 keys_file: Path | None = None) -> None:
        self.label, self.serving_parent, self.model_dir, self.model_id, self.logs = \
            label, serving_parent, model_dir, model_id, logs
        self.keys_file = keys_file  # key auth on: the requests carry the primary key
        self.headers = {"Authorization": f"Bearer {json.loads(keys_file.read_text())['primary']}"} if keys_file else {}
        check_flags(serving_parent)

    def start(self) -> tuple[PinnedServer, str]:
        """The server on a free port, pinned to core 0, as backend/runtimes/local.py starts it; and its URL."""
        port = free_port()
        env = {**os.environ, **serving_environment(1.0, str(self.model_dir)),
               "PYTHONPATH": str(self.serving_parent), "PYTHONUNBUFFERED": "1"}
        command = [sys.executable, "-m", "serving", "--script", str(self.serving_parent / "serving" /
                   "score_sklearn.py"), "--model-dir", str(self.model_dir), "--host", "127.0.0.1", "--port", str(port),
                   "--workers", "1", "--name", "bench-ab", "--model", self.model_id,
                   *(["--keys-file", str(self.keys_file)] if self.keys_file else [])]
        server = PinnedServer(f"the {self.label} server", command, f"http://127.0.0.1:{port}/ready",
                              self.logs / f"{self.label.split()[0]}-{port}.log", env=env, cwd=self.logs)
        return server, f"http://127.0.0.1:{port}/score"


def measure(side: Side, body: bytes, seconds: int, work: Path) -> tuple[float, list]:
    """(requests per second, the labels it answered) for one fresh server of `side`."""
    server, url = side.start()
    try:
        session = requests.Session()
        headers = {"Content-Type": "application/json", **side.headers}
        for _ in range(WARM_UP_REQUESTS):
            session.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT).raise_for_status()
        labels = session.post(url, data=body, headers=headers, timeout=REQUEST_TIMEOUT).json()
        session.close()
        return wrk_throughput(url, body, work, seconds, side.headers), labels
    finally:
        server.close()


def spread(values: list[float], digits: int = 0) -> str:
    return f"{statistics.median(values):.{digits}f} ({min(values):.{digits}f}–{max(values):.{digits}f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--base", default="6d586d5", help="git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--seconds", type=int, default=5, help="wrk duration per side per round")
    parser.add_argument("--with-auth", action="store_true",
                        help="a third side: the working tree with key auth on (--keys-file, a Bearer key per request)")
    args = parser.parse_args()
    require_wrk()
    print(machine())
    work = Path(tempfile.mkdtemp(prefix="modeldeck-bench-ab-"))
    deck = scratch_deck("local")
    try:
        model = deck.registry.get("sklearn_mnist", 1)
        model_dir = deck.registry.materialize(model, work / "model")
        (work / "logs").mkdir()
        sides = [Side(f"base {args.base}", export_serving(args.base, work / "base"), model_dir, model.id,
                      work / "logs"),
                 Side("working tree", REPO / "backend", model_dir, model.id, work / "logs")]
        if args.with_auth:
            keys_file = work / "keys.json"
            keys_file.write_text(json.dumps({"primary": "p" * 43, "secondary": "s" * 43}))
            sides.append(Side("working tree, key auth", REPO / "backend", model_dir, model.id, work / "logs", keys_file))
        body = json.dumps({"data": [load_mnist_test().X[0].tolist()]}).encode()
        rps: dict[str, list[float]] = {side.label: [] for side in sides}
        answers: dict[str, list] = {}
        for round_no in range(args.rounds):
            for side in sides[round_no % len(sides):] + sides[:round_no % len(sides)]:
                value, labels = measure(side, body, args.seconds, work)
                rps[side.label].append(value)
                answers[side.label] = labels
                print(f"round {round_no + 1}: {side.label}: {value:.0f} req/s", flush=True)
        if len({json.dumps(labels) for labels in answers.values()}) != 1:
            raise SystemExit(f"the two sides answer the same row differently: {answers}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(deck.settings.home, ignore_errors=True)
    base = rps[sides[0].label]
    print(f"\nsingle-row throughput, wrk 1 thread x 8 connections, {args.seconds} s, {args.rounds} rounds, "
          "servers on core 0, wrk on core 1; median (min–max):")
    for side in sides:
        print(f"  {side.label}: {spread(rps[side.label])} req/s")
    for side in sides[1:]:
        new = rps[side.label]
        ratios = [n / b for n, b in zip(new, base, strict=True)]
        print(f"  {side.label} / base: {statistics.median(new) / statistics.median(base):.3f} (ratio of medians); "
              f"per round {spread(ratios, 3)}")


if __name__ == "__main__":
    main()
