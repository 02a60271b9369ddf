"""End to end: `gdsynth demo` runs the whole CLI chain on a tiny phantom with a tiny model."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
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
    assert sorted(pred.rglob("*_desc-uncertainty_T1w.nii.gz"))
    summary = json.loads((out / "evaluation" / "summary.json").read_text())
    assert summary["n_evaluated"] == 2
    # honest exam summary (#20): truly active count, sens/spec/NPV, missed exams = the table's
    patient = summary["patient"]
    assert f"{patient['n_exams']} exams, {patient['n_active']} truly active" in text
    assert "sensitivity" in text and "specificity" in text and "NPV" in text
    table = [line for line in text.splitlines() if line.strip().startswith("sub-")]
    assert len(table) == 2
    assert sorted(line.split()[0] for line in table if "MISSED" in line) == patient["missed_active"]
    for dataset in ("", "derivatives/phantom", "derivatives/gdsynth-prep", "derivatives/gdsynth"):
        errors = bids_validator_errors(out / "bids" / dataset)
        assert errors == [], f"{dataset or 'raw'}: {errors}"
    assert (out / "review" / "index.html").is_file()
    stamp = summaries[0].stat().st_mtime_ns
    assert main(args) == 0  # a second run resumes: nothing is recomputed
    assert summaries[0].stat().st_mtime_ns == stamp


def bids_validator_errors(dataset: Path) -> list[str]:
    """Errors of the official BIDS validator (``bids-validator-deno``, the test extra) on
    ``dataset``; skips the test when it is not installed or cannot run here."""
    exe = shutil.which("bids-validator-deno", path=str(Path(sys.executable).parent)) or \
        shutil.which("bids-validator-deno")
    if exe is None:
        pytest.skip("bids-validator-deno is not installed (pip install -e '.[test]')")
    try:
        run = subprocess.run([exe, str(dataset), "--format", "json"], capture_output=True,
                             text=True, timeout=300)
        issues = json.loads(run.stdout)["issues"]["issues"]
    except (OSError, subprocess.TimeoutExpired, ValueError, KeyError) as exc:
        pytest.skip(f"bids-validator-deno could not run here: {exc}")
    return [f"{i['code']} {i.get('subCode') or ''} {i.get('location')}" for i in issues
            if i.get("severity") == "error"]
