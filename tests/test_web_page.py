"""The live page at / in Debian's headless chromium (Selenium through chromium-driver), against a real run.

Every camera's tile appears with a picture that updates; a camera added through the form appears, one
removed with its button goes; a camera whose server dies shows it, and its picture comes back with it.
The screenshot is kept as a test artifact (out/test-artifacts/web-page.png).
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from conftest import RtspServer
from test_api import Run, make_small_clip

pytestmark = [pytest.mark.gst, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARTIFACTS = Path(__file__).resolve().parents[1] / "out" / "test-artifacts"


@pytest.fixture(scope="session")
def small_clip(tmp_path_factory: pytest.TempPathFactory, gst_module: Any) -> Path:
    return make_small_clip(tmp_path_factory.getbasetemp())


@pytest.fixture
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("needs Debian's chromium and chromium-driver (make setup installs them)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--window-size=1280,900",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _wait(what: str, check: Callable[[], Any], timeout: float = 30.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.25)


def _tiles(driver: Any) -> dict[str, dict[str, Any]]:
    """What the page shows per camera: status, picture sequence, loaded picture size, updates."""
    script = """
    return Array.from(document.querySelectorAll('.tile')).map(t => {
      const img = t.querySelector('img');
      return {id: t.dataset.camera, status: t.dataset.status || '', seq: Number(img.dataset.seq || 0),
              width: img.naturalWidth, updates: Number(img.dataset.updates), text: t.innerText};
    });"""
    return {tile["id"]: tile for tile in driver.execute_script(script)}


def _picture_moves(driver: Any, camera: str, timeout: float = 30.0) -> None:
    """The tile's picture is loaded and then replaced by a newer frame."""
    first = _wait(f"{camera}'s picture", lambda: (t := _tiles(driver).get(camera)) and t["width"] > 0 and t, timeout)
    _wait(f"{camera}'s picture to update", lambda: _tiles(driver)[camera]["seq"] > first["seq"] + 2, timeout)


@pytest.mark.timeout(300)
def test_live_page_in_headless_chromium(small_clip: Path, models_dir: Path, tmp_path: Path, browser: Any) -> None:
    from selenium.webdriver.common.by import By

    main, flaky = RtspServer(small_clip, ["cam0", "cam2"]).start(), RtspServer(small_clip, ["cam1"]).start()
    args = ["--source", f"cam0={main.url('cam0')}", "--source", f"cam1={flaky.url('cam1')}", "--max-poses", "2"]
    run = Run(tmp_path, models_dir, args)
    try:
        browser.get(run.base + "/")
        assert browser.title == "blazestream"
        _wait("both tiles", lambda: {"cam0", "cam1"} <= set(_tiles(browser)))
        for cam in ("cam0", "cam1"):
            _picture_moves(browser, cam, timeout=60)
        _wait("status up", lambda: all(t["status"] == "up" for t in _tiles(browser).values()))

        # add through the form
        browser.find_element(By.ID, "add-id").send_keys("cam2")
        browser.find_element(By.ID, "add-uri").send_keys(main.url("cam2"))
        browser.find_element(By.ID, "add-button").click()
        _wait("the added tile", lambda: "cam2" in _tiles(browser))
        assert "added cam2" in browser.find_element(By.ID, "add-message").text
        _picture_moves(browser, "cam2", timeout=60)
        _wait("all up", lambda: all(t["status"] == "up" for t in _tiles(browser).values()))
        _wait("people counted", lambda: "1 person" in _tiles(browser)["cam2"]["text"])
        shot = tmp_path / "web-page.png"
        browser.save_screenshot(str(shot))
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        shutil.copy(shot, ARTIFACTS / "web-page.png")
        assert shot.stat().st_size > 10_000

        # a bad camera through the form: the page shows the API's reason
        browser.find_element(By.ID, "add-id").send_keys("cam3")
        browser.find_element(By.ID, "add-uri").send_keys("ftp://192.0.2.1/x")
        browser.find_element(By.ID, "add-button").click()
        _wait("the refusal", lambda: "unsupported scheme" in browser.find_element(By.ID, "add-message").text)
        browser.find_element(By.ID, "add-id").clear()
        browser.find_element(By.ID, "add-uri").clear()

        # remove with the tile's button
        browser.find_element(By.CSS_SELECTOR, '.tile[data-camera="cam0"] button.remove').click()
        _wait("cam0's tile to go", lambda: "cam0" not in _tiles(browser))
        assert "cam0" not in run.cameras()

        # cam1's server dies: the tile says so; it comes back: so does the picture
        flaky.kill()
        _wait("cam1 shown down", lambda: _tiles(browser)["cam1"]["status"] in ("reconnecting", "starting"), 30)
        stale = _tiles(browser)["cam1"]["seq"]
        flaky.start()
        _wait("cam1 back up", lambda: _tiles(browser)["cam1"]["status"] == "up", 60)
        _wait("cam1's picture moving again", lambda: _tiles(browser)["cam1"]["seq"] > stale + 2, 30)
        _picture_moves(browser, "cam2")
        # Failed requests (a refused camera, a removed camera's last snapshot) are logged as "network";
        # anything else severe is a script error of the page.
        logs = browser.get_log("browser")
        console = [e for e in logs if e.get("level") == "SEVERE" and e.get("source") != "network"]
        assert not console, console
    finally:
        code = run.stop()
        main.kill()
        flaky.kill()
    assert code == 0, run.text()[-3000:]
    assert "Traceback" not in run.text()
