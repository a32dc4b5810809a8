"""Where a dashboard rerun spends its time: cProfile around each script run (Streamlit's own
`exec_func_with_error_handling`, in the script thread) while AppTest opens every page and makes the
clicks of bench_pages, against a Docker deployment in a scratch home. Prints the top functions by
cumulative time per step; `--out DIR` keeps the .pstats files (open with `python -m pstats`).

Run: .venv/bin/python -m benchmarks.profile_pages [--top 25] [--out DIR]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import time
from pathlib import Path
from typing import Any

from .common import scratch_deck

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENT = "bench-profile"


class ScriptProfiler:
    """Profiles every script run (whole page or fragment) while installed."""

    def __init__(self) -> None:
        self.profile = cProfile.Profile()

    def install(self) -> None:
        from streamlit.runtime.scriptrunner import script_runner

        original = script_runner.exec_func_with_error_handling

        def profiled(func: Any, ctx: Any) -> Any:
            self.profile.enable()
            try:
                return original(func, ctx)
            finally:
                self.profile.disable()

        script_runner.exec_func_with_error_handling = profiled

    def take(self) -> cProfile.Profile:
        taken, self.profile = self.profile, cProfile.Profile()
        return taken


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    from streamlit.testing.v1 import AppTest

    from backend.runtimes import DeployConfig
    from backend.training import train_sample
    from dashboard import common

    deck = scratch_deck("docker")
    train_sample(deck.registry, "mnist", "svc")
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), DEPLOYMENT, DeployConfig(cpu_cores=1))
    os.environ.update(MODELDECK_HOME=str(deck.settings.home), MODELDECK_RUNTIME="docker", MODELDECK_AUTO_TRAIN="0")
    common._open.clear()
    profiler = ScriptProfiler()
    profiler.install()
    steps: list[tuple[str, float, cProfile.Profile]] = []

    def step(name: str, action: Any) -> None:
        profiler.take()
        started = time.perf_counter()
        action()
        steps.append((name, time.perf_counter() - started, profiler.take()))

    try:
        at = AppTest.from_file(str(ROOT / "dashboard" / "app.py"), default_timeout=300)
        at.run()
        for page in ("models", "deploy", "test", "compare"):  # warm: each page once
            at.switch_page(f"views/{page}.py").run()
        for page in ("models", "deploy", "test", "compare"):
            step(f"{page} page", lambda page=page: at.switch_page(f"views/{page}.py").run())
        at.switch_page("views/test.py").run()
        step("whole-set score", lambda: next(b for b in at.button if b.label.startswith("Score the whole"))
             .click().run())
        step("robustness kind", lambda: next(s for s in at.selectbox if s.key == "curve_kind").set_value("blur").run())
        assert not at.exception, at.exception
    finally:
        common._open.clear()
        deck.deployments.delete(DEPLOYMENT)
    for name, seconds, profile in steps:
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out)
        stats.sort_stats("cumulative").print_stats(args.top)
        print(f"===== {name}: {seconds:.2f} s (AppTest) =====")
        print("\n".join(out.getvalue().splitlines()[4:]))
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            stats.dump_stats(args.out / f"{name.replace(' ', '-')}.pstats")


if __name__ == "__main__":
    main()
