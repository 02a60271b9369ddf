"""A reader completes two cases in headless chromium; the answers (with lesion clicks) are in
SQLite."""

from __future__ import annotations

import json
import sqlite3
import threading

import numpy as np
import pytest

from gdsynth.review.server import create_app
from gdsynth.review.study import create_study
from tests.review.browser import severe_logs, start_driver, stop_driver, wait_for

pytestmark = pytest.mark.browser


def test_reader_completes_two_cases_in_the_browser(cohort, tmp_path):
    from werkzeug.serving import make_server

    bids, pred = cohort
    root = tmp_path / "study"
    tokens = create_study(pred, bids, root, readers=["alice"], seed=5, reference=pred)
    key = json.loads((root / "key" / "unblinding.json").read_text())["cases"]
    lesion = next(iter(key.values()))["reference_lesions"][0]["centre"]
    server = make_server("127.0.0.1", 0, create_app(root), threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    driver = start_driver()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        driver.get(base + "/")
        driver.find_element("id", "token").send_keys(tokens["alice"])
        driver.find_element("css selector", "#login button").click()
        for n, call in enumerate(("real", "synthetic"), start=1):
            wait_for(driver, f"document.title === 'Case {n} of 2'")
            wait_for(driver, "window.gdViewerReady === true || !!window.gdViewerError")
            assert driver.execute_script("return window.gdViewerError || null") is None
            assert len(driver.find_elements("css selector", "canvas.nv-canvas")) == 4
            driver.execute_script("gdViewer.goto(arguments[0])", lesion)
            driver.find_element("id", "mark").click()
            driver.find_element("css selector", f"input[name=call][value={call}]").click()
            driver.find_element("css selector", "input[name=quality][value='4']").click()
            driver.find_element("css selector", "input[name=confidence][value='2']").click()
            driver.find_element("id", "submit").click()
        wait_for(driver, "!!document.getElementById('done')")
        assert severe_logs(driver) == []
    finally:
        stop_driver(driver)
        server.shutdown()
        server.server_close()
    with sqlite3.connect(root / "answers.sqlite") as conn:
        rows = conn.execute("SELECT case_id, call, quality, confidence, lesions FROM answers "
                            "WHERE reader='alice' ORDER BY created_at").fetchall()
    order = json.loads((root / "readers.json").read_text())["alice"]["order"]
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (order[0], "real", 4, 2), (order[1], "synthetic", 4, 2)]
    for row in rows:  # the clicked point is the crosshair, in world mm, on the lesion
        (point,) = json.loads(row[4])
        np.testing.assert_allclose(point, lesion, atol=1.6)
