"""What-if latency per edit (issue 23's goal: 150 ms warm) for the breast-cancer sample on a deployment.

Backend, in this process: `predict_row` after one column changed (what an edit asks of the endpoint), the
dependence curve (1 + 50 rows x 25 values, one request), the set's predictions with the nearest row of another
class, a row's explanation (Shapley values: 10 orderings x 30 background rows x 31 steps = 9,300 rows) and the
permutation importance on the whole set (30 columns x 3 shuffles x 143 rows). Baseline in the same run: a bare JSON /score of one row with requests, the floor of any answer.

Browser, headless Chromium (Debian's, via Playwright) against `streamlit run`: one edit is a slider's thumb moved
one step with the keyboard, timed to when the page shows the edited value in its "changed" line and Streamlit is
idle (the prediction, the probabilities and the curve are drawn in the same rerun). Baseline in the same run: the
same key on a bare Streamlit page whose slider is echoed in a fragment (benchmarks/floor_slider.py).

Run: .venv/bin/python -m benchmarks.bench_whatif [--rounds 30] [--runtime docker|local]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import numpy as np
import requests

from .bench_pages import IDLE_JS
from .common import CHROMIUM_ARGS, free_port, machine, scratch_deck, streamlit_server, summary

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = "bench-whatif"
CHROMIUM = "/usr/bin/chromium"
COLUMN = "mean radius"


def backend_times(deck: Any, rounds: int) -> dict[str, list[float]]:
    from backend.services import whatif
    from backend.services.testsets import scoring_target

    deployment, data = scoring_target(deck, DEPLOYMENT, "breast-cancer")
    start = whatif.start_row(data, None)
    from backend.services import explaining

    times: dict[str, list[float]] = {"bare /score": [], "edit": [], "curve": [], "nearest": [], "explain": [],
                                     "importance": []}
    body = {"data": [start.tolist()]}
    uri = deployment.scoring_uri or ""
    for r in range(rounds + 1):  # the first round warms up
        row = whatif.edited(data, start, {COLUMN: 10.0 + r * 0.1})
        steps = (("bare /score", lambda: requests.post(uri, json=body, timeout=30).raise_for_status()),
                 ("edit", lambda row=row: whatif.predict_row(deck, deployment, data, row)),
                 ("curve", lambda row=row: whatif.dependence(deck, deployment, data, row, COLUMN)),
                 ("nearest", lambda row=row: whatif.counterfactual(
                     data, whatif.set_predictions(deck, deployment, data), row, 0)),
                 ("explain", lambda row=row: explaining.explain_row(deck, deployment, data, row)),
                 ("importance", lambda: explaining.permutation_importance(deck, deployment, data)))
        for key, step in steps:
            started = time.perf_counter()
            step()
            if r:
                times[key].append(time.perf_counter() - started)
    return times


def _edit(page: Any, slider: Any, key: str, text: str) -> float:
    """Seconds from pressing `key` on `slider` to `text` on the page with Streamlit idle."""
    started = time.monotonic()
    slider.press(key)
    page.get_by_text(text).first.wait_for(state="visible", timeout=30_000)
    page.wait_for_function(IDLE_JS, timeout=30_000, polling=10)
    return time.monotonic() - started


def browser_times(dashboard: str, floor: str, rounds: int, start_value: float) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    times: dict[str, list[float]] = {"floor edit": [], "what-if edit": []}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(floor)
        floor_slider = page.get_by_role("slider", name="Value")
        floor_slider.wait_for(timeout=60_000)
        floor_slider.focus()
        page.goto(f"{dashboard}/test?deployment={DEPLOYMENT}&dataset=breast-cancer")
        slider = page.get_by_role("slider", name=COLUMN)
        slider.wait_for(timeout=120_000)
        page.wait_for_function(IDLE_JS, timeout=60_000)
        unchanged = f"{start_value:.6g}"
        for r in range(rounds + 1):  # the first round warms up
            up = r % 2 == 0  # up a step, then back: the value stays in range
            changed = f"{COLUMN} {unchanged} → {start_value + 0.1:.6g}" if up else "move a column and the prediction"
            seconds = _edit(page, slider, "ArrowRight" if up else "ArrowLeft", changed)
            if r:
                times["what-if edit"].append(seconds)
        page.goto(floor)
        floor_slider.wait_for(timeout=60_000)
        for r in range(rounds + 1):
            up = r % 2 == 0
            seconds = _edit(page, floor_slider, "ArrowRight" if up else "ArrowLeft", f"Value now {5.1 if up else 5.0:.1f}")
            if r:
                times["floor edit"].append(seconds)
        browser.close()
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=30)
    parser.add_argument("--runtime", choices=("docker", "local"), default="docker")
    args = parser.parse_args()
    print(machine())
    from backend.runtimes import DeployConfig
    from backend.services import whatif
    from backend.services.testsets import load_testset
    from backend.training import train_sample

    deck = scratch_deck(args.runtime)
    model = train_sample(deck.registry, "breast-cancer", "logistic")
    deck.deployments.deploy_and_wait(model, DEPLOYMENT, DeployConfig(cpu_cores=1), timeout=600)
    env = {"MODELDECK_HOME": str(deck.settings.home), "MODELDECK_RUNTIME": args.runtime, "MODELDECK_AUTO_TRAIN": "0"}
    servers = []
    try:
        times = backend_times(deck, args.rounds)
        start = whatif.start_row(load_testset(deck, "breast-cancer"), None)
        column = whatif.controls_of(load_testset(deck, "breast-cancer"))
        start_value = float(start[[c.name for c in column].index(COLUMN)])
        ports = free_port(), free_port()
        servers.append(streamlit_server(ROOT / "dashboard" / "app.py", env, ports[0]))
        servers.append(streamlit_server(ROOT / "benchmarks" / "floor_slider.py", env, ports[1]))
        times |= browser_times(f"http://127.0.0.1:{ports[0]}", f"http://127.0.0.1:{ports[1]}", args.rounds, start_value)
    finally:
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=20)
        deck.deployments.delete(DEPLOYMENT)
    stats = {key: summary(values) for key, values in times.items()}
    print(f"\n### What-if on {args.runtime}: {args.rounds} rounds, warm (ms: median, min, max)\n")
    for key, s in stats.items():
        print(f"- {key:14} {s['median'] * 1000:7.1f}  ({s['min'] * 1000:.1f}, {s['max'] * 1000:.1f})")
    print(f"\nedit / bare /score: {stats['edit']['median'] / stats['bare /score']['median']:.2f}x;  "
          f"what-if edit / floor edit in the browser: "
          f"{stats['what-if edit']['median'] / stats['floor edit']['median']:.2f}x;  "
          f"goal 150 ms: {'met' if stats['what-if edit']['median'] <= 0.150 else 'missed'} "
          f"({np.median(times['what-if edit']) * 1000:.0f} ms)")


if __name__ == "__main__":
    main()
