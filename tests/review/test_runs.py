"""`gdsynth runs`: the offline dashboard comparing training runs (file level and in chromium)."""

from __future__ import annotations

import numpy as np
import pytest

from gdsynth.cli.main import main
from gdsynth.io import write_json
from gdsynth.review.runs import build_dashboard, read_run
from gdsynth.training.config import TrainConfig, save_config
from gdsynth.training.panels import panel_figure, save_figure
from tests.review.browser import severe_logs, start_driver, stop_driver

EVIL = "<script>window.__xss=1</script>"


def fake_run(root, name, *, lr, steps=6, resumed=False):
    """A run folder with the files 'gdsynth train' writes (config, metrics CSV, panels, card)."""
    run = root / name
    cfg = TrainConfig()
    cfg.name = EVIL
    cfg.optim.lr_g = lr
    save_config(cfg, run / "config.yaml")
    parts = [(0, steps // 2), (steps // 2, steps)] if resumed else [(0, steps)]
    for version, (a, b) in enumerate(parts):
        lines = ["epoch,step,train/loss_g,train/lr_g,train/grad_norm_g,val/mae_brain"]
        for s in range(a, b):
            val = f"{0.5 / (s + 1):.4f}" if s % 2 else ""
            lines.append(f"0,{s},{10.0 / (s + 1) + lr},{lr},{1.0 + s},{val}")
        (run / "logs" / f"version_{version}").mkdir(parents=True)
        (run / "logs" / f"version_{version}" / "metrics.csv").write_text("\n".join(lines) + "\n")
    rng = np.random.default_rng(0)
    for step in (2, 4, 6):
        img = rng.random((16, 16))
        save_figure(panel_figure(img, img, img, img > 0.9), run / "panels" / f"val-step{step:07d}.png")
    write_json(run / "metrics.json", {"steps": steps, "val": {"val/mae_brain": 0.05 + lr}})
    return run


def test_read_run_merges_resumed_logs_and_final_metrics(tmp_path):
    run = read_run(fake_run(tmp_path, "a", lr=0.001, resumed=True))
    assert [s for s, _ in run.series["train/loss_g"]] == list(range(6))
    assert run.final == {"steps": 6, "val/mae_brain": pytest.approx(0.051)}
    assert len(run.panels) == 3


def test_not_a_run_is_refused(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert main(["runs", str(tmp_path / "empty"), "-o", str(tmp_path / "p.html")]) == 2
    assert "not a training run" in capsys.readouterr().err
    assert not (tmp_path / "p.html").exists()


@pytest.mark.browser
def test_dashboard_in_chromium(tmp_path):
    a = fake_run(tmp_path, "baseline", lr=0.0002)
    b = fake_run(tmp_path, "faster", lr=0.001, resumed=True)
    page = build_dashboard([a, b], tmp_path / "out" / "runs.html")
    html = page.read_text()
    assert EVIL not in html and "&lt;script&gt;" in html
    assert "http://" not in html and "https://" not in html  # nothing from the network
    driver = start_driver()
    try:
        driver.get(page.as_uri())
        curves = driver.execute_script(
            "return Array.from(document.querySelectorAll('img.curve'))"
            ".map(i => [i.alt, i.complete && i.naturalWidth > 100])")
        assert {k for k, ok in curves if ok} >= {"train/loss_g", "train/lr_g",
                                                 "train/grad_norm_g", "val/mae_brain"}
        differs = driver.execute_script(
            "return Array.from(document.querySelectorAll('#config tr.differs')).map(r => ["
            "r.cells[0].textContent, getComputedStyle(r.cells[1]).backgroundColor])")
        assert [k for k, _ in differs] == ["optim.lr_g"]  # the one difference, highlighted
        assert differs[0][1] not in ("rgba(0, 0, 0, 0)", "transparent", "rgb(255, 255, 255)")
        same = driver.execute_script(
            "return getComputedStyle(document.querySelector('#config tr:not(.differs) td'))"
            ".backgroundColor")
        assert same != differs[0][1]
        assert driver.execute_script("return document.querySelectorAll('img.panel').length") == 6
        assert driver.execute_script("return window.__xss === undefined")
        final = driver.find_element("id", "final-metrics").text
        assert "val/mae_brain 0.0502 0.051" in final and "steps 6 6" in final
        assert severe_logs(driver) == []
    finally:
        stop_driver(driver)
