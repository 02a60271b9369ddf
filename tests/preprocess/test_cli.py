"""`gdsynth prepare` on a tiny dataset: one good exam, one lacking FLAIR; batch goes on."""

from gdsynth.cli.main import main
from tests.preprocess import synth


def test_prepare_cli_reports_failures_and_skips_done(tmp_path, capsys):
    bids = tmp_path / "bids"
    synth.make_exam(bids, "01", t1_spacing=3.0, sequences=("T1w", "T2w", "FLAIR"))
    synth.make_exam(bids, "02", t1_spacing=3.0, sequences=("T1w", "T2w"))
    args = ["--quiet", "prepare", str(bids), "--no-n4"]
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "1 done" in err and "1 failed" in err
    assert "sub-02" in err and "FLAIR" in err
    prov = bids / "derivatives" / "gdsynth-prep" / "sub-01" / "anat" / "sub-01_desc-prep_provenance.json"
    assert prov.exists()
    assert main(["--quiet", "prepare", str(bids), "--no-n4", "--participant-label", "01"]) == 0
    assert "1 skipped" in capsys.readouterr().err
    out = tmp_path / "prep"
    code = main(["--quiet", "prepare", str(bids), "--no-n4", "--out", str(out),
                 "--sequence", "T1w", "--sequence", "T2w", "--spacing", "4"])
    assert code == 0
    assert (out / "sub-02" / "anat" / "sub-02_desc-preproc_T2w.nii.gz").exists()
    assert not (out / "sub-02" / "anat" / "sub-02_desc-preproc_FLAIR.nii.gz").exists()
