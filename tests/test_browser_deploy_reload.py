"""A reload of the Deploy page while a deploy runs, in a real headless Chromium (Debian's, via Playwright)
against one `streamlit run` on the local runtime: the new session shows the running deploy's progress,
then its outcome. Screenshots go to artifacts/."""

import pytest

from backend.config import Settings
from backend.context import open_modeldeck
from backend.runtimes.base import DeploymentState

from .conftest import FIXTURES, copy_home
from .test_browser_e2e import ARTIFACTS, launch, start_dashboard, stop_dashboard
from .test_browser_navigation import deploy_form

pytestmark = pytest.mark.browser


@pytest.fixture()
def dashboard(trained_home, tmp_path):
    home = copy_home(trained_home, tmp_path / "home")
    proc, url = start_dashboard(home, "local", tmp_path / "streamlit.log")
    ARTIFACTS.mkdir(exist_ok=True)
    yield url, open_modeldeck(Settings(home=home, runtime="local"))
    stop_dashboard(proc)
    deck = open_modeldeck(Settings(home=home, runtime="local"))
    for deployment in deck.deployments.list():
        deck.deployments.delete(deployment.name)


def test_a_reload_mid_deploy_still_shows_its_progress_then_healthy_and_test_it(dashboard):
    from playwright.sync_api import expect, sync_playwright

    url, deck = dashboard
    script = FIXTURES / "slow_init_score.py"  # 20 s: it still runs after the reload and the new page
    with sync_playwright() as pw:
        browser = launch(pw)
        page, main, deploy = deploy_form(browser, url)
        main.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(script))
        expect(main.get_by_text("slow_init_score.py")).to_be_visible(timeout=10_000)
        main.get_by_role("textbox", name="Deployment name").fill("reload-slow")
        deploy.click()
        progress = main.get_by_text("Deploying sklearn_mnist:1 as reload-slow")
        expect(progress).to_be_visible(timeout=30_000)

        page.reload()  # a new session: the deploy runs on in the server
        expect(progress).to_be_in_viewport(timeout=60_000)
        assert deck.deployments.get("reload-slow").state is DeploymentState.TRANSITIONING  # shown while it ran
        expect(deploy.first).to_be_disabled(timeout=10_000)
        page.screenshot(path=str(ARTIFACTS / "deploy-reloaded-progress.png"))
        test_it = main.get_by_role("link", name="Test it")
        expect(test_it).to_be_in_viewport(timeout=120_000)
        expect(main.get_by_text("reload-slow is Healthy")).to_be_in_viewport()
        page.screenshot(path=str(ARTIFACTS / "deploy-reloaded-outcome.png"))
        expect(deploy).to_be_enabled(timeout=30_000)
        assert [d.name for d in deck.deployments.list()] == ["reload-slow"]
        browser.close()
