"""End to end: `gdsynth demo` runs the whole CLI chain on a tiny phantom with a tiny model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gdsynth.cli.main import main


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> Path:
    import torch

    from gdsynth.models import UNetGenerator
    from gdsynth.models.card import ModelCard
    from gdsynth.models.folder import save_model_folder

    torch.manual_seed(0)
    generator = UNetGenerator(in_channels=9, features=4, depth=2, max_features=8)
    card = ModelCard(architecture={"name": "unet", "kwargs": generator.kwargs}, spacing_mm=2.0,
                     name="tiny-test-model")
    return save_model_folder(tmp_path_factory.mktemp("model") / "tiny", generator, card)


@pytest.mark.timeout(1800)  # ~1-2 min on a quiet 2-core machine; generous for loaded ones
def test_demo_runs_the_chain_and_resumes(tmp_path: Path, tiny_model: Path, capsys):
    out = tmp_path / "demo"
    args = ["--quiet", "demo", "--out", str(out), "--subjects", "2", "--model", str(tiny_model),
            "--mc-samples", "2"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "gdsynth demo: 2 phantom exams" in text and "F1" in text
    pred = out / "bids" / "derivatives" / "gdsynth"
    summaries = sorted(pred.rglob("*_desc-activity_summary.json"))
    assert len(summaries) == 2
    assert 0.0 <= json.loads(summaries[0].read_text())["probability_active"] <= 1.0
    assert sorted(pred.rglob("*_desc-uncertainty_map.nii.gz"))
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert summary["n_evaluated"] == 2
    assert (out / "review" / "index.html").is_file()
    stamp = summaries[0].stat().st_mtime_ns
    assert main(args) == 0  # a second run resumes: nothing is recomputed
    assert summaries[0].stat().st_mtime_ns == stamp
