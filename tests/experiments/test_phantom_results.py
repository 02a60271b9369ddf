"""experiments/phantom_results.py at the tiniest scale: a row per method with numbers; a rerun is a
no-op (every stage comes from the cache)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.utils import load_experiment


def _tiny_model(folder: Path) -> Path:
    import torch

    from gdsynth.models import UNetGenerator
    from gdsynth.models.card import ModelCard
    from gdsynth.models.folder import save_model_folder

    torch.manual_seed(0)
    g = UNetGenerator(in_channels=9, features=4, depth=2, max_features=8)
    card = ModelCard(architecture={"name": "unet", "kwargs": g.kwargs}, spacing_mm=2.0)
    return save_model_folder(folder, g, card)


@pytest.mark.slow
def test_tiny_results_table_and_resume(tmp_path, capsys):
    script = load_experiment("phantom_results")
    model = _tiny_model(tmp_path / "tiny")
    card_before = (model / "model_card.json").read_bytes()
    table, js = tmp_path / "results.md", tmp_path / "results.json"
    argv = ["--work", str(tmp_path / "work"), "--model", f"tiny={model}", "--resolution", "2",
            "--cal-subjects", "2", "--test-subjects", "2", "--mc-samples", "1",
            "--out-table", str(table), "--out-json", str(js)]
    assert script.main(argv) == 0
    assert (model / "model_card.json").read_bytes() == card_before  # input folder untouched
    calibrated = json.loads((tmp_path / "work" / "models" / "tiny" / "model_card.json").read_text())
    assert calibrated["detection"]["calibration_info"]["n_cases"] == 2

    metrics_part = table.read_text().split("## Where the time went")[0]
    rows = [r for r in metrics_part.splitlines() if r.startswith("| ")]
    header, body = rows[0], rows[1:]
    methods = {r.split("|")[1].strip(): [c.strip() for c in r.split("|")[2:-1]] for r in body}
    assert {"tiny", "post=pre", "FLAIR heuristic"} <= set(methods)
    cols = [c.strip() for c in header.split("|")[2:-1]]
    for name in ("tiny", "post=pre", "FLAIR heuristic"):
        cells = dict(zip(cols, methods[name], strict=True))
        assert cells["exams"] == "2"
        for key in ("lesion sens.", "FP/scan", "AUC"):
            float(cells[key])  # numeric, not n/a
    for name in ("tiny", "post=pre"):  # both synthesize: synthesis metrics are numbers
        assert float(dict(zip(cols, methods[name], strict=True))["SSIM"]) > 0
    data = json.loads(js.read_text())
    assert set(data["summaries"]) == set(methods)
    assert {"prepare test", "predict test tiny", "evaluate post=pre"} <= set(data["timings"])

    capsys.readouterr()
    first = table.read_text()
    assert script.main(argv) == 0
    out = capsys.readouterr().out
    assert "none, all cached" in out
    assert table.read_text() == first
