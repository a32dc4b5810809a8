"""Layouts that survive a projector: every page (Models, Deploy, Test with a whole-set score, Compare
with a comparison and its "What changed" tab) at 1024x768 and 1400x900, normal and presentation mode, in a real
headless Chromium (Debian's, via Playwright) against one `streamlit run` on the local runtime. Each combination is
screenshotted to artifacts/layout/ (look at them: the first screen and the whole page) and checked: no metric
value, button label or other text cut (nor shortened with an ellipsis, nor a word broken over two lines), no table
whose columns run past its edge, no heatmap squashed out of square, no chart drawn over a table or an image,
nothing wider than the main column."""

from __future__ import annotations

import time

import pytest

from backend.config import Settings

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
  const inChartOrTable = e => e.closest('[data-testid="stVegaLiteChart"], [data-testid="stDataFrame"]');
  for (const value of main.querySelectorAll('[data-testid="stMetricValue"]')) {
    if (!visible(value)) continue;
    const column = value.closest('[data-testid="stColumn"]') || block;
    if (clipped(value) || runsOut(value, value) || runsOut(value, column)) problems.push(`metric value cut: "${say(value)}"`);
  }
  for (const button of main.querySelectorAll('button')) {
    if (!visible(button) || inChartOrTable(button)) continue;
    if (clipped(button) || runsOut(button, button)) problems.push(`button label cut: "${say(button)}"`);
    const column = button.closest('[data-testid="stColumn"]') || block;
    const b = button.getBoundingClientRect(), c = column.getBoundingClientRect();
    if (b.right > c.right + 1 || b.left < c.left - 1) problems.push(`button wider than its column: "${say(button)}"`);
  }
  // Any other text shortened with an ellipsis ("Other homes (read…", a select's value)
  for (const e of block.querySelectorAll('*')) {
    if (e.scrollWidth <= e.clientWidth + 1 || inChartOrTable(e)) continue;
    const style = getComputedStyle(e);
    if (style.textOverflow === 'ellipsis' && style.overflowX !== 'visible' && visible(e)) problems.push(`text cut: "${say(e)}"`);
  }
  // A word broken over two lines ("Concurr / ent clients"); code may break anywhere
  const walker = document.createTreeWalker(block, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    const holder = node.parentElement;
    if (!holder || holder.closest('pre, code, details:not([open])') || inChartOrTable(holder)) continue;
    for (const word of node.data.matchAll(/[\p{L}\p{N}%]{3,}/gu)) {
      const range = document.createRange();
      range.setStart(node, word.index);
      range.setEnd(node, word.index + word[0].length);
      const tops = [...range.getClientRects()].filter(r => r.width > 0).map(r => r.top);
      if (tops.length > 1 && Math.max(...tops) - Math.min(...tops) > 2) {
        problems.push(`word broken over lines: "${word[0]}" in "${say(holder)}"`);
      }
    }
  }
  // A table whose columns do not fit scrolls sideways: its last columns are cut
  for (const table of main.querySelectorAll('[data-testid="stDataFrame"]')) {
    const scroller = table.querySelector('.dvn-scroller');
    if (visible(table) && scroller && scroller.scrollWidth > scroller.clientWidth + 1) {
      const columns = [...table.querySelectorAll('th')].map(th => th.innerText.trim()).filter(Boolean).join(', ');
      problems.push(`table cut: its columns (${columns}) need ${scroller.scrollWidth} px of ${scroller.clientWidth}`);
    }
  }
  // A heatmap's cells are square: its grey diagonal (the right answers, #e6e6e6) spans a square
  const diagonal = marks => {
    const cells = [...marks.querySelectorAll('[fill="#e6e6e6"]')].map(c => c.getBoundingClientRect());
    return cells.length < 2 ? null : [Math.max(...cells.map(r => r.right)) - Math.min(...cells.map(r => r.left)),
                                      Math.max(...cells.map(r => r.bottom)) - Math.min(...cells.map(r => r.top))];
  };
  // What is drawn: a chart's canvas or svg (it can be wider than its element), tables, images, metrics.
  const drawn = [];
  for (const chart of main.querySelectorAll('[data-testid="stVegaLiteChart"]')) {
    const canvas = chart.querySelector('canvas, svg.marks');
    if (!canvas || !visible(canvas)) continue;
    const text = say(chart.closest('[data-testid="stElementContainer"]') || chart);
    drawn.push(['chart', canvas, text]);
    const spans = diagonal(canvas);
    if (spans && (spans[0] > 1.25 * spans[1] || spans[1] > 1.25 * spans[0])) {
      problems.push(`heatmap squashed: its diagonal spans ${Math.round(spans[0])}x${Math.round(spans[1])} px: "${text}"`);
    }
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
def deployed_home(first_run_home, tmp_path_factory):
    """A home with sklearn_mnist:1 and :2 deployed on the local runtime (layout-v1, layout-v2), both scored on
    MNIST (so the Test page has a whole-set score and Compare a comparison) and 30 random images sent to v2."""
    from backend.context import open_modeldeck
    from backend.data.catalogue import load_dataset
    from backend.inspection.evaluation import sample
    from backend.services.comparing import compare_deployments

    home = copy_home(first_run_home, tmp_path_factory.mktemp("layout") / "home")  # sklearn_mnist:1 and :2
    deck = open_modeldeck(Settings(home=home, runtime="local"))
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


# Every 150 ms: whether the page is drawn — no placeholder left (Streamlit loads widgets lazily: they stand as
# skeletons for seconds on a busy machine), every chart drawn — and for how many looks in a row nothing drawn has
# moved or changed size (charts follow a new width a moment after it).
STILL_JS = r"""
setInterval(() => {
  const app = document.querySelector('.stApp'), main = document.querySelector('[data-testid="stMain"]');
  if (!app || !main) return;
  const charts = [...main.querySelectorAll('[data-testid="stVegaLiteChart"]')];
  const settled = !document.querySelector('[data-testid="stSkeleton"]')
      && charts.every(c => c.getBoundingClientRect().width === 0 || c.querySelector('canvas, svg.marks'));
  const boxes = [...main.querySelectorAll('canvas, svg.marks, img, button, [data-testid="stDataFrame"], '
                                          + '[data-testid="stMetric"], [data-testid="stColumn"]')]
      .map(e => { const r = e.getBoundingClientRect();
                  return [r.left, r.top, r.width, r.height, e.width, e.height].map(Math.round).join(','); });
  const bottom = main.querySelector('[data-testid="stMainBlockContainer"]')?.getBoundingClientRect().bottom;
  const look = boxes.join(';') + ';' + bottom + ';' + window.innerWidth + 'x' + window.innerHeight;
  window.__still = settled && look === window.__look ? (window.__still || 0) + 1 : 0;
  window.__look = look;
}, 150);
"""
STILL = "() => window.__still >= 3"  # drawn and unchanged for 3 looks in a row: 450 ms or more
TALL = 7000  # px: the window's height, taller than any page (the Test page is under 6000 px at 1024 px wide)
BOTTOM_JS = """() => Math.ceil(document.querySelector('[data-testid="stMainBlockContainer"]').getBoundingClientRect().bottom)"""
NO_SCROLLBAR_WIDTH_JS = """() => { const main = document.querySelector('[data-testid="stMain"]');
    return main.offsetWidth - main.clientWidth; }"""


RUN_DONE = "() => document.querySelector('.stApp')?.getAttribute('data-test-script-state') === 'notRunning'"


def _settle(page, ready_text: str | None = None) -> None:
    """Waits until the page shows `ready_text` and its script's run has finished, then until it is drawn and stays
    still (later runs of a fragment, the Deploy page's live traffic every 2 s, leave the layout as it is)."""
    from playwright.sync_api import expect

    if ready_text is not None:
        expect(page.get_by_test_id("stMain").get_by_text(ready_text, exact=False).first).to_be_visible(timeout=60_000)
        page.wait_for_function(RUN_DONE, timeout=60_000, polling=100)
    page.wait_for_function(STILL, timeout=60_000, polling=100)


def test_every_page_fits_a_projector_and_a_laptop_in_both_modes(deployed_home, tmp_path):
    """Each page is loaded once per mode in a window as tall as the page, so one screenshot shows it all and the
    viewer's first screen is its top; layouts follow the width, which is each size's own (the main column's
    scrollbar takes no width in headless Chromium, checked). A page is checked at one width, resized to the other
    (no reload) and checked again; the next page loads at that width."""
    from PIL import Image
    from playwright.sync_api import sync_playwright

    LAYOUT_ARTIFACTS.mkdir(parents=True, exist_ok=True)
    proc, url = start_dashboard(deployed_home, "local", tmp_path / "streamlit.log")
    found: dict[str, list[str]] = {}
    started = time.monotonic()
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": SIZES[0][0], "height": TALL})
            page.add_init_script(STILL_JS)
            main = page.get_by_test_id("stMain")
            sizes = list(SIZES)

            def check_at_each_size(shot: str, top=None) -> None:
                """Checks the page at each width (the one it has first) and screenshots it: whole, and the first
                screen from the top of the page or of `top` (a locator)."""
                for (width, height) in sizes:
                    if page.viewport_size["width"] != width:
                        page.set_viewport_size({"width": width, "height": TALL})
                        page.evaluate("() => { window.__still = 0; }")
                        _settle(page)
                    sized = shot.replace("@", f"{width}x{height}")
                    found[sized] = page.evaluate(LAYOUT_PROBLEMS_JS)
                    assert page.evaluate(NO_SCROLLBAR_WIDTH_JS) == 0, "a scrollbar takes width: check at real heights"
                    tall = min(int(page.evaluate(BOTTOM_JS)), TALL)
                    whole = LAYOUT_ARTIFACTS / f"{sized}-whole.png"
                    page.screenshot(path=str(whole), clip={"x": 0, "y": 0, "width": width, "height": max(tall, height)})
                    y = 0 if top is None else max(0, min(int(top.bounding_box()["y"]) - 16, max(tall, height) - height))
                    with Image.open(whole) as picture:
                        first = picture.crop((0, y, width, y + height))
                        side = int(page.get_by_test_id("stSidebar").bounding_box()["width"])
                        first.paste(picture.crop((0, 0, side, height)))  # the sidebar stays put as the page scrolls
                        first.save(LAYOUT_ARTIFACTS / f"{sized}.png")
                sizes.reverse()  # the next page starts at the width this one ends with

            for present in (False, True):
                mode = "present" if present else "normal"
                for name, (address, ready_text) in PAGES.items():
                    page.goto(url + address + ("&" if "?" in address else "?") + f"present={int(present)}")
                    _settle(page, ready_text)
                    check_at_each_size(f"{name}-@-{mode}")
                    if name == "compare":  # the difference heatmap, in the second tab: the first screen shows it
                        main.get_by_role("tab", name="What changed").click()
                        _settle(page, "Largest changes")
                        check_at_each_size(f"{name}-@-{mode}-changed", top=main.get_by_role("tablist"))
            browser.close()
        print(f"\nlayouts: {len(found)} checked in {time.monotonic() - started:.0f} s")
    finally:
        stop_dashboard(proc)
    problems = {shot: issues for shot, issues in found.items() if issues}
    assert not problems, "\n".join(f"{shot}: {issue}" for shot, issues in problems.items() for issue in issues)
    assert len(found) == (len(PAGES) + 1) * len(SIZES) * 2
