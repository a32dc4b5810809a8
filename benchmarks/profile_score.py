"""Where a single-row request's time goes: py-spy on the scoring server under wrk load.

The server is started as benchmarks/bench_ab.py starts it (`python -m serving`, its built-in
score_sklearn.py, sklearn_mnist:1, one worker, pinned to core 0); wrk (1 thread, 8 connections, one MNIST
row as JSON) runs on core 1, and so does py-spy. Two recordings under the same load: a flame graph (SVG)
and a raw one (collapsed stacks), from which this prints the top frames by share of the samples:
inclusive (the frame anywhere on the stack), self (the frame on top), and a few named buckets.

Run: .venv/bin/python -m benchmarks.profile_score [--rev main] [--seconds 10] [--out benchmarks/profile-score.svg]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import tempfile
import threading
from collections import Counter
from pathlib import Path

from backend.data.builtin import load_mnist_test

from .bench_ab import Side, export_serving
from .bench_requests import wrk_throughput
from .common import CLIENT_CPU, pinned, require_wrk, scratch_deck
from .peers import REPO

PY_SPY = Path(__file__).resolve().parent.parent / ".venv" / "bin" / "py-spy"
WARM_UP_SECONDS = 2
RATE = 200  # samples per second; each pauses the worker briefly, so throughput while sampled is lower
# Named buckets, searched in a sample's stack ("frame;frame;...", root first, so `$` means on top);
# a sample counts once per bucket.
BUCKETS = {
    "scikit-learn predict (all of it)": r"\bpredict \(sklearn/",
    "scikit-learn validation (check_array, validate_data, ...)": r"(check_array|validate_data|_check_n_features|"
                                                                 r"_check_feature_names|_assert_all_finite|"
                                                                 r"validate_parameter_constraints) \(sklearn/",
    "scikit-learn config (get_config, config_context)": r"(get_config|_get_threadlocal_config|config_context) \(",
    "the scoring script's run()/run_array()": r"\brun(_array)? \(.*score_sklearn",
    "simdjson / orjson parse (_fast_rows)": r"_fast_rows \(",
    "FastAPI / Starlette (routing, request, response)": r"\((fastapi|starlette)/",
    "uvicorn's HTTP protocol (httptools_impl)": r"\(uvicorn/protocols/",
    "logging (uvicorn's access log)": r"\(logging/",
    "metrics middleware (its own code)": r"__call__ \(serving/metrics\.py\)$",
    "event loop in C, on top (uvloop: epoll, socket reads and writes)": r"run \(asyncio/runners\.py\)$",
    "response encoding (orjson.dumps of the answer)": r"_score \(serving/app\.py\)$",
    "the scoring thread's job (parse, predict, encode)": r"_score_forever \(",
}


# A thread waiting in these lines is idle, though py-spy (which reads the thread's state) may count it as
# running: the scoring thread blocked on its queue (a futex wait, woken thousands of times a second).
IDLE_LINES = ("job = jobs.get()",)


def _source_line(frame: str) -> str:
    """The source text of a raw frame `name (path:line)` (py-spy --full-filenames), '' when unknown."""
    match = re.search(r"\((/[^()]+):(\d+)\)$", frame)
    if not match:
        return ""
    try:
        return Path(match.group(1)).read_text().splitlines()[int(match.group(2)) - 1].strip()
    except (OSError, IndexError):
        return ""


def parse_raw(path: Path) -> tuple[list[tuple[list[str], int]], int, int]:
    """(stacks, root first, with their sample counts; samples kept; samples dropped as idle) of a py-spy
    raw file."""
    stacks = []
    total = idle = 0
    lines: dict[str, str] = {}
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if not frames or not count.isdigit():
            continue
        names = frames.split(";")
        if names[-1] not in lines:
            lines[names[-1]] = _source_line(names[-1])
        if lines[names[-1]] in IDLE_LINES:
            idle += int(count)
            continue
        stacks.append((names, int(count)))
        total += int(count)
    return stacks, total, idle


def _short(frame: str) -> str:
    """`name (path)` with the path from its package on (site-packages/ and the repository cut off), no line."""
    frame = re.sub(r":\d+\)$", ")", frame)
    return re.sub(r"\(/\S*/(site-packages|python3\.\d+|backend|rev)/", "(", frame)


def summarize(stacks: list[tuple[list[str], int]], total: int, idle: int, top: int = 25) -> str:
    inclusive: Counter[str] = Counter()
    self_time: Counter[str] = Counter()
    buckets: Counter[str] = Counter()
    for frames, count in stacks:
        names = [_short(f) for f in frames]
        stack = ";".join(names)
        for name in set(names):
            inclusive[name] += count
        self_time[names[-1]] += count
        for bucket, pattern in BUCKETS.items():
            if re.search(pattern, stack):
                buckets[bucket] += count
    lines = [f"{total} samples of the worker process's running threads ({idle} more left out: the scoring "
             "thread waiting on its queue)", "", "named buckets (inclusive):"]
    lines += [f"  {buckets[b] / total:6.1%}  {b}" for b in BUCKETS]
    lines += ["", f"top {top} frames, inclusive:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in inclusive.most_common(top)]
    lines += ["", f"top {top} frames, self:"]
    lines += [f"  {n / total:6.1%}  {name}" for name, n in self_time.most_common(top)]
    return "\n".join(lines)


def record(pid: int, fmt: str, out: Path, seconds: int, native: bool) -> None:
    command = [str(PY_SPY), "record", "--pid", str(pid), "--duration", str(seconds), "--full-filenames",
               "--rate", str(RATE), "--format", fmt, "--output", str(out), *(["--native"] if native else [])]
    subprocess.run(pinned(command, CLIENT_CPU), check=True, capture_output=True, timeout=seconds + 60)


def worker_pid(supervisor: int) -> int:
    """The one worker process forked by the serving supervisor `supervisor`."""
    children = Path(f"/proc/{supervisor}/task/{supervisor}/children").read_text().split()
    if len(children) != 1:
        raise RuntimeError(f"expected one worker under the supervisor {supervisor}, found {children}")
    return int(children[0])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rev", help="profile this git revision's backend/serving (default: the working tree)")
    parser.add_argument("--seconds", type=int, default=10, help="per recording (two recordings)")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "profile-score.svg")
    parser.add_argument("--raw", type=Path, help="keep the collapsed stacks here too")
    parser.add_argument("--native", action="store_true", help="py-spy --native (C frames too; on these machines it "
                        "slows the server ~20x and most C frames come out unnamed, so it is off by default)")
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    require_wrk()
    if not PY_SPY.exists():
        raise SystemExit(f"{PY_SPY} is missing: .venv/bin/pip install py-spy==0.4.1")
    work = Path(tempfile.mkdtemp(prefix="modeldeck-profile-"))
    deck = scratch_deck("local")
    try:
        model = deck.registry.get("sklearn_mnist", 1)
        model_dir = deck.registry.materialize(model, work / "model")
        (work / "logs").mkdir()
        parent = export_serving(args.rev, work / "rev") if args.rev else REPO / "backend"
        side = Side(args.rev or "working tree", parent, model_dir, model.id, work / "logs")
        body = json.dumps({"data": [load_mnist_test().X[0].tolist()]}).encode()
        server, url = side.start()
        try:
            rps: list[float] = []
            load_seconds = WARM_UP_SECONDS + 2 * args.seconds + 4  # bounded: wrk stops by itself
            load = threading.Thread(target=lambda: rps.append(wrk_throughput(url, body, work, load_seconds)))
            load.start()
            load.join(WARM_UP_SECONDS)
            raw = args.raw or work / "profile.raw"
            worker = worker_pid(server.proc.pid)
            record(worker, "flamegraph", args.out, args.seconds, args.native)
            record(worker, "raw", raw, args.seconds, args.native)
            load.join(load_seconds + 60)
        finally:
            server.close()
        print(f"{side.label}: {rps[0] if rps else float('nan'):.0f} req/s under wrk while sampled "
              f"(py-spy pauses the process per sample: lower than unprofiled)")
        print(f"flame graph: {args.out}")
        print(summarize(*parse_raw(raw), top=args.top))
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(deck.settings.home, ignore_errors=True)


if __name__ == "__main__":
    main()
