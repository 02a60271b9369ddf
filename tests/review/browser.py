"""Headless Debian chromium for the browser tests (skipped, with the reason, when absent)."""

from __future__ import annotations

import base64
import io
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
ARGS = (
    "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage "
    "--disable-background-networking --disable-component-update --disable-sync --no-first-run "
    "--enable-unsafe-swiftshader --window-size=1400,1000"
).split()


def require_chromium() -> None:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.skip("Debian chromium/chromium-driver not installed (run 'make browser-deps' as root)")


def start_driver(page_load_strategy: str = "normal"):
    """A headless chromium driven by Selenium, logging the browser console (``"none"``: ``get``
    returns at once instead of waiting for the load event)."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="gdsynth-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for arg in ARGS:
        options.add_argument(arg)
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    options.page_load_strategy = page_load_strategy
    driver = webdriver.Chrome(service=Service(str(CHROMEDRIVER)), options=options)
    driver.gdsynth_profile = profile
    return driver


def stop_driver(driver) -> None:
    driver.quit()
    shutil.rmtree(driver.gdsynth_profile, ignore_errors=True)


def wait_for(driver, script: str, timeout: float = 90.0):
    """Poll a JS expression until truthy; return its value (fails the test on timeout)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        value = driver.execute_script(f"return {script};")
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {script}")


def severe_logs(driver) -> list[str]:
    return [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]


def image_pixels(element) -> np.ndarray:
    """The greyscale image content of an element's screenshot: values in [0, 1] of the pixels
    that are grey and not black (coloured crosshairs, overlays and background excluded)."""
    import matplotlib.image as mpimg

    png = base64.b64decode(element.screenshot_as_base64)
    rgb = np.asarray(mpimg.imread(io.BytesIO(png), format="png"))[..., :3]
    grey = (rgb.max(axis=-1) - rgb.min(axis=-1) < 0.04) & (rgb.mean(axis=-1) > 0.08)
    return rgb.mean(axis=-1)[grey]
