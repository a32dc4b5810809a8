"""The stakeholder's questions in a real headless Chromium (Debian's, via Playwright) against `streamlit run`
on the local runtime: compare v1 (deployed) with v2 (deployed on the fly), click a cell of the
difference, download the report, and present it all in presentation mode. Makes the README screenshots
of the Compare page and of presentation mode (in artifacts/)."""

import base64
import re

import pytest

from backend.config import Settings

from .conftest import copy_home
from .test_browser_e2e import ARTIFACTS, launch, start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser


def test_compare_v1_with_v2_download_the_report_and_present_it(first_run_home, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from backend.context import open_modeldeck

    home = copy_home(first_run_home, tmp_path / "home")  # sklearn_mnist:1 and :2, as a first run registers them
    deck = open_modeldeck(Settings(home=home, runtime="local"))
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "mnist-v1", timeout=180)
    proc, url = start_dashboard(home, "local", tmp_path / "streamlit.log")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/compare?a=mnist-v1&b=sklearn_mnist:2&dataset=mnist")
            main = page.get_by_test_id("stMain")
            main.get_by_role("button", name="Compare on MNIST 10k (bundled) (deploys sklearn_mnist:2 first)").click()
            verdict = main.get_by_text("is better by")
            failed = main.get_by_text("Comparing failed", exact=True)  # the status box's label: fail at once, with why
            expect(verdict.or_(failed).first).to_be_visible(timeout=240_000)
            assert not failed.count(), main.get_by_role("alert").all_inner_texts()
            assert verdict.inner_text().startswith("sklearn-mnist-v2 (sklearn_mnist:2) is better by")
            assert "very unlikely to be chance" in verdict.inner_text()
            expect(main.get_by_role("combobox", name="B — the challenger")).to_have_value(
                "sklearn-mnist-v2 — sklearn_mnist:2 on local")
            assert "b=sklearn-mnist-v2" in page.url
            page.wait_for_timeout(1500)  # vega draws after the element appears
            page.screenshot(path=str(ARTIFACTS / "compare-page.png"))

            main.get_by_role("tab", name="What changed").click()
            chart = main.get_by_test_id("stVegaLiteChart").locator("visible=true")
            expect(chart).to_be_visible()
            chart.scroll_into_view_if_needed()
            page.wait_for_timeout(1000)  # vega draws after the element appears
            box = chart.bounding_box()
            cell = main.get_by_text(re.compile(r"True \S+ taken for \S+ by A or B: [\d,]+ images"))
            for fx, fy in ((0.3, 0.75), (0.7, 0.3), (0.5, 0.6), (0.85, 0.45)):  # off-diagonal cells of the square
                page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)
                try:
                    expect(cell).to_be_visible(timeout=5_000)
                    break
                except AssertionError:
                    continue
            expect(cell).to_be_visible(timeout=20_000)
            main.get_by_role("tab", name="Where they disagree").click()
            expect(main.get_by_text("B right, A wrong (")).to_be_visible()

            with page.expect_download(timeout=120_000) as download:
                main.get_by_role("button", name="Download report (HTML)").click()
            report = download.value.path().read_text(encoding="utf-8")
            assert "Compared: mnist-v1 (A) and sklearn-mnist-v2 (B)" in report
            images = re.findall(r'<img alt="[^"]*" src="([^"]+)"', report)
            assert len(images) >= 8 and all(src.startswith("data:image/png;base64,") for src in images)
            assert base64.b64decode(images[0].split(",", 1)[1])[:4] == b"\x89PNG"
            assert not re.search(r'(src|href)="(?!data:)', report)

            page.goto(url + "/compare?a=mnist-v1&b=sklearn-mnist-v2&dataset=mnist&present=1")  # a shared link
            expect(main.get_by_text("is better by")).to_be_visible(timeout=60_000)
            sidebar = page.get_by_test_id("stSidebar")
            expect(sidebar.get_by_role("switch", name="Presentation mode")).to_be_checked()
            expect(sidebar.get_by_text("Runtimes")).to_have_count(0)
            value = main.get_by_test_id("stMetricValue").first
            # the smallest type anywhere in the number (Streamlit nests it): a projector's size
            assert value.evaluate("e => Math.min(...[e, ...e.querySelectorAll('*')].map("
                                  "n => parseFloat(getComputedStyle(n).fontSize)))") >= 48
            page.wait_for_timeout(1500)
            page.screenshot(path=str(ARTIFACTS / "presentation-mode.png"))
            sidebar.get_by_role("link", name="Test").click()
            expect(main.get_by_role("heading", name="Test", exact=True)).to_be_visible(timeout=60_000)
            expect(main.get_by_role("heading", name="Request console")).to_have_count(0)
            assert "present=1" in page.url
            browser.close()
    finally:
        stop_dashboard(proc)
        for deployment in deck.deployments.list():
            deck.deployments.delete(deployment.name)
