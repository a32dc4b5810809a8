"""The dashboard's "Score the whole test set" click to the rendered heatmap, under Streamlit's AppTest,
against a Docker deployment: scoring over the fastest path, evaluation and both figures included.
The baseline in the same run: the same click against a deployment of the tutorial's own score.py,
which takes JSON only (so the dashboard sends JSON, as the tutorial's client does).

Run: .venv/bin/python -m benchmarks.bench_dashboard [--rounds 5]
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from backend.runtimes import DeployConfig

from .common import bench_main, scratch_deck, summary

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "dashboard" / "app.py")
TUTORIAL = ROOT / "tests" / "fixtures" / "tutorial_score.py"


def _click_to_heatmap(at, label: str) -> float:
    button = next(b for b in at.button if b.label.startswith(label))
    started = time.perf_counter()
    button.click().run()
    seconds = time.perf_counter() - started
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any("Normalised confusion matrix" in caption for img in at.get("image") for caption in img.captions)
    return seconds


def run(rounds: int = 5) -> dict:
    from streamlit.testing.v1 import AppTest

    from dashboard import common

    deck = scratch_deck("docker")
    model = deck.registry.get("sklearn_mnist", 1)
    deck.deployments.deploy_and_wait(model, "bench-dashboard", DeployConfig(cpu_cores=1))
    deck.deployments.deploy_and_wait(model, "bench-dashboard-tutorial", DeployConfig(cpu_cores=1),
                                     entry_script=TUTORIAL)
    old_env = {k: os.environ.get(k) for k in ("MODELDECK_HOME", "MODELDECK_RUNTIME")}
    os.environ.update(MODELDECK_HOME=str(deck.settings.home), MODELDECK_RUNTIME="docker")
    common._open.clear()
    try:
        times: dict[str, list[float]] = {"bench-dashboard": [], "bench-dashboard-tutorial": []}
        at = AppTest.from_file(APP, default_timeout=300)
        at.run()
        at.switch_page("views/test.py").run()
        for _ in range(rounds):
            for name in times:
                next(s for s in at.selectbox if s.label == "Deployment").set_value(name).run()
                times[name].append(_click_to_heatmap(at, "Score the whole test set"))
    finally:
        for key, value in old_env.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        common._open.clear()
        for name in ("bench-dashboard", "bench-dashboard-tutorial"):
            deck.deployments.delete(name)
    return {"modeldeck": summary(times["bench-dashboard"]), "tutorial": summary(times["bench-dashboard-tutorial"])}


def report(results: dict) -> str:
    ours, tutorial = results["modeldeck"], results["tutorial"]
    return "\n".join([
        "### Dashboard: \"Score the whole test set\" to the rendered heatmap (AppTest, Docker deployments, 1 CPU)",
        "", "10,000 images scored, evaluated, heatmap and tables drawn; the two deployments alternate.", "",
        "| deployment | median | min | max | n |", "|---|---|---|---|---|",
        *(f"| {label} | {s['median']:.2f} s | {s['min']:.2f} s | {s['max']:.2f} s | {s['n']} |" for label, s in (
            ("ModelDeck's scoring script (binary .npy path)", ours),
            ("the tutorial's score.py (JSON only: json.loads + np.array)", tutorial))),
        "", f"ModelDeck's path is {tutorial['median'] / ours['median']:.1f}x faster."])


def main() -> None:
    bench_main(__doc__, run, report)


if __name__ == "__main__":
    main()
