"""How fast every dashboard page becomes interactive and every heavy click is answered, in headless
Chromium (Debian's, via Playwright) against `streamlit run` and a Docker deployment; quiet, then with a
load test running against that deployment.

"Interactive": the page's main widgets are on screen and Streamlit's running indicator is gone (the
script finished its run); the time is when that first held, confirmed 0.3 s later. Page loads are full
navigations (a new session, as a reload or a shared link), warm: the server has served each page once.

Clicks, each to its result with the running indicator gone:
- "Score the whole test set" (10,000 images) to the heatmap;
- a robustness kind chosen in the Perturbation select to that kind's curve button;
- Deploy (the form) to the "Test it" link, with the environment image cached.

Baselines measured in the same run: a bare Streamlit page (title, select, button: benchmarks/floor_page.py)
for page loads and the select; the backend's own time for the whole-set score (`score_and_keep`, in
this process, the same deployment) and for the deploy (`deploy_and_wait`).

Run: .venv/bin/python -m benchmarks.bench_pages [--rounds 3] [--quiet-only]
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from .common import CHROMIUM_ARGS, free_port, machine, scratch_deck, streamlit_server, summary

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = "bench-pages"
SETTLE_S = 0.3
# Main widgets per page (the title alone is not interactive).
PAGES: dict[str, tuple[str, str]] = {
    "Models": ("/models", "button:^Train sample model$"),
    "Deploy": ("/deploy", "testid:stFormSubmitButton"),
    "Test": (f"/test?deployment={DEPLOYMENT}&dataset=mnist", "button:^Score the whole test set"),
    "Compare": ("/compare", "button:^Compare on"),
}
IDLE_JS = "() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')"


def _locator(page: Any, what: str) -> Any:
    main = page.get_by_test_id("stMain")
    kind, _, value = what.partition(":")
    if kind == "testid":
        return main.get_by_test_id(value).first
    if kind == "text":
        return main.get_by_text(re.compile(value)).first
    return main.get_by_role("button", name=re.compile(value)).first


def until_interactive(page: Any, what: str, started: float, timeout_s: float = 120) -> float:
    """Seconds from `started` to when `what` was visible and Streamlit idle, confirmed SETTLE_S later."""
    target = _locator(page, what)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        target.wait_for(state="visible", timeout=timeout_s * 1000)
        page.wait_for_function(IDLE_JS, timeout=timeout_s * 1000, polling=25)
        seen = time.monotonic()
        page.wait_for_timeout(SETTLE_S * 1000)
        if target.is_visible() and page.evaluate(IDLE_JS):
            return seen - started
    raise TimeoutError(f"{what} not interactive within {timeout_s} s")


def load(page: Any, base: str, path: str, what: str) -> float:
    started = time.monotonic()
    page.goto(base + path, wait_until="commit")
    return until_interactive(page, what, started)


def choose_option(page: Any, label: str, option: str) -> float:
    """Opens the (last) select `label`, picks `option`; returns when it was picked."""
    select = page.get_by_test_id("stMain").get_by_label(label, exact=True).last
    select.click()
    select.press_sequentially(option)
    page.get_by_role("option").first.wait_for(state="visible")
    started = time.monotonic()
    select.press("Enter")
    return started


def measure(base: str, floor: str, deck: Any, rounds: int, label: str) -> dict[str, list[float]]:
    from playwright.sync_api import sync_playwright

    from backend.inspection.perturb import KINDS

    times: dict[str, list[float]] = {k: [] for k in (*PAGES, "floor page", "score", "kind", "floor select",
                                                     "deploy")}
    kinds = [KINDS[k].label for k in KINDS]
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        for path, what in PAGES.values():  # warm: each page served once
            load(page, base, path, what)
        load(page, floor, "/", "button:^Go with")
        for r in range(rounds):
            times["floor page"].append(load(page, floor, "/", "button:^Go with"))
            started = choose_option(page, "Kind", ["two", "three"][r % 2])
            times["floor select"].append(until_interactive(page, f"button:^Go with {['two', 'three'][r % 2]}$",
                                                           started))
            for name, (path, what) in PAGES.items():
                deployment = deck.deployments.snapshot().find(DEPLOYMENT)
                if name == "Test" and deployment is not None:
                    deck.results.forget(deployment)  # the heatmap is absent until the click below
                times[name].append(load(page, base, path, what))
                if name == "Test":
                    button = _locator(page, "button:^Score the whole test set")
                    started = time.monotonic()
                    button.click()
                    times["score"].append(until_interactive(page, "testid:stVegaLiteChart", started))
                    kind = kinds[1 + r % (len(kinds) - 1)]
                    started = choose_option(page, "Perturbation", kind)
                    times["kind"].append(until_interactive(page, f"button:^Robustness curve: {re.escape(kind.lower())}",
                                                           started))
            # Deploy through the form, to "Test it"
            name = f"bench-pages-form-{label}-{r}"
            load(page, base, "/deploy?model=sklearn_mnist&version=1", PAGES["Deploy"][1])
            field = page.get_by_test_id("stMain").get_by_role("textbox", name="Deployment name")
            field.fill(name)
            field.press("Tab")
            started = time.monotonic()
            page.get_by_test_id("stFormSubmitButton").first.click()
            times["deploy"].append(until_interactive(page, "text:^Test it$", started, timeout_s=300))
            deck.deployments.delete(name)
        browser.close()
    return times


def backend_baselines(deck: Any, rounds: int, label: str) -> dict[str, list[float]]:
    from backend.inspection.runs import score_and_keep

    data = deck_testset(deck)
    found: dict[str, list[float]] = {"score (backend)": [], "deploy (backend)": []}
    model = deck.registry.get("sklearn_mnist", 1)
    for r in range(rounds):
        deployment = deck.deployments.snapshot().find(DEPLOYMENT)
        started = time.monotonic()
        score_and_keep(deck, deployment, data, source="benchmark")
        found["score (backend)"].append(time.monotonic() - started)
        name = f"bench-pages-api-{label}-{r}"
        started = time.monotonic()
        deck.deployments.deploy_and_wait(model, name, timeout=300)
        found["deploy (backend)"].append(time.monotonic() - started)
        deck.deployments.delete(name)
    return found


def deck_testset(deck: Any) -> Any:
    from backend.datasets import load_dataset

    return load_dataset("mnist", None, deck.settings.datasets_dir)


def report(phases: dict[str, dict[str, list[float]]]) -> str:
    rows = [("Models page", "Models", "floor page"), ("Deploy page", "Deploy", "floor page"),
            ("Test page", "Test", "floor page"), ("Compare page", "Compare", "floor page"),
            ("whole-set score to heatmap", "score", "score (backend)"),
            ("a robustness kind chosen", "kind", "floor select"),
            ("Deploy to \"Test it\"", "deploy", "deploy (backend)")]
    lines = ["| what | " + " | ".join(f"{p} median (min–max) | {p} baseline | ratio" for p in phases) + " |",
             "|---|" + "---|---|---|" * len(phases)]
    for title, key, base in rows:
        cells = []
        for times in phases.values():
            s, b = summary(times[key]), summary(times[base])
            cells.append(f"{s['median']:.2f} s ({s['min']:.2f}–{s['max']:.2f}) | {b['median']:.2f} s ({base}) | "
                         f"{s['median'] / b['median']:.2f}x")
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quiet-only", action="store_true", help="skip the phase under a load test")
    args = parser.parse_args()
    print(machine())
    deck = scratch_deck("docker")  # sklearn_mnist:1; :2 (the SVC) too, as after a first run
    from backend.runtimes import DeployConfig
    from backend.training import train_sample

    train_sample(deck.registry, "mnist", "svc")

    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), DEPLOYMENT, DeployConfig(cpu_cores=1),
                                     timeout=600)
    env = {"MODELDECK_HOME": str(deck.settings.home), "MODELDECK_RUNTIME": "docker", "MODELDECK_AUTO_TRAIN": "0"}
    port, floor_port = free_port(), free_port()
    app = streamlit_server(ROOT / "dashboard" / "app.py", env, port)
    floor = streamlit_server(ROOT / "benchmarks" / "floor_page.py", env, floor_port)
    phases: dict[str, dict[str, list[float]]] = {}
    load_test: subprocess.Popen | None = None
    try:
        for label in ("quiet",) if args.quiet_only else ("quiet", "loaded"):
            if label == "loaded":
                load_test = subprocess.Popen(
                    [sys.executable, "-m", "backend", "loadtest", DEPLOYMENT, "--seconds", "300", "--concurrency", "8"],
                    env={**__import__("os").environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL)
                time.sleep(2)
            times = measure(f"http://127.0.0.1:{port}", f"http://127.0.0.1:{floor_port}", deck, args.rounds, label)
            times.update(backend_baselines(deck, args.rounds, label))
            phases[label] = times
            if load_test is not None:
                load_test.terminate()
                load_test.wait(timeout=30)
                load_test = None
            for key, values in times.items():
                s = summary(values)
                print(f"{label:6} {key:18} median {s['median']:.2f} s  min {s['min']:.2f}  max {s['max']:.2f}  "
                      f"n={s['n']}", flush=True)
    finally:
        if load_test is not None:
            load_test.terminate()
        for proc in (app, floor):
            proc.terminate()
            proc.wait(timeout=20)
        deck.deployments.delete(DEPLOYMENT)
    print()
    print(report(phases))


if __name__ == "__main__":
    main()
