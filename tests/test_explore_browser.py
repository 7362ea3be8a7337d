"""``llmsim-explore`` in a real browser: headless Chromium (Debian's ``chromium`` and ``chromium-driver``
packages, driven by Selenium; no browser is downloaded). .ci/run installs both; where they are missing
the test is skipped with the command that installs them (it fails instead under .ci/run, which sets
``LLMSIM_REQUIRE_BROWSER=1``).

The test starts the explorer on a free port, moves the HBM bandwidth slider and types into the batch
box, and holds the page to the command line: the TPOT it shows is what ``llmsim`` prints for the
command the page exports, the roofline and the regime map are drawn again for the new design, an
invalid batch is answered in words next to the box, and nothing is fetched from outside the server.
It also writes the README's screenshots: ``LLMSIM_SCREENSHOTS=docs/images`` keeps them there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
DRIVER = shutil.which("chromedriver")
WAIT_S = 60


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    proc = subprocess.Popen([str(BIN / "llmsim-explore"), "--port", str(port)], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    line = proc.stdout.readline()
    assert f"http://127.0.0.1:{port}/" in line, line
    yield f"http://127.0.0.1:{port}/"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM and DRIVER):
        missing = "headless Chromium is not installed: apt-get install -y chromium chromium-driver (.ci/run does)"
        if os.environ.get("LLMSIM_REQUIRE_BROWSER"):
            pytest.fail(missing)
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for arg in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1500,2150"):
        options.add_argument(arg)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    yield driver
    driver.quit()


def _text(driver, dom_id: str) -> str:
    from selenium.webdriver.common.by import By

    found = driver.find_elements(By.ID, dom_id)
    return found[0].text if found else ""


def _wait(driver, condition, what: str):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT_S, poll_frequency=0.25).until(lambda d: condition(d), message=what)


def _traces(driver, graph: str) -> list:
    script = f"const g = document.querySelector('#{graph} .js-plotly-plot'); return g ? g.data : null"
    return driver.execute_script(script) or []


def _settled(driver) -> bool:
    """No callback in flight: Dash marks what it is updating with data-dash-is-loading."""
    return not driver.execute_script("return document.querySelectorAll('[data-dash-is-loading=\"true\"]').length")


def _llmsim_tpot(command: str, tmp_path: Path) -> str:
    args = command.split()[1:]
    out = subprocess.run([str(BIN / "llmsim"), *args, f"hydra.run.dir={tmp_path / 'run'}"], capture_output=True,
                         text=True, check=True).stdout
    return re.search(r"time per output token\s+(.+)", out).group(1).strip()


def _shoot(driver, name: str, tmp_path: Path) -> None:
    folder = Path(os.environ.get("LLMSIM_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0)")
    assert driver.save_screenshot(str(folder / name))


def _click_slider(driver, dom_id: str, fraction: float) -> None:
    """Click the slider's track at ``fraction`` of its width, as a user would."""
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By

    track = driver.find_element(By.CSS_SELECTOR, f"#{dom_id} .dash-slider-track")
    offset = int(track.size["width"] * (fraction - 0.5))  # Selenium 4 offsets from the element's centre
    ActionChains(driver).move_to_element_with_offset(track, offset, 0).click().perform()


def _type(driver, dom_id: str, text: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    box = driver.find_element(By.ID, dom_id)
    box.click()
    box.send_keys(Keys.CONTROL, "a")
    box.send_keys(text, Keys.ENTER)


def _choose(driver, dom_id: str, option: str) -> None:
    from selenium.webdriver.common.by import By

    driver.find_element(By.ID, dom_id).click()
    _wait(driver, lambda d: d.find_elements(By.XPATH, f"//*[@role='option'][normalize-space()='{option}']"),
          f"the option {option} of {dom_id}")
    driver.find_element(By.XPATH, f"//*[@role='option'][normalize-space()='{option}']").click()


def test_explorer_in_headless_chromium(server, browser, tmp_path):
    d = browser
    d.get(server)
    _wait(d, lambda d: _text(d, "out-tpot_s") and len(_traces(d, "fig-map")) > 1 and _settled(d), "the first page")
    local = d.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert local and all(url.startswith(server) for url in local), "every script and style from the server"
    _shoot(d, "explorer_default.png", tmp_path)
    roofline_before, map_before = json.dumps(_traces(d, "fig-roofline")), json.dumps(_traces(d, "fig-map"))

    _type(d, "ctl-workload-batch", "8")
    _wait(d, lambda d: "workload.batch=8" in _text(d, "command"), "the batch in the command")
    _click_slider(d, "ctl-hardware-hbm-bandwidth-GBps", 0.6)  # about 2 TB/s: HBM2 stacks reach 3.4 at most
    _wait(d, lambda d: "hardware.hbm_bandwidth_GBps=" in _text(d, "command"), "the bandwidth in the command")
    _wait(d, lambda d: json.dumps(_traces(d, "fig-map")) != map_before and _settled(d), "the regime map again")
    assert json.dumps(_traces(d, "fig-roofline")) != roofline_before, "the roofline is drawn for the new design"
    command = _text(d, "command")
    assert _text(d, "out-tpot_s") == _llmsim_tpot(command, tmp_path), command
    here = [t for t in _traces(d, "fig-map") if t.get("name") == "this design"][0]
    bandwidth = re.search(r"hardware.hbm_bandwidth_GBps=(\S+)", command).group(1)
    assert here["x"] == [bandwidth] and here["y"] == ["8"], "the design is marked where it is"

    _type(d, "ctl-workload-batch", "-3")
    _wait(d, lambda d: _text(d, "err-ctl-workload-batch"), "the batch box's error")
    assert "batch" in _text(d, "err-ctl-workload-batch") and "Traceback" not in d.page_source

    _type(d, "ctl-workload-batch", "1")
    _wait(d, lambda d: "workload.batch" not in _text(d, "command") and _settled(d), "batch 1 again")
    d.find_element("id", "pin-btn").click()
    _click_slider(d, "ctl-hardware-hbm-bandwidth-GBps", 0.25)
    _wait(d, lambda d: d.find_elements("id", "compare-table") and _settled(d), "the comparison with the pin")
    _shoot(d, "explorer_memory_bound.png", tmp_path)

    _choose(d, "preset-workload", "serving")
    _wait(d, lambda d: _text(d, "out-tpot_p50_s") and _settled(d), "a serving run")
    _shoot(d, "explorer_serving.png", tmp_path)
