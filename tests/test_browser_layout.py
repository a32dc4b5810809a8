"""Layouts that survive a projector: every page (Models, Deploy, Test with a whole-set score, Compare
with a comparison) at 1024x768 and 1400x900, normal and presentation mode, in a real headless Chromium
(Debian's, via Playwright) against one `streamlit run` on the local runtime. Each combination is
screenshotted to artifacts/layout/ (look at them) and checked: no metric value or button label cut, no
chart drawn over a table or an image, nothing wider than the main column."""

from __future__ import annotations

import time

import pytest

from backend.config import Settings
from backend.training import train_sample

from .conftest import copy_home
from .test_browser_e2e import ARTIFACTS, launch, start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser

LAYOUT_ARTIFACTS = ARTIFACTS / "layout"
SIZES = ((1024, 768), (1400, 900))
PAGES = {  # page -> (address, text that shows the page is drawn)
    "models": ("/models", "Models"),
    "deploy": ("/deploy?deployment=layout-v2", "Deployments"),
    "test": ("/test?deployment=layout-v2&dataset=mnist", "Normalised confusion matrix: rows normalised"),
    "compare": ("/compare?a=layout-v1&b=layout-v2&dataset=mnist", "is better by"),
}

# Returns what is wrong with the layout of the main column, as sentences (an empty list: nothing).
LAYOUT_PROBLEMS_JS = r"""
() => {
  const problems = [];
  const main = document.querySelector('[data-testid="stMain"]');
  const block = main.querySelector('[data-testid="stMainBlockContainer"]') || main;
  // the content of a closed expander keeps its size but is not drawn
  const visible = e => { const r = e.getBoundingClientRect(); return r.width > 0 && r.height > 0
                         && getComputedStyle(e).visibility !== 'hidden' && !e.closest('details:not([open])'); };
  const say = e => (e.innerText || e.getAttribute('aria-label') || e.tagName).trim().replace(/\s+/g, ' ').slice(0, 60);
  // Cut: an element that clips its overflow is narrower than its content, or the text itself runs out of `box`
  const clipped = e => [e, ...e.querySelectorAll('*')].some(n => n.scrollWidth > n.clientWidth + 1
      && getComputedStyle(n).overflowX !== 'visible');
  const runsOut = (e, box) => { const range = document.createRange(); range.selectNodeContents(e);
    const t = range.getBoundingClientRect(), b = box.getBoundingClientRect();
    return t.width > 0 && (t.right > b.right + 1 || t.left < b.left - 1); };
  for (const value of main.querySelectorAll('[data-testid="stMetricValue"]')) {
    if (!visible(value)) continue;
    const column = value.closest('[data-testid="stColumn"]') || block;
    if (clipped(value) || runsOut(value, value) || runsOut(value, column)) problems.push(`metric value cut: "${say(value)}"`);
  }
  for (const button of main.querySelectorAll('button')) {
    if (!visible(button) || button.closest('[data-testid="stVegaLiteChart"], [data-testid="stDataFrame"]')) continue;
    if (clipped(button) || runsOut(button, button)) problems.push(`button label cut: "${say(button)}"`);
    const column = button.closest('[data-testid="stColumn"]') || block;
    const b = button.getBoundingClientRect(), c = column.getBoundingClientRect();
    if (b.right > c.right + 1 || b.left < c.left - 1) problems.push(`button wider than its column: "${say(button)}"`);
  }
  // What is drawn: a chart's canvas or svg (it can be wider than its element), tables, images, metrics.
  const drawn = [];
  for (const chart of main.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
    const canvas = chart.querySelector('canvas, svg.marks');
    if (canvas && visible(canvas)) drawn.push(['chart', canvas, say(chart.closest('[data-testid="stElementContainer"]')
                                                                    || chart)]);
  }
  for (const [kind, selector] of [['table', '[data-testid="stDataFrame"]'], ['table', '[data-testid="stTable"]'],
                                  ['image', '[data-testid="stImage"] img'], ['metric', '[data-testid="stMetric"]']]) {
    for (const e of main.querySelectorAll(selector)) if (visible(e)) drawn.push([kind, e, say(e)]);
  }
  const blockBox = block.getBoundingClientRect();
  const style = getComputedStyle(block);
  const inner = {left: blockBox.left + parseFloat(style.paddingLeft) - 1,
                 right: blockBox.right - parseFloat(style.paddingRight) + 1};
  for (const [kind, e, text] of drawn) {
    const r = e.getBoundingClientRect();
    if (r.right > inner.right || r.left < inner.left) {
      problems.push(`${kind} wider than the main column (${Math.round(r.left)}-${Math.round(r.right)} in `
                    + `${Math.round(inner.left)}-${Math.round(inner.right)}): "${text}"`);
    }
    const holder = e.closest('[data-testid="stVegaLiteChart"], [data-testid="stElementContainer"]');
    if (kind === 'chart' && holder) {
      const h = holder.getBoundingClientRect();
      if (r.right > h.right + 1) problems.push(`chart wider than its place (${Math.round(r.width)} > `
                                              + `${Math.round(h.width)} px): "${text}"`);
    }
  }
  for (let i = 0; i < drawn.length; i++) {
    for (let j = i + 1; j < drawn.length; j++) {
      const [ka, a, ta] = drawn[i], [kb, b, tb] = drawn[j];
      if (a.contains(b) || b.contains(a)) continue;
      const p = a.getBoundingClientRect(), q = b.getBoundingClientRect();
      const w = Math.min(p.right, q.right) - Math.max(p.left, q.left);
      const h = Math.min(p.bottom, q.bottom) - Math.max(p.top, q.top);
      if (w > 2 && h > 2) problems.push(`${ka} "${ta}" overlaps ${kb} "${tb}" (${Math.round(w)}x${Math.round(h)} px)`);
    }
  }
  for (const e of [main, block]) {
    if (e.scrollWidth > e.clientWidth + 1) problems.push(`the main column scrolls sideways (${e.scrollWidth} > ${e.clientWidth} px)`);
  }
  return problems;
}
"""


@pytest.fixture(scope="module")
def deployed_home(trained_home, tmp_path_factory):
    """A home with sklearn_mnist:1 and :2 deployed on the local runtime (layout-v1, layout-v2), both scored on
    MNIST (so the Test page has a whole-set score and Compare a comparison) and 30 random images sent to v2."""
    from backend.context import open_modeldeck
    from backend.datasets import load_dataset
    from backend.inspection.evaluation import sample
    from backend.inspection.runs import compare_deployments

    home = copy_home(trained_home, tmp_path_factory.mktemp("layout") / "home")
    deck = open_modeldeck(Settings(home=home, runtime="local"))
    train_sample(deck.registry, algorithm="svc")  # sklearn_mnist:2, as a first run registers it
    v1 = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "layout-v1", timeout=180)
    v2 = deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 2), "layout-v2", timeout=180)
    try:
        mnist = load_dataset("mnist", None, deck.settings.datasets_dir)
        compare_deployments(deck, v1, v2, mnist, source="layout test")
        deck.results.save_samples(v2, "mnist", sample(deck.client, v2.scoring_uri or "", mnist, 30, seed=0))
        yield home
    finally:
        for deployment in deck.deployments.list():
            deck.deployments.delete(deployment.name)


SETTLED_JS = """() => document.querySelector('.stApp')?.getAttribute('data-test-script-state') === 'notRunning'
    && !document.querySelector('[data-testid="stSkeleton"]')"""


def _settle(page, main, ready_text: str) -> None:
    """Waits until the page is drawn: its text, the script's run finished, no placeholder left (Streamlit loads
    widgets lazily: they stand as skeletons for seconds on a busy machine), and vega's charts drawn."""
    from playwright.sync_api import expect

    expect(main.get_by_text(ready_text, exact=False).first).to_be_visible(timeout=60_000)
    page.wait_for_function(SETTLED_JS, timeout=60_000, polling=200)
    page.wait_for_timeout(1000)  # vega draws after its element appears
    page.wait_for_function(SETTLED_JS, timeout=60_000, polling=200)


def test_every_page_fits_a_projector_and_a_laptop_in_both_modes(deployed_home, tmp_path):
    from playwright.sync_api import sync_playwright

    LAYOUT_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc, url = start_dashboard(deployed_home, "local", tmp_path / "streamlit.log")
    found: dict[str, list[str]] = {}
    started = time.monotonic()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": SIZES[0][0], "height": SIZES[0][1]})
            main = page.get_by_test_id("stMain")

            def check_at_each_size(shot: str) -> None:
                """Checks and screenshots the page as it is at each size (a resize redraws without a rerun)."""
                for width, height in SIZES:
                    page.set_viewport_size({"width": width, "height": height})
                    page.wait_for_timeout(600)  # columns and vega's charts follow the new width
                    page.wait_for_function(SETTLED_JS, timeout=60_000, polling=200)
                    sized = shot.replace("@", f"{width}x{height}")
                    found[sized] = page.evaluate(LAYOUT_PROBLEMS_JS)
                    page.screenshot(path=str(LAYOUT_ARTIFACTS / f"{sized}.png"))  # what the viewer sees first
                    # the whole page: Streamlit scrolls inside its main block, so the window grows instead
                    tall = page.evaluate("() => document.querySelector('[data-testid=\"stMain\"]').scrollHeight")
                    page.set_viewport_size({"width": width, "height": max(height, min(int(tall), 6000))})
                    page.wait_for_timeout(300)
                    page.screenshot(path=str(LAYOUT_ARTIFACTS / f"{sized}-whole.png"))

            for present in (False, True):
                mode = "present" if present else "normal"
                for name, (address, ready_text) in PAGES.items():
                    page.set_viewport_size({"width": SIZES[0][0], "height": SIZES[0][1]})
                    page.goto(url + address + ("&" if "?" in address else "?") + f"present={int(present)}")
                    _settle(page, main, ready_text)
                    check_at_each_size(f"{name}-@-{mode}")
                    if name == "compare":  # the difference heatmap, in the second tab
                        main.get_by_role("tab", name="What changed").click()
                        _settle(page, main, "Largest changes")
                        check_at_each_size(f"{name}-@-{mode}-changed")
            browser.close()
        print(f"\nlayouts: {len(found)} checked in {time.monotonic() - started:.0f} s")
    finally:
        stop_dashboard(proc)
    problems = {shot: issues for shot, issues in found.items() if issues}
    assert not problems, "\n".join(f"{shot}: {issue}" for shot, issues in problems.items() for issue in issues)
    assert len(found) == (len(PAGES) + 1) * len(SIZES) * 2
