"""Navigation in a real headless Chromium (Debian's, via Playwright) against one `streamlit run` on the
local runtime: Back and Forward through the Compare choices and pages, and a load test cut short by a
reload keeps what ran. Screenshots go to artifacts/."""

import re
import time

import pytest

from backend.config import Settings
from backend.context import open_modeldeck
from backend.traffic.loadresult import LoadTestResult

from .conftest import FIXTURES, copy_home
from .test_browser_e2e import ARTIFACTS, IDLE_JS, launch, start_dashboard, stop_dashboard

pytestmark = pytest.mark.browser
A_LABEL = "A — the one you have"
B_LABEL = "B — the challenger"


@pytest.fixture(scope="module")
def dashboard(trained_home, tmp_path_factory):
    """sklearn_mnist:1 deployed as nav-v1 and sklearn_mnist:2 registered; one dashboard for the module."""
    root = tmp_path_factory.mktemp("navigation")
    home = copy_home(trained_home, root / "home")
    deck = open_modeldeck(Settings(home=home, runtime="local"))
    pickle = home / "blobs" / deck.registry.get("sklearn_mnist", 1).files[0].sha256
    named = root / "sklearn_mnist_model.pkl"
    named.write_bytes(pickle.read_bytes())
    deck.registry.register("sklearn_mnist", [named, FIXTURES / "tutorial_score.py"])  # version 2
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "nav-v1", timeout=180)
    proc, url = start_dashboard(home, "local", root / "streamlit.log")
    ARTIFACTS.mkdir(exist_ok=True)
    yield url, deck
    stop_dashboard(proc)
    for deployment in deck.deployments.list():
        deck.deployments.delete(deployment.name)


def choices(page) -> tuple[str, str, str]:
    """(address path and query, A as shown, B as shown) once the page has settled: Streamlit idle and the same
    reading twice, 0.6 s apart (a Back or Forward reruns the page; on a busy machine 1.2 s was not always enough)."""
    main = page.get_by_test_id("stMain")

    def read() -> tuple[str, str, str]:
        page.wait_for_function(IDLE_JS, timeout=60_000, polling=50)
        shown = [main.get_by_role("combobox", name=label).input_value() for label in (A_LABEL, B_LABEL)]
        return page.url.split("/", 3)[3], shown[0].split(" — ")[0], shown[1].split(" — ")[0]

    page.wait_for_timeout(1200)
    before = read()
    for _ in range(30):  # at most about 20 s more
        page.wait_for_timeout(600)
        now = read()
        if now == before:
            return now
        before = now
    return before


def test_back_and_forward_move_through_the_compare_choices_and_pages(dashboard):
    from playwright.sync_api import expect, sync_playwright

    url, _ = dashboard
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        main = page.get_by_test_id("stMain")
        page.goto(url + "/models")
        expect(main.get_by_role("heading", name="Models", exact=True)).to_be_visible(timeout=60_000)
        page.get_by_test_id("stSidebar").get_by_role("link", name="Compare").click()
        expect(main.get_by_role("heading", name="Compare", exact=True)).to_be_visible(timeout=60_000)
        entries = page.evaluate("history.length")
        assert choices(page) == ("compare", "nav-v1", "sklearn_mnist:2")  # the defaults, not written
        assert page.evaluate("history.length") == entries  # a visit is one entry

        main.get_by_role("combobox", name=A_LABEL).click()
        page.get_by_role("option", name="sklearn_mnist:2 — not deployed: deploys it to compare").click()
        assert choices(page) == ("compare?a=sklearn_mnist%3A2", "sklearn_mnist:2", "sklearn_mnist:2")
        main.get_by_role("combobox", name=B_LABEL).click()
        page.get_by_role("option", name="nav-v1 — sklearn_mnist:1 on local").click()
        after_b = ("compare?a=sklearn_mnist%3A2&b=nav-v1", "sklearn_mnist:2", "nav-v1")
        assert choices(page) == after_b
        assert page.evaluate("history.length") == entries + 2  # one entry per choice
        page.screenshot(path=str(ARTIFACTS / "navigation-compare-choices.png"))

        page.go_back()
        assert choices(page) == ("compare?a=sklearn_mnist%3A2", "sklearn_mnist:2", "sklearn_mnist:2")
        page.go_back()
        assert choices(page) == ("compare", "nav-v1", "sklearn_mnist:2")  # back to the defaults
        page.go_back()
        expect(main.get_by_role("heading", name="Models", exact=True)).to_be_visible(timeout=30_000)
        page.go_forward()
        expect(main.get_by_role("heading", name="Compare", exact=True)).to_be_visible(timeout=30_000)
        assert choices(page) == ("compare", "nav-v1", "sklearn_mnist:2")
        page.go_forward()
        page.go_forward()
        assert choices(page) == after_b
        page.reload()
        expect(main.get_by_role("heading", name="Compare", exact=True)).to_be_visible(timeout=30_000)
        assert choices(page) == after_b  # a reload opens the same choices
        browser.close()


def test_a_load_test_cut_short_by_a_reload_keeps_what_ran_marked_partial(dashboard):
    from playwright.sync_api import expect, sync_playwright

    url, deck = dashboard
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        main = page.get_by_test_id("stMain")
        page.goto(url + "/deploy?deployment=nav-v1")
        run = main.get_by_role("button", name="Run load test")
        expect(run).to_be_visible(timeout=60_000)
        main.get_by_role("spinbutton", name="Seconds").fill("20")
        main.get_by_role("spinbutton", name="Concurrent clients").fill("2")
        run.click()
        expect(main.get_by_text(re.compile(r"Second ([3-9]|1\d) of 20"))).to_be_visible(timeout=60_000)
        reloaded_at = time.monotonic()
        page.reload()
        partial = main.get_by_text("Partial result:")
        expect(partial).to_be_visible(timeout=60_000)
        partial.scroll_into_view_if_needed()
        page.wait_for_timeout(800)
        page.screenshot(path=str(ARTIFACTS / "navigation-loadtest-partial.png"))
        assert " of 20 ran" in partial.inner_text()
        kept = deck.results.load_loadtest(deck.deployments.get("nav-v1"))
        assert kept is not None and kept.partial and 2 <= kept.seconds < 20 and kept.requests > 0
        assert len(kept.timeline) >= 3 and kept.asked_seconds == 20
        assert LoadTestResult.from_json(kept.to_json()) == kept  # the mark is kept on disk; older files lack it:
        assert LoadTestResult.from_json({k: v for k, v in kept.to_json().items() if k != "partial"}).partial is False
        time.sleep(max(0.0, 6 - (time.monotonic() - reloaded_at)))
        assert deck.results.load_loadtest(deck.deployments.get("nav-v1")).seconds < 20  # the load stopped
        browser.close()



def deploy_form(browser, url: str):
    """(page, its main area, the Deploy button) of a 1400x900 page on the Deploy form for sklearn_mnist:1."""
    from playwright.sync_api import expect

    page = browser.new_page(viewport={"width": 1400, "height": 900})
    page.goto(url + "/deploy?model=sklearn_mnist&version=1")
    deploy = page.get_by_test_id("stBaseButton-primaryFormSubmit")
    expect(deploy).to_be_visible(timeout=60_000)
    return page, page.get_by_test_id("stMain"), deploy


def test_enter_then_deploy_deploys_once_and_the_outcome_is_in_view(dashboard):
    from playwright.sync_api import Error, expect, sync_playwright

    url, deck = dashboard
    with sync_playwright() as pw:
        browser = launch(pw)
        page, main, deploy = deploy_form(browser, url)
        name = main.get_by_role("textbox", name="Deployment name")
        name.fill("nav-enter")
        name.press("Enter")
        try:
            deploy.click(timeout=1_500)  # the click that deployed a second time ("exists already")
        except Error:
            pass  # disabled already: the browser refused the click
        expect(deploy.first).to_be_disabled(timeout=10_000)  # (while the page redraws, its old copy may linger)
        test_it = main.get_by_role("link", name="Test it")
        # its progress in view, or already its outcome: a local deploy can end before the first poll shows it
        expect(main.get_by_text("Deploying sklearn_mnist:1 as nav-enter").or_(test_it).first).to_be_in_viewport(
            timeout=30_000)
        expect(test_it).to_be_in_viewport(timeout=120_000)  # the outcome where the reader looks, not below
        expect(main.get_by_text("is Healthy")).to_be_in_viewport()
        page.screenshot(path=str(ARTIFACTS / "navigation-deploy-outcome.png"))
        assert not main.get_by_text("exists already").count()
        assert [d.name for d in deck.deployments.list() if d.name.startswith("nav-enter")] == ["nav-enter"]
        expect(deploy).to_be_enabled(timeout=30_000)
        browser.close()
