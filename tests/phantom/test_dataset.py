"""The written dataset: BIDS names and metadata, determinism, resuming, refusing foreign folders."""

from __future__ import annotations

import json
import re

import pytest

from gdsynth.cli.main import main
from gdsynth.errors import OutputError
from gdsynth.io import file_sha256, read_tsv
from gdsynth.io.bids import discover
from gdsynth.phantom import generate_dataset
from tests.fixtures.phantom import SEED, SITES

_RAW = re.compile(r"^sub-\d{3}_(ce-gadolinium_)?(T1w|T2w|FLAIR)\.(nii\.gz|json)$")
_TRUTH = re.compile(
    r"^sub-\d{3}_(desc-enhancing_dseg|label-L_desc-all_mask|desc-brain_mask"
    r"|label-(WM|GM|CSF)_probseg|label-vessel_mask)\.(nii\.gz|json)$"
    r"|^sub-\d{3}_(lesions\.tsv|lesions\.json|headmotion\.json|desc-enhancing_dseg\.tsv)$"
)


def test_bids_layout_and_metadata(cohort):
    found = discover(cohort)
    assert [e.subject for e in found] == ["001", "002"]
    assert all(not e.missing(("T1w", "T2w", "FLAIR", "T1w_gd")) for e in found)
    raw = sorted(p.name for p in cohort.glob("sub-*/anat/*"))
    assert len(raw) == 16 and all(_RAW.match(n) for n in raw), raw
    truth = sorted(p.name for p in (cohort / "derivatives/phantom").glob("sub-*/anat/*"))
    assert len(truth) == 36 and all(_TRUTH.match(n) for n in truth), truth
    desc = json.loads((cohort / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "raw"
    deriv = json.loads((cohort / "derivatives/phantom/dataset_description.json").read_text())
    assert deriv["DatasetType"] == "derivative"
    rows = read_tsv(cohort / "participants.tsv")
    assert [r["participant_id"] for r in rows] == ["sub-001", "sub-002"]
    assert [r["site"] for r in rows] == list(SITES)
    assert all(int(r["n_active_lesions"]) >= 1 for r in rows)


def test_sidecars_hold_sequence_parameters_in_seconds(cohort):
    for path in cohort.glob("sub-*/anat/*.json"):
        meta = json.loads(path.read_text())
        assert 0 < meta["RepetitionTime"] < 20 and 0 < meta["EchoTime"] < 0.5
        assert "FlipAngle" in meta
        if "FLAIR" in path.name:
            assert 1.5 < meta["InversionTime"] < 3.5
        if "ce-gadolinium" in path.name:
            assert meta["ContrastBolusIngredient"] == "GADOLINIUM"
        assert not {"PatientName", "PatientID", "PatientBirthDate"} & set(meta)


def test_same_seed_same_bytes_and_subject_independent_of_cohort_size(cohort, tmp_path):
    """Serial CLI run of 1 subject == sub-001 of the 2-subject parallel run, byte for byte."""
    out = tmp_path / "one"
    code = main(["-q", "phantom", str(out), "--subjects", "1", "--seed", str(SEED),
                 "--resolution", "2", "--active-fraction", "1", "--sites", ",".join(SITES)])
    assert code == 0
    files = sorted(p.relative_to(out) for p in out.rglob("sub-001*") if p.is_file())
    assert len(files) == 26  # 8 raw images + sidecars, 18 truth files (#20: sidecars, dseg.tsv)
    for rel in files:
        assert file_sha256(out / rel) == file_sha256(cohort / rel), rel


def test_resume_skips_complete_subjects_and_refuses_other_parameters(cohort, tmp_path):
    before = file_sha256(cohort / "sub-001/anat/sub-001_T1w.nii.gz")
    mtime = (cohort / "sub-001/anat/sub-001_T1w.nii.gz").stat().st_mtime_ns
    exams = generate_dataset(cohort, subjects=2, seed=SEED, resolution=2, active_fraction=1.0,
                             sites=SITES)
    assert len(exams) == 2
    assert (cohort / "sub-001/anat/sub-001_T1w.nii.gz").stat().st_mtime_ns == mtime
    assert file_sha256(cohort / "sub-001/anat/sub-001_T1w.nii.gz") == before
    with pytest.raises(OutputError, match="another seed"):
        generate_dataset(cohort, subjects=2, seed=SEED + 1, resolution=2, sites=SITES)


def test_refuses_non_empty_foreign_folder(tmp_path):
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(OutputError, match="not a gdsynth phantom"):
        generate_dataset(tmp_path, subjects=1, seed=0, resolution=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]
