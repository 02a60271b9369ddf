"""The review site in headless chromium: viewer renders, lesion rows move the crosshair,
text is shown as text, and the site works both from file:// and over http."""

from __future__ import annotations

import functools
import http.server
import os
import threading

import numpy as np
import pytest

from gdsynth.io.bids import Exam
from gdsynth.review.exams import collect
from gdsynth.review.site import SiteOptions, build_exam, build_site
from tests.fixtures.review import make_cohort
from tests.review.browser import image_pixels, severe_logs, start_driver, stop_driver, wait_for

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def driver():
    d = start_driver()
    yield d
    stop_driver(d)


@pytest.fixture(scope="module")
def site(cohort, tmp_path_factory):
    bids, pred = cohort
    out = tmp_path_factory.mktemp("site")
    build_site(pred, bids, out)
    return out


def _open_exam(driver, url):
    """Open an exam page and wait for its viewer (a page already open is reused: ~10 s each)."""
    ready = driver.execute_script("return window.gdViewerReady === true")
    if driver.current_url != url or not ready:
        driver.get(url)
    wait_for(driver, "window.gdViewerReady === true || !!window.gdViewerError")
    assert driver.execute_script("return window.gdViewerError || null") is None


def _loaded_scripts(driver) -> list[str]:
    """The volume scripts the page has inserted (one <script> per loaded volume). Chromium keeps
    no resource-timing entries for file:// pages, so the script elements are counted."""
    return driver.execute_script(
        "return Array.from(document.scripts).map(s => s.src)"
        ".filter(n => n.includes('/data/')).map(n => n.split('/').pop())")


def test_exam_page_ready_loading_each_volume_once(driver, site):
    """The exam page gets ready in headless chromium from file://, each volume read once, the
    uncertainty overlay (off) only when switched on. The ready time is printed, not asserted:
    shared CI machines are too noisy for a timed unit test; the 10 s budget is checked by
    ``benchmarks/review_page_ready.py``."""
    driver.get("about:blank")
    driver.get((site / "exam-e001.html").as_uri())
    wait_for(driver, "window.gdViewerReady === true || !!window.gdViewerError")
    ready_s = driver.execute_script("return window.gdViewerReadyMs") / 1000
    load = os.getloadavg()[0] / (os.cpu_count() or 1)
    print(f"exam page ready in {ready_s:.2f} s (load average {load:.1f} per CPU)")
    assert driver.execute_script("return window.gdViewerError || null") is None
    assert ready_s > 0
    scripts = _loaded_scripts(driver)
    assert sorted(scripts) == sorted(set(scripts))  # no file read twice
    assert "outline.js" in scripts and "uncertainty.js" not in scripts
    driver.find_element("css selector", "input[data-overlay='uncertainty']").click()
    wait_for(driver, "gdViewer.overlays.some(o => o.key === 'uncertainty')"
                     " && document.getElementById('status').textContent === 'ready'")
    assert _loaded_scripts(driver).count("uncertainty.js") == 1
    assert driver.execute_script(
        "return gdViewer.overlays.filter(o => o.key === 'uncertainty').map(o => o.nv.volumes[o.index].opacity)"
    ) == [pytest.approx(0.6)]  # the synthetic panel only, shown


def test_index_opens_exam_from_disk(driver, site):
    driver.get((site / "index.html").as_uri())
    driver.find_element("css selector", "#cohort tbody tr td a").click()
    wait_for(driver, "window.gdViewerReady === true || !!window.gdViewerError")
    assert driver.execute_script("return window.gdViewerError || null") is None


def test_exam_page_renders_offline_without_errors(driver, site):
    driver.get_log("browser")  # clear
    _open_exam(driver, (site / "exam-e001.html").as_uri())
    assert severe_logs(driver) == []
    canvases = driver.find_elements("css selector", "canvas.nv-canvas")
    assert len(canvases) == 5  # T1w, T2w, FLAIR, synthetic, real
    for canvas in canvases:
        pixels = image_pixels(canvas)
        assert pixels.size > 2000 and np.std(pixels) > 0.05  # grey image content, not blank
    assert driver.execute_script("return gdViewer.instances[0].opts.isRadiologicalConvention")


def test_lesion_row_moves_every_crosshair(driver, site):
    _open_exam(driver, (site / "exam-e001.html").as_uri())
    before = driver.execute_script("return gdViewer.crosshairMM()")
    rows = driver.find_elements("css selector", "tr.lesion")
    target = [float(rows[1].get_attribute(f"data-{a}")) for a in "xyz"]
    rows[1].click()
    after = driver.execute_script(
        "return gdViewer.instances.map(nv => Array.from(nv.frac2mm(nv.scene.crosshairPos)).slice(0, 3))"
    )
    assert len(after) == 5
    assert not np.allclose(before, target, atol=1.0)
    for mm in after:  # every view, whatever its grid, now sits on the lesion (within a voxel)
        np.testing.assert_allclose(mm, target, atol=1.6)
    assert "crosshair" in driver.find_element("id", "location").text


def test_threshold_and_overlay_controls(driver, site):
    _open_exam(driver, (site / "exam-e001.html").as_uri())
    driver.execute_script(
        "const s = document.getElementById('threshold'); s.value = s.max / 2;"
        "s.dispatchEvent(new Event('input'));"
    )
    cal = driver.execute_script(
        "return [gdViewer.threshold('enhancement'), Number(document.getElementById('threshold').max)]"
    )
    assert cal[0] == pytest.approx(cal[1] / 2, rel=0.05)  # value units, whatever the storage
    driver.find_element("css selector", "input[data-overlay='outline']").click()
    assert driver.execute_script(
        "return gdViewer.overlays.filter(o => o.key === 'outline').every(o => o.nv.volumes[o.index].opacity === 0)"
    )


def test_cohort_page_sorts(driver, site):
    driver.get((site / "index.html").as_uri())
    wait_for(driver, "document.querySelectorAll('#cohort th').length > 1 && "
                     "document.querySelectorAll('#cohort tbody tr').length > 1")
    header = driver.find_elements("css selector", "#cohort th")[1]  # P(active)
    header.click()
    first = driver.find_element("css selector", "#cohort tbody tr td a").text
    header.click()
    assert driver.find_element("css selector", "#cohort tbody tr td a").text != first
    assert severe_logs(driver) == []


def test_script_in_ids_is_shown_as_text(driver, tmp_path):
    evil = "<script>window.__xss=1</script>"
    bids, pred = make_cohort(tmp_path, subjects=("01",), reason=evil)
    rx = collect(pred, bids)[0]
    rx.exam = Exam(subject=evil)
    build_exam(rx, "e001", tmp_path / "site", SiteOptions())
    from gdsynth.review.render import copy_static

    copy_static(tmp_path / "site" / "static")
    _open_exam(driver, (tmp_path / "site" / "exam-e001.html").as_uri())
    assert driver.execute_script("return window.__xss === undefined")
    assert driver.find_element("id", "exam-title").text == f"sub-{evil}"


def test_site_over_http_without_embedding(driver, cohort, tmp_path):
    bids, pred = cohort
    build_site(pred, bids, tmp_path / "site", options=SiteOptions(embed_limit_mb=0.0))
    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    handler = functools.partial(Quiet, directory=str(tmp_path / "site"))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        driver.get_log("browser")
        _open_exam(driver, f"http://127.0.0.1:{server.server_port}/exam-e002.html")
        assert severe_logs(driver) == []
        assert len(driver.find_elements("css selector", "canvas.nv-canvas")) == 4  # no real post
        assert np.std(image_pixels(driver.find_element("css selector", "canvas.nv-canvas"))) > 0.05
    finally:
        server.shutdown()
        server.server_close()


def test_clicking_one_view_moves_the_others(driver, site):
    from selenium.webdriver import ActionChains

    _open_exam(driver, (site / "exam-e001.html").as_uri())
    canvas = driver.find_elements("css selector", "canvas.nv-canvas")[0]
    before = driver.execute_script("return gdViewer.crosshairMM()")
    ActionChains(driver).move_to_element_with_offset(canvas, 25, -30).click().perform()
    wait_for(driver, "gdViewer.crosshairMM()[1] !== arguments_0".replace("arguments_0", str(before[1])))
    views = driver.execute_script(
        "return gdViewer.instances.map(nv => Array.from(nv.frac2mm(nv.scene.crosshairPos)).slice(0, 3))"
    )
    assert not np.allclose(views[0][:2], before[:2], atol=1.0)
    for mm in views[1:]:
        np.testing.assert_allclose(mm, views[0], atol=1.6)
