"""End to end in a real headless Chromium (Debian's, driven by Playwright) against `streamlit run`,
on the Docker runtime: from an empty registry to the confusion heatmap, then delete. Fails, never
skips, when the browser or the engine is missing: scripts/setup.sh installs both."""

import os
import re
import socket
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from backend.config import Settings
from backend.registry import ModelRegistry

from .conftest import copy_home, remove_home_deployments

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "artifacts"
IDLE_JS = "() => !document.querySelector('[data-testid=\"stStatusWidgetRunningIcon\"]')"  # no script running
EXPECT_SECONDS = 15
CHROMIUM = os.environ.get("MODELDECK_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic", "--disable-default-apps"]

pytestmark = pytest.mark.browser


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_dashboard(home: Path, runtime: str, log_path: Path) -> tuple[subprocess.Popen, str]:
    """`streamlit run dashboard/app.py` on 127.0.0.1 with MODELDECK_HOME=home; waits for its health check."""
    port = free_port()
    env = {**os.environ, "MODELDECK_HOME": str(home), "MODELDECK_RUNTIME": runtime}
    log = open(log_path, "wb")
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "dashboard" / "app.py"), "--server.headless", "true",
         "--server.address", "127.0.0.1", "--server.port", str(port), "--browser.gatherUsageStats", "false",
         "--server.fileWatcherType", "none", "--client.toolbarMode", "minimal"],
        env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            if urllib.request.urlopen(url + "/_stcore/health", timeout=1).status == 200:
                return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    pytest.fail("streamlit did not start:\n" + log_path.read_text())


def stop_dashboard(proc: subprocess.Popen) -> None:
    proc.terminate()
    proc.wait(timeout=20)


def launch(pw):
    """Debian's chromium, headless; and an expectation waits up to EXPECT_SECONDS (Playwright's 5 s default: a
    page rerun on a busy 2-core machine took longer, and a wait is no measurement)."""
    from playwright.sync_api import expect

    assert Path(CHROMIUM).exists(), f"{CHROMIUM} is missing: run scripts/setup.sh (installs Debian's chromium)"
    expect.set_options(timeout=EXPECT_SECONDS * 1000)
    return pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)


@pytest.fixture()
def dashboard(tmp_path):
    """The dashboard with an empty registry on the Docker runtime; every container of its home is removed after."""
    import docker

    try:
        docker.from_env().ping()
    except Exception as e:
        pytest.fail(f"no Docker engine answers ({e}): run scripts/setup.sh")
    proc, url = start_dashboard(tmp_path / "home", "docker", tmp_path / "streamlit.log")
    yield url, tmp_path / "home"
    stop_dashboard(proc)
    remove_home_deployments(docker.from_env(), tmp_path / "home")


@pytest.mark.docker
def test_empty_registry_to_heatmap_in_a_real_browser_then_reload_and_delete(dashboard):
    import docker
    from playwright.sync_api import expect, sync_playwright

    url, home = dashboard

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as pw:
        browser = launch(pw)
        page = browser.new_page(viewport={"width": 1280, "height": 720})
        started = time.monotonic()
        page.goto(url)
        main = page.get_by_test_id("stMain")
        expect(main.get_by_role("heading", name="Deploy", exact=True)).to_be_visible(timeout=120_000)
        deploy_button = page.get_by_test_id("stBaseButton-primaryFormSubmit")
        expect(deploy_button).to_be_visible(timeout=120_000)  # after first-run training
        assert urllib.parse.urlparse(page.url).path == "/deploy"  # the bare address opens /deploy
        expect(page.get_by_test_id("stSidebar").get_by_text("docker", exact=True)).to_be_visible()

        deploy_button.click()
        expect(main.get_by_text("is Healthy. Scoring URI")).to_be_visible(timeout=300_000)
        scoring_uri = main.get_by_test_id("stCode").first.inner_text().strip()
        assert scoring_uri.startswith("http://127.0.0.1:")
        expect(page.get_by_test_id("stSidebar").get_by_test_id("stMetricValue")).to_have_text("1")

        main.get_by_role("link", name="Test it").click()
        expect(main.get_by_role("heading", name="Test", exact=True)).to_be_visible(timeout=60_000)
        main.get_by_role("button", name="Score the whole test set").click()
        expect(main.get_by_test_id("stMetricValue").first).to_be_visible(timeout=120_000)
        heatmap = main.get_by_text("Normalised confusion matrix: rows normalised, diagonal zeroed")
        expect(heatmap).to_be_visible(timeout=60_000)
        seconds_to_heatmap = time.monotonic() - started
        accuracy = main.get_by_test_id("stMetricValue").first.inner_text()

        main.get_by_role("button", name="Send 30 random test images").click()
        expect(main.get_by_text("of 30 correct")).to_be_visible(timeout=60_000)
        expect(main.get_by_test_id("stImage").first).to_be_visible()
        assert "deployment=sklearn-mnist-v2" in page.url  # the link's choice; the default test set is not written
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "test-page-1280x720.png"))

        page.reload()  # the same deployment, test set and results come back
        expect(main.get_by_role("heading", name="Test", exact=True)).to_be_visible(timeout=60_000)
        expect(main.get_by_role("combobox", name="Deployment")).to_have_value("sklearn-mnist-v2 — sklearn_mnist:2 on docker")
        expect(main.get_by_test_id("stMetricValue").first).to_have_text(accuracy, timeout=60_000)
        expect(main.get_by_text("of 30 correct")).to_be_visible()
        expect(main.get_by_test_id("stVegaLiteChart").first).to_be_visible()
        page.set_viewport_size({"width": 1400, "height": 1950})  # Streamlit scrolls inside its main block
        expect(heatmap).to_be_visible()
        page.wait_for_timeout(500)
        page.screenshot(path=str(ARTIFACTS / "test-page.png"))
        print(f"\nbrowser e2e: {seconds_to_heatmap:.1f} s from opening the page to the heatmap "
              f"(first-run training and a cold or warm deploy included); accuracy {accuracy}")

        page.get_by_test_id("stSidebar").get_by_role("link", name="Deploy").click()
        main.get_by_role("button", name="Delete…").click()
        main.get_by_role("button", name="Yes, delete sklearn-mnist-v2").click()
        expect(main.get_by_text("No deployment yet.")).to_be_visible(timeout=60_000)
        expect(page.get_by_test_id("stSidebar").get_by_test_id("stMetricValue")).to_have_text("0")
        browser.close()

    settings = Settings(home=home)
    trained = ModelRegistry(settings.registry_path, settings.blobs_dir).get("sklearn_mnist", 2)
    assert accuracy == f"{trained.metrics['accuracy']:.2%}"
    home_id = (home / "home-id").read_text().strip()
    assert docker.from_env().containers.list(all=True, filters={"label": f"modeldeck.home_id={home_id}"}) == []


def test_registering_an_uploaded_model_in_a_real_browser(trained_home, sample_model, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from backend.files import file_sha256

    pickle_path = tmp_path / "my_digits.pkl"
    pickle_path.write_bytes((trained_home / "blobs" / sample_model.files[0].sha256).read_bytes())
    home = copy_home(trained_home, tmp_path / "home")
    proc, url = start_dashboard(home, "local", tmp_path / "streamlit.log")
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 1400})
            page.goto(url + "/models")
            main = page.get_by_test_id("stMain")
            expect(main.get_by_role("heading", name="Models", exact=True)).to_be_visible(timeout=60_000)
            expect(main.get_by_text("A pickle or joblib file runs code when it is loaded")).to_be_visible()
            page.wait_for_function(IDLE_JS, timeout=120_000, polling=50)
            # the model file's own uploader, found by its label (the first one of a page still being drawn was
            # once another page's, which refused the .pkl)
            model_file = main.get_by_test_id("stFileUploader").filter(
                has_text="Model file (joblib / pickle)").get_by_test_id("stFileUploaderDropzoneInput")
            model_file.set_input_files(str(pickle_path))
            main.get_by_role("textbox", name="Name", exact=True).fill("my_digits")
            main.get_by_label("Tags").fill("source=browser")
            main.get_by_role("textbox", name="Input shape").fill("28x28")
            main.get_by_role("textbox", name="Classes").fill("0-9")
            main.get_by_role("button", name="Register").click()
            expect(main.get_by_text("Registered my_digits:1")).to_be_visible(timeout=60_000)
            registered = ModelRegistry(Settings(home=home).registry_path, Settings(home=home).blobs_dir).get("my_digits", 1)
            assert registered.files[0].sha256 == file_sha256(pickle_path)
            expect(main.get_by_text(f"model sha256 {registered.sha256[:12]}")).to_be_visible()  # in the notice
            expect(main.get_by_test_id("stDataFrame").first).to_contain_text("my_digits")  # in the table at once
            # the same bytes again: no new version, and the page says which one holds them
            model_file.set_input_files(str(pickle_path))
            main.get_by_role("button", name="Register").click()
            expect(main.get_by_text("is registered already as my_digits:1")).to_be_visible(timeout=60_000)
            page.screenshot(path=str(ARTIFACTS / "models-page.png"), full_page=True)
            browser.close()
    finally:
        stop_dashboard(proc)
    settings = Settings(home=home)
    registered = ModelRegistry(settings.registry_path, settings.blobs_dir).get("my_digits")
    assert registered.tags == {"source": "browser"} and registered.version == 1
    assert registered.signature.n_features == 784 and registered.signature.class_labels == tuple("0123456789")
    assert registered.files[0].name == "my_digits.pkl" and registered.files[0].sha256 == file_sha256(pickle_path)


def test_the_test_page_keeps_its_choices_through_escape_new_deployments_and_a_deleted_choice(
        trained_home, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    from backend.context import open_modeldeck

    home = copy_home(trained_home, tmp_path / "home")
    deck = open_modeldeck(Settings(home=home, runtime="local"))
    model = deck.registry.get("sklearn_mnist", 1)
    for name in ("pick-a", "pick-b"):
        deck.deployments.deploy_and_wait(model, name, timeout=180)
    proc, url = start_dashboard(home, "local", tmp_path / "streamlit.log")
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1280, "height": 720})
            page.goto(url + "/test?deployment=pick-a&dataset=mnist")
            main = page.get_by_test_id("stMain")
            chosen = main.get_by_role("combobox", name="Deployment")
            expect(chosen).to_have_value("pick-a — sklearn_mnist:1 on local", timeout=60_000)
            chosen.click()
            page.keyboard.press("Escape")  # closes the list; must not clear the choice
            main.get_by_role("heading", name="Test", exact=True).click()
            expect(chosen).to_have_value("pick-a — sklearn_mnist:1 on local")

            chosen.click()
            page.get_by_role("option", name="pick-b — sklearn_mnist:1 on local").click()
            expect(main.get_by_role("combobox", name="Test set")).to_have_value("MNIST 10k (bundled)")
            deck.deployments.deploy_and_wait(model, "pick-c", timeout=180)  # a newer one, made elsewhere
            main.get_by_role("slider").first.press("ArrowRight")  # 31 images
            main.get_by_role("button", name="Send 31 random test images").click()
            expect(main.get_by_text("of 31 correct")).to_be_visible(timeout=60_000)
            expect(chosen).to_have_value("pick-b — sklearn_mnist:1 on local")  # not swapped for pick-c

            deck.deployments.delete("pick-b")  # the chosen one disappears behind the page's back
            main.get_by_role("slider").first.press("ArrowLeft")
            expect(main.get_by_text("'pick-b' is not a deployment of this home")).to_be_visible(timeout=60_000)
            expect(chosen).to_have_value("")
            chosen.click()
            page.get_by_role("option", name="pick-c — sklearn_mnist:1 on local").click()
            expect(main.get_by_role("combobox", name="Test set")).to_have_value("MNIST 10k (bundled)")
            main.get_by_role("button", name="Send 30 random test images").click()
            expect(main.get_by_text("of 30 correct")).to_be_visible(timeout=60_000)
            expect(main.get_by_text("pick-c (sklearn_mnist:1) on MNIST 10k (bundled)")).to_be_visible()
            assert "deployment=pick-c" in page.url
            browser.close()
    finally:
        stop_dashboard(proc)
        for deployment in deck.deployments.list():
            deck.deployments.delete(deployment.name)


def test_a_tester_clicks_a_confusion_cell_draws_a_digit_and_uploads_one(trained_home, tmp_path):
    """The exploratory Test page in Chromium: a click on a cell of the matrix opens exactly its images; a
    digit drawn with the mouse on the pad and an uploaded scan each get a prediction with probabilities."""
    from PIL import Image
    from playwright.sync_api import expect, sync_playwright

    from backend.context import open_modeldeck
    from backend.data.builtin import load_mnist_test

    home = copy_home(trained_home, tmp_path / "home")
    deck = open_modeldeck(Settings(home=home, runtime="local"))
    deck.deployments.deploy_and_wait(deck.registry.get("sklearn_mnist", 1), "explore", timeout=180)
    scan = tmp_path / "scan.png"  # the second test image (a 2), as a dark-on-light scan
    Image.fromarray((255 - load_mnist_test().X[1].reshape(28, 28) * 255).astype("uint8")).resize((300, 300)).save(scan)
    own = tmp_path / "own.npz"
    import numpy as np

    np.savez(own, X=(load_mnist_test().X[:200] * 255).round().astype("uint8"), y=load_mnist_test().y[:200])
    proc, url = start_dashboard(home, "local", tmp_path / "streamlit.log")
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        with sync_playwright() as pw:
            browser = launch(pw)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url + "/test?deployment=explore&dataset=mnist")
            main = page.get_by_test_id("stMain")
            main.get_by_role("button", name="Score the whole test set").click()
            chart = main.get_by_test_id("stVegaLiteChart").first
            expect(chart).to_be_visible(timeout=120_000)
            gallery = main.get_by_text(re.compile(r"images? with true label"))
            started = time.monotonic()
            for _ in range(3):  # on a busy machine a click can land while vega still draws: clicked again then
                page.wait_for_function(IDLE_JS, timeout=120_000, polling=50)
                chart.scroll_into_view_if_needed()
                expect(chart.locator("canvas, svg").first).to_be_visible(timeout=30_000)
                page.wait_for_timeout(1000)  # vega draws after the element appears
                box = chart.bounding_box()
                started = time.monotonic()
                page.mouse.click(box["x"] + box["width"] * 0.45, box["y"] + box["height"] * 0.45)
                try:
                    expect(gallery).to_be_visible(timeout=20_000)
                    break
                except AssertionError:
                    continue
            expect(gallery).to_be_visible(timeout=10_000)
            seconds_to_gallery = time.monotonic() - started
            assert "predicted" in gallery.inner_text()
            gallery.scroll_into_view_if_needed()
            page.wait_for_timeout(2000)  # the gallery's picture loads after its title
            page.screenshot(path=str(ARTIFACTS / "test-page-cell-gallery.png"))

            pad = page.locator("canvas[aria-label='drawing pad']")
            pad.scroll_into_view_if_needed()
            area = pad.bounding_box()
            started = time.monotonic()
            page.mouse.move(area["x"] + area["width"] * 0.5, area["y"] + area["height"] * 0.2)
            page.mouse.down()
            for step in range(1, 11):  # a vertical stroke: a 1
                page.mouse.move(area["x"] + area["width"] * 0.5, area["y"] + area["height"] * (0.2 + step * 0.06))
            page.mouse.up()
            prediction = main.get_by_test_id("stMetric").filter(has_text="Prediction")
            expect(prediction).to_be_visible(timeout=30_000)
            seconds_to_prediction = time.monotonic() - started
            expect(prediction.get_by_test_id("stMetricValue")).to_have_text("1")
            expect(main.get_by_text("What the model received (28x28)")).to_be_visible()
            page.wait_for_timeout(500)
            page.screenshot(path=str(ARTIFACTS / "test-page-drawn-digit.png"))

            main.locator("input[type=file][accept*='.png']").set_input_files(str(scan))  # the digit's uploader
            expect(prediction.get_by_test_id("stMetricValue")).to_have_text("2", timeout=30_000)
            main.get_by_text("Explain the answer").click()  # each patch's part in it
            expect(main.get_by_text("blue patches pushed the answer toward the class")).to_be_visible(timeout=30_000)

            main.get_by_text("Add your own test set").click()  # and a test set of one's own, from the page
            form = main.get_by_test_id("stForm")
            form.get_by_test_id("stFileUploaderDropzoneInput").set_input_files(str(own))
            # as a user does, wait for the file to be listed: a form sent while it still uploads has no file
            expect(form.get_by_test_id("stFileChip").filter(has_text="own.npz")).to_be_visible(timeout=30_000)
            expect(form.get_by_test_id("stFileChipIconSpinner")).to_have_count(0, timeout=30_000)
            form.get_by_role("textbox", name="Name", exact=True).fill("first-200")
            form.get_by_text("Rescale the values onto the model's range [0, 1]").click()  # its bytes are 0-255
            form.get_by_role("button", name="Add test set").click()
            try:
                expect(main.get_by_role("combobox", name="Test set")).to_have_value("first-200", timeout=30_000)
            except AssertionError:
                print("the page said instead:\n" + main.inner_text())
                raise
            browser.close()
    finally:
        stop_dashboard(proc)
        deck.deployments.delete("explore")
    print(f"\nbrowser e2e: {seconds_to_gallery:.2f} s from a click on a cell to its gallery, "
          f"{seconds_to_prediction:.2f} s from the end of a stroke to its prediction")
