"""`gdsynth synthesize | detect | predict` through the console entry point."""

from __future__ import annotations

import pytest

from gdsynth.cli.main import main
from gdsynth.inference import cohort
from gdsynth.inference import outputs as O
from gdsynth.io import read_tsv
from gdsynth.io.bids import Exam, discover
from tests.inference.conftest import simple_prepare

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


@pytest.fixture(autouse=True)
def fast_prepare(monkeypatch):
    monkeypatch.setattr(cohort, "prepare_exam", simple_prepare)


def test_cli_cohort_shards_then_resume(cohort, model_dir, tmp_path, capsys):
    (cohort / "sub-03" / "anat" / "sub-03_T1w.nii.gz").write_bytes(b"garbage")
    out = tmp_path / "out"
    base = [str(cohort), "-m", str(model_dir), "-o", str(out), "--device", "cpu"]
    assert main(["-q", "synthesize", *base, "--shard", "0/2", "--mc-samples", "2"]) == 1
    assert "sub-03" in capsys.readouterr().err
    assert main(["-q", "synthesize", *base, "--shard", "1/2", "--mc-samples", "2", "--workers", "1"]) == 0
    rows = read_tsv(out / "run_summary_shard-0-of-2.tsv") + read_tsv(out / "run_summary_shard-1-of-2.tsv")
    assert sorted(r["exam"] for r in rows) == [e.id for e in discover(cohort)]
    assert main(["-q", "detect", *base, "--participant-label", "01"]) == 0  # settings follow synthesis
    assert O.SUMMARY.path(out, discover(cohort)[0]).is_file()
    assert main(["-q", "predict", *base, "--mc-samples", "2", "--participant-label", "01"]) == 0
    assert read_tsv(out / "run_summary.tsv")[0]["status"] == "skipped"


def test_cli_single_exam(cohort, model_dir, tmp_path):
    anat = cohort / "sub-02" / "anat"
    out = tmp_path / "single"
    args = ["-q", "predict", "--t1w", str(anat / "sub-02_T1w.nii.gz"), "--t2w", str(anat / "sub-02_T2w.nii.gz"),
            "--flair", str(anat / "sub-02_FLAIR.nii.gz"), "--subject", "P7", "-m", str(model_dir),
            "-o", str(out), "--device", "cpu"]
    assert main(args) == 0
    assert O.SUMMARY.path(out, Exam("P7")).is_file()
    assert main([*args[:2], str(cohort), *args[2:]]) == 2  # both a folder and files: refused
