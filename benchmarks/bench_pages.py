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

Run: .venv/bin/python -m benchmarks.bench_pages [--rounds 3] [--quiet-only] [--before DIR]
(before and after in one run: `git archive main | tar -x -C DIR`, then `--before DIR`)
"""

from __future__ import annotations

import argparse
import os
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
    page.get_by_role("option", name=option, exact=True).wait_for(state="visible")  # filtered down to it
    started = time.monotonic()
    select.press("Enter")
    return started


KEYS = (*PAGES, "floor page", "score", "kind", "floor select", "deploy")


def attempt(times: dict[str, list[float]], key: str, page: Any, action: Any) -> None:
    """Records `action()`'s seconds under `key`; a step that times out is reported and left out."""
    try:
        times[key].append(action())
    except Exception as e:  # Playwright's TimeoutError and Error: one lost sample, not the whole run
        print(f"  {key}: failed ({type(e).__name__}: {str(e).splitlines()[0]})", flush=True)
        page.goto("about:blank")


def warm(page: Any, base: str, floor: str) -> None:
    for path, what in PAGES.values():  # each page served once
        load(page, base, path, what)
    load(page, floor, "/", "button:^Go with")


def one_round(page: Any, base: str, floor: str, deck: Any, r: int, label: str,
              times: dict[str, list[float]]) -> None:
    """One round of every measurement against the dashboard at `base` (and the floor page at `floor`)."""
    from backend.inspection.perturb import KINDS

    kinds = [KINDS[k].label for k in KINDS]
    choice = ["two", "three"][r % 2]
    attempt(times, "floor page", page, lambda: load(page, floor, "/", "button:^Go with"))
    attempt(times, "floor select", page, lambda: until_interactive(
        page, f"button:^Go with {choice}$", choose_option(page, "Kind", choice)))
    for name, (path, what) in PAGES.items():
        deployment = deck.deployments.snapshot().find(DEPLOYMENT)
        if name == "Test" and deployment is not None:
            deck.results.forget(deployment)  # the heatmap is absent until the click below
        attempt(times, name, page, lambda path=path, what=what: load(page, base, path, what))
        if name == "Test":
            def score() -> float:
                button = _locator(page, "button:^Score the whole test set")
                started = time.monotonic()
                button.click()
                return until_interactive(page, "testid:stVegaLiteChart", started)

            attempt(times, "score", page, score)
            kind = kinds[1 + r % (len(kinds) - 1)]
            attempt(times, "kind", page, lambda kind=kind: until_interactive(
                page, f"button:^Robustness curve: {re.escape(kind.lower())}", choose_option(page, "Perturbation", kind)))
    name = f"bench-pages-form-{label}-{r}-{abs(hash(base)) % 1000}"

    def deploy() -> float:  # through the form, to "Test it"
        load(page, base, "/deploy?model=sklearn_mnist&version=1", PAGES["Deploy"][1])
        field = page.get_by_test_id("stMain").get_by_role("textbox", name="Deployment name")
        field.fill(name)
        field.press("Tab")
        started = time.monotonic()
        page.get_by_test_id("stFormSubmitButton").first.click()
        return until_interactive(page, "text:^Test it$", started, timeout_s=300)

    attempt(times, "deploy", page, deploy)
    try:
        deck.deployments.delete(name)
    except Exception:  # never made (the step failed before Deploy)
        pass


def measure(bases: dict[str, str], floor: str, deck: Any, rounds: int, label: str) -> dict[str, dict[str, list[float]]]:
    """`rounds` rounds against each dashboard in `bases` (name -> URL), taking turns round by round."""
    from playwright.sync_api import sync_playwright

    times: dict[str, dict[str, list[float]]] = {app: {k: [] for k in KEYS} for app in bases}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        pages = {app: browser.new_page(viewport={"width": 1400, "height": 1000}) for app in bases}
        for app, base in bases.items():
            warm(pages[app], base, floor)
        for r in range(rounds):
            for app, base in bases.items():
                one_round(pages[app], base, floor, deck, r, label, times[app])
        browser.close()
    return times


def backend_baselines(deck: Any, rounds: int, label: str) -> dict[str, list[float]]:
    from backend.services.scoring import score_and_keep

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
    from backend.data.catalogue import load_dataset

    return load_dataset("mnist", None, deck.settings.datasets_dir)


ROWS = [("Models page", "Models", "floor page"), ("Deploy page", "Deploy", "floor page"),
        ("Test page", "Test", "floor page"), ("Compare page", "Compare", "floor page"),
        ("whole-set score to heatmap", "score", "score (backend)"),
        ("a robustness kind chosen", "kind", "floor select"),
        ("Deploy to \"Test it\"", "deploy", "deploy (backend)")]


Phases = dict[str, dict[str, dict[str, list[float]]]]  # phase -> dashboard (or "baselines") -> what -> seconds


HEADING = "### Pages to interactive, clicks to their result (headless Chromium)"


def _median(values: list[float]) -> float:
    return summary(values)["median"] if values else float("nan")


def report(phases: Phases) -> str:
    """A table per phase: each dashboard's medians (min–max), its ratio to the same-run baseline and, with
    a before, after/before."""
    lines = [HEADING, "", "Headless Chromium against `streamlit run` and a Docker deployment of sklearn_mnist:1 "
             "(`benchmarks.bench_pages`): each page's load to interactive and each heavy click to its result, "
             "against a bare Streamlit page and the backend's own time measured in the same run."]
    for label, apps in phases.items():
        names = [n for n in apps if n != "baselines"]
        base = {**apps["baselines"], **{k: [v for n in names for v in apps[n][k]] for k in ("floor page", "floor select")}}
        lines += ["", f"**{label}**", "",
                  "| what | " + " | ".join(f"{n} median (min–max, n)" for n in names) + " | baseline (same run) | "
                  + " | ".join(f"{n} / baseline" for n in names)
                  + (" | after / before |" if "before" in names and "after" in names else " |"),
                  "|---|" + "---|" * (2 * len(names) + 1) + ("---|" if "before" in names and "after" in names else "")]
        for title, key, base_key in ROWS:
            b = _median(base[base_key])
            cells = []
            for n in names:
                v = apps[n][key]
                cells.append(f"{_median(v):.2f} s ({min(v):.2f}–{max(v):.2f}, {len(v)})" if v else "failed")
            ratios = [f"{_median(apps[n][key]) / b:.2f}x" if apps[n][key] else "–" for n in names]
            row = f"| {title} | " + " | ".join(cells) + f" | {b:.2f} s ({base_key}) | " + " | ".join(ratios)
            if "before" in names and "after" in names:
                before, after = apps["before"][key], apps["after"][key]
                row += f" | {_median(after) / _median(before):.2f}x" if before and after else " | –"
            lines.append(row + " |")
    return "\n".join(lines)


def run(rounds: int = 3, quiet_only: bool = False, before: Path | None = None) -> Phases:
    """Both phases (quiet, then under a load test; or quiet only), each dashboard's times and the baselines."""
    print(machine())
    deck = scratch_deck("docker")  # sklearn_mnist:1; :2 (the SVC) too, as after a first run
    from backend.runtimes import DeployConfig
    from backend.training import train_sample

    train_sample(deck.registry, "mnist", "svc")
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), DEPLOYMENT, DeployConfig(cpu_cores=1),
                                     timeout=600)
    env = {"MODELDECK_HOME": str(deck.settings.home), "MODELDECK_RUNTIME": "docker", "MODELDECK_AUTO_TRAIN": "0"}
    roots = {"before": before, "after": ROOT} if before else {"this": ROOT}
    servers, bases = [], {}
    phases: Phases = {}
    load_test: subprocess.Popen | None = None
    try:
        for app, root in roots.items():
            port = free_port()
            servers.append(streamlit_server(root / "dashboard" / "app.py", {**env, "PYTHONPATH": str(root)}, port,
                                            cwd=root))
            bases[app] = f"http://127.0.0.1:{port}"
            print(f"{app}: the dashboard of {root}", flush=True)
        floor_port = free_port()
        servers.append(streamlit_server(ROOT / "benchmarks" / "floor_page.py", env, floor_port))
        for label in ("quiet",) if quiet_only else ("quiet", "loaded"):
            if label == "loaded":
                load_test = subprocess.Popen(
                    [sys.executable, "-m", "backend", "loadtest", DEPLOYMENT, "--seconds", "300", "--concurrency", "8"],
                    env={**os.environ, **env}, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                time.sleep(2)
            apps: dict[str, dict[str, list[float]]] = dict(
                measure(bases, f"http://127.0.0.1:{floor_port}", deck, rounds, label))
            if load_test is not None and load_test.poll() is not None:
                print("  note: the load test ended before this phase did", flush=True)
            apps["baselines"] = backend_baselines(deck, rounds, label)
            phases[label] = apps
            if load_test is not None:
                load_test.terminate()
                load_test.wait(timeout=30)
                load_test = None
            for app, times in apps.items():
                for key, values in times.items():
                    if values:
                        s = summary(values)
                        print(f"{label:6} {app:9} {key:18} median {s['median']:.2f} s  min {s['min']:.2f}  "
                              f"max {s['max']:.2f}  n={s['n']}", flush=True)
    finally:
        if load_test is not None:
            load_test.terminate()
        for proc in servers:
            proc.terminate()
            proc.wait(timeout=20)
        deck.deployments.delete(DEPLOYMENT)
    return phases


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quiet-only", action="store_true", help="skip the phase under a load test")
    parser.add_argument("--before", type=Path, default=None,
                        help="also serve the dashboard of this checkout (say, `git archive main` unpacked) and take "
                             "turns with this one, round by round")
    args = parser.parse_args()
    print(report(run(args.rounds, args.quiet_only, args.before)))


if __name__ == "__main__":
    main()
