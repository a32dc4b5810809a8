"""A table model explored in a real headless Chromium (Debian's, driven by Playwright) against `streamlit run`: the
breast-cancer sample on the local runtime; random rows as a table, a confusion cell opening exactly its rows, a
what-if edit with the prediction, the curve and the explanation following, the nearest row of another class."""

import re

import numpy as np
import pytest

from backend.config import Settings
from backend.context import open_modeldeck
from backend.data.builtin import load_breast_cancer_test
from backend.registry import ModelRegistry
from backend.services.cases import book
from backend.services.whatif import start_row
from backend.training import train_sample

from .test_browser_e2e import ARTIFACTS, IDLE_JS, launch, start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser


def test_a_tester_explores_a_table_model_rows_a_confusion_cell_and_a_what_if(tmp_path):
    from playwright.sync_api import expect, sync_playwright

    settings = Settings(home=tmp_path / "home", runtime="local")
    model = train_sample(ModelRegistry(settings.registry_path, settings.blobs_dir), "breast-cancer", "logistic")
    deck = open_modeldeck(settings)
    deck.deployments.deploy_and_wait(model, "rows", timeout=180)
    proc, url = start_dashboard(settings.home, "local", tmp_path / "streamlit.log")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/test?deployment=rows&dataset=breast-cancer")
            main = page.get_by_test_id("stMain")
            main.get_by_role("button", name="Send 30 random test rows").click()
            rows = main.get_by_test_id("stDataFrame").first
            expect(rows).to_be_visible(timeout=60_000)
            expect(main.get_by_text("of 30 correct")).to_be_visible()

            main.get_by_role("button", name="Score the whole test set (143 rows)").click()
            expect(main.get_by_test_id("stMetric").filter(has_text="Accuracy")).to_contain_text("95.80%",
                                                                                                timeout=60_000)
            chart = main.get_by_test_id("stVegaLiteChart").first
            cell = main.get_by_text(re.compile(r"rows? with true label"))
            for _ in range(3):  # a click can land while vega still draws: clicked again then
                page.wait_for_function(IDLE_JS, timeout=60_000, polling=50)
                chart.scroll_into_view_if_needed()
                page.wait_for_timeout(1000)
                box = chart.bounding_box()
                # the matrix's top-right cell: true malignant, predicted benign (the matrix fills the left of the chart)
                page.mouse.click(box["x"] + box["width"] * 0.55, box["y"] + box["height"] * 0.3)
                try:
                    expect(cell).to_be_visible(timeout=20_000)
                    break
                except AssertionError:
                    continue
            expect(cell).to_be_visible(timeout=10_000)
            errors = deck.results.load_evaluation(deck.deployments.get("rows"), "breast-cancer")
            opened = cell.inner_text()
            true, predicted = (0, 1) if "true label malignant and predicted benign" in opened else (1, 0)
            found = len(errors.cell(true, predicted))
            assert opened.startswith(f"{found:,} row{'' if found == 1 else 's'} with true label")
            cell.scroll_into_view_if_needed()
            page.wait_for_timeout(1000)
            page.screenshot(path=str(ARTIFACTS / "test-page-table-cell.png"))

            slider = main.get_by_role("slider", name="worst texture")
            slider.scroll_into_view_if_needed()
            slider.focus()
            slider.press("PageDown")  # a tenth of the range down
            expect(main.get_by_text("1 of 30 columns changed from the median row")).to_be_visible(timeout=30_000)
            expect(main.get_by_text("How the answer moves with")).to_be_visible()
            expect(main.get_by_role("combobox", name="How the answer moves with")).to_have_value(
                "worst texture")  # the curve follows the column just edited
            # the edited row flagged as a case, exactly as scored
            main.get_by_role("button", name="Flag as a case", exact=True).click()
            popover = page.get_by_test_id("stPopoverBody")
            expect(popover).to_be_visible()
            popover.get_by_label("Note").fill("texture lowered")
            popover.get_by_label("Note").press("Enter")
            page.wait_for_function(IDLE_JS, timeout=60_000, polling=50)
            popover.get_by_role("button", name="Flag", exact=True).click()
            expect(main.get_by_text("1 flagged case of this form")).to_be_visible(timeout=30_000)
            (case,) = book(deck).cases()
            data = load_breast_cancer_test()
            texture = data.feature_names.index("worst texture")
            median = start_row(data, None)
            assert case.source.origin == "what-if" and case.note == "texture lowered"
            assert case.row[texture] < median[texture] and np.delete(case.row, texture) == pytest.approx(
                np.delete(median, texture), rel=1e-3)  # the one column edited, the others as the median row's
            main.get_by_text("Explain this prediction").click()
            expect(main.get_by_text("the bars add up to the difference")).to_be_visible(timeout=30_000)
            main.get_by_text("Show the nearest test row").click()
            edit = main.get_by_role("button", name="Edit row")
            expect(edit).to_be_visible(timeout=30_000)
            nearest = edit.inner_text().rsplit(" ", 1)[1]
            edit.click()
            expect(main.get_by_text(f"As row {nearest} (true label")).to_be_visible(timeout=30_000)
            expect(page).to_have_url(re.compile(f"whatif={nearest}(&|$)"))  # a reload opens the same row
            main.get_by_text("What if", exact=True).scroll_into_view_if_needed()
            page.screenshot(path=str(ARTIFACTS / "test-page-what-if.png"))
            browser.close()
    finally:
        stop_dashboard(proc)
        deck.deployments.delete("rows")
