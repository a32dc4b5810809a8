"""How fast the Test page answers an exploratory tester, in headless Chromium (Debian's, via Playwright)
against `streamlit run` and a local deployment: a click on a cell of the confusion matrix to that
cell's gallery, and the end of a stroke on the drawing pad to its prediction. The baseline in the same
run: a full reload of the page to its rendered matrix (what every click cost before the page's parts
reran alone).

Run: .venv/bin/python -m benchmarks.bench_explore [--rounds 5]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .common import CHROMIUM_ARGS, fmt, free_port, machine, scratch_deck, streamlit_server, summary

ROOT = Path(__file__).resolve().parent.parent


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    from playwright.sync_api import expect, sync_playwright

    print(machine())
    deck = scratch_deck("local")
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "bench-explore", timeout=180)
    port = free_port()
    proc = streamlit_server(ROOT / "dashboard" / "app.py",
                            {"MODELDECK_HOME": str(deck.settings.home), "MODELDECK_RUNTIME": "local"}, port)
    cell, stroke, reload = [], [], []
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/test?deployment=bench-explore&dataset=mnist")
            main = page.get_by_test_id("stMain")
            main.get_by_role("button", name="Score the whole test set (10,000 images)").click()
            chart = main.get_by_test_id("stVegaLiteChart").first
            expect(chart).to_be_visible(timeout=120_000)
            for k in range(args.rounds):
                started = time.monotonic()
                page.reload()
                expect(main.get_by_test_id("stVegaLiteChart").first).to_be_visible(timeout=60_000)
                reload.append(time.monotonic() - started)
                chart = main.get_by_test_id("stVegaLiteChart").first
                chart.scroll_into_view_if_needed()
                page.wait_for_timeout(800)  # vega draws after the element appears
                box = chart.bounding_box()
                assert box is not None
                started = time.monotonic()  # a different cell each round: no picture is cached yet
                page.mouse.click(box["x"] + box["width"] * (0.30 + 0.05 * k), box["y"] + box["height"] * 0.40)
                expect(main.get_by_text("images with true label")).to_be_visible(timeout=30_000)
                cell.append(time.monotonic() - started)
                pad = page.locator("canvas[aria-label='drawing pad']")
                pad.scroll_into_view_if_needed()
                area = pad.bounding_box()
                assert area is not None
                x = area["x"] + area["width"] * 0.5
                started = time.monotonic()
                page.mouse.move(x, area["y"] + area["height"] * 0.2)
                page.mouse.down()
                for step in range(1, 11):
                    page.mouse.move(x, area["y"] + area["height"] * (0.2 + step * 0.06))
                page.mouse.up()
                expect(main.get_by_test_id("stMetric").filter(has_text="Prediction")).to_be_visible(timeout=30_000)
                stroke.append(time.monotonic() - started)
                page.get_by_role("button", name="Clear").click()
                expect(main.get_by_text("Draw on the pad or upload an image")).to_be_visible(timeout=30_000)
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=20)
        deck.deployments.delete("bench-explore")
    print(f"click on a confusion cell to its gallery:  {fmt(summary(cell))}")
    print(f"end of a stroke to its prediction:         {fmt(summary(stroke))}")
    print(f"baseline, a full page reload to the matrix: {fmt(summary(reload))}")
    print(f"a cell click takes {summary(cell)['median'] / summary(reload)['median']:.2f}x a reload; "
          f"a stroke {summary(stroke)['median'] / summary(reload)['median']:.2f}x")


if __name__ == "__main__":
    main()
