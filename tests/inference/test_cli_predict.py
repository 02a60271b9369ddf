"""`gdsynth synthesize | detect | predict` through the console entry point."""

from __future__ import annotations

import pytest

from gdsynth.cli.main import main
from gdsynth.inference import cohort
from gdsynth.inference import outputs as O
from gdsynth.io import read_tsv
from gdsynth.io.bids import Exam, discover
from tests.fixtures.inference import simple_prepare

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


def _single(anat, sub: str, out, model_dir, *extra: str) -> list[str]:
    return ["-q", "predict", "--t1w", str(anat / f"sub-{sub}_T1w.nii.gz"),
            "--t2w", str(anat / f"sub-{sub}_T2w.nii.gz"), "--flair", str(anat / f"sub-{sub}_FLAIR.nii.gz"),
            "-m", str(model_dir), "-o", str(out), "--device", "cpu", *extra]


def test_single_exam_label_from_the_bids_name_and_never_silently_replaced(cohort, model_dir,
                                                                          tmp_path, capsys):
    """#20: without --subject the label comes from the T1w's BIDS name (it was always sub-01, so a
    second exam into the same -o replaced the first one's results); another exam under an
    existing label is refused, its outputs untouched, unless --overwrite."""
    out = tmp_path / "single"
    assert main(_single(cohort / "sub-02" / "anat", "02", out, model_dir)) == 0
    summary = O.SUMMARY.path(out, Exam("02"))
    assert summary.is_file() and not (out / "sub-01").exists()
    assert main(_single(cohort / "sub-04" / "anat", "04", out, model_dir)) == 0
    assert O.SUMMARY.path(out, Exam("04")).is_file()
    stamp = summary.stat().st_mtime_ns
    capsys.readouterr()
    other = _single(cohort / "sub-04" / "anat", "04", out, model_dir, "--subject", "sub-02")
    assert main(other) == 2
    err = capsys.readouterr().err
    assert "sub-02" in err and "other" in err and "--overwrite" in err
    assert summary.stat().st_mtime_ns == stamp
    assert main([*other, "--overwrite"]) == 0
    assert summary.stat().st_mtime_ns != stamp
    assert main(_single(cohort / "sub-02" / "anat", "02", out, model_dir)) == 2  # now sub-04's
    anon = tmp_path / "anon_T1w.nii.gz"
    anon.write_bytes((cohort / "sub-02" / "anat" / "sub-02_T1w.nii.gz").read_bytes())
    args = _single(cohort / "sub-02" / "anat", "02", tmp_path / "anon", model_dir)
    args[args.index("--t1w") + 1] = str(anon)
    assert main(args) == 2 and "--subject" in capsys.readouterr().err
    assert not (tmp_path / "anon").exists()


@pytest.mark.parametrize("t1w", ["missing_T1w.nii.gz", "garbage_T1w.nii.gz"])
def test_a_wrong_t1w_fails_before_any_folder_is_made(cohort, model_dir, tmp_path, t1w, capsys):
    (tmp_path / "garbage_T1w.nii.gz").write_bytes(b"not an image")
    args = _single(cohort / "sub-02" / "anat", "02", tmp_path / "out" / "deep", model_dir)
    args[args.index("--t1w") + 1] = str(tmp_path / t1w)
    assert main(args) == 2
    assert t1w in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_participant_labels_in_the_bids_apps_form(cohort, model_dir, tmp_path):
    """``--participant-label 01 sub-03`` (fMRIPrep/MRIQC form) as well as the repeated flag."""
    out = tmp_path / "out"
    base = ["-q", "synthesize", "-m", str(model_dir), "-o", str(out), "--device", "cpu"]
    assert main([*base, "--participant-label", "01", "sub-03", str(cohort)]) == 0
    assert sorted(r["exam"] for r in read_tsv(out / "run_summary.tsv")) == ["sub-01", "sub-03"]
    assert main(["-q", "synthesize", str(cohort), *base[2:], "--participant-label", "01",
                 "--participant-label", "03"]) == 0
    assert {r["status"] for r in read_tsv(out / "run_summary.tsv")} == {"skipped"}


def test_old_names_resume_detect_and_review(cohort, model_dir, tmp_path):
    """A folder written by gdsynth 0.1 (``_desc-enhancement_map``, ``_label-L_desc-enhancing_dseg``)
    still resumes: detect reads the old enhancement map, review finds the old files (#20)."""
    from gdsynth.io.bids import GdsynthDeprecationWarning
    from gdsynth.review.exams import collect

    out = tmp_path / "out"
    base = [str(cohort), "-m", str(model_dir), "-o", str(out), "--device", "cpu",
            "--participant-label", "01"]
    assert main(["-q", "synthesize", *base]) == 0
    exam = discover(cohort, ["01"])[0]
    new = O.ENHANCEMENT.path(out, exam)
    old = new.with_name(new.name.replace("_desc-enhancement_T1w", "_desc-enhancement_map"))
    new.rename(old)
    with pytest.warns(GdsynthDeprecationWarning):
        assert main(["-q", "detect", *base]) == 0
    assert O.SUMMARY.path(out, exam).is_file()
    labels = O.LESION_LABELS.path(out, exam)
    labels.rename(labels.with_name(labels.name.replace("_desc-enhancing", "_label-L_desc-enhancing")))
    with pytest.warns(GdsynthDeprecationWarning):
        files = collect(out, cohort)[0].files
    assert files["enhancement"] == old and "_label-L_" in files["lesions"].name
