"""BIDS discovery, cohort tables and derivative naming."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from gdsynth.errors import BidsError, InputFileMissingError, MissingSequenceError
from gdsynth.io.bids import (
    Exam,
    derivative_path,
    discover,
    read_table,
    write_dataset_description,
)


def _touch(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"x")
    return path


@pytest.fixture
def bids(tmp_path: Path) -> Path:
    root = tmp_path / "bids"
    a = root / "sub-01" / "ses-02" / "anat"
    for name in ("T1w", "T2w", "FLAIR", "ce-gadolinium_T1w"):
        _touch(a / f"sub-01_ses-02_{name}.nii.gz")
    _touch(a / "sub-01_ses-02_T1w.json")
    b = root / "sub-02" / "anat"
    for name in ("T1w", "T2w"):
        _touch(b / f"sub-02_{name}.nii.gz")
    _touch(root / "derivatives" / "x" / "sub-01" / "anat" / "sub-01_T1w.nii.gz")
    (root / "dataset_description.json").write_text('{"Name": "t", "BIDSVersion": "1.9.0"}')
    return root


def test_discover_two_subjects(bids: Path):
    exams = discover(bids)
    assert [e.prefix for e in exams] == ["sub-01_ses-02", "sub-02"]
    one, two = exams
    assert one.session == "02"
    assert one.t1w.name == "sub-01_ses-02_T1w.nii.gz"
    assert one.t1w_gd.name == "sub-01_ses-02_ce-gadolinium_T1w.nii.gz"
    assert one.missing() == []
    assert two.flair is None and two.t1w_gd is None
    assert two.missing() == ["FLAIR"]
    assert two.missing(["T1w", "T2w"]) == []
    with pytest.raises(MissingSequenceError, match="FLAIR"):
        two.require()


def test_participant_filter(bids: Path):
    assert [e.subject for e in discover(bids, ["sub-02"])] == ["02"]
    assert [e.subject for e in discover(bids, ["01"])] == ["01"]
    with pytest.raises(BidsError, match="99"):
        discover(bids, ["99"])


def test_not_bids(tmp_path: Path):
    with pytest.raises(BidsError):
        discover(tmp_path)
    with pytest.raises(InputFileMissingError):
        discover(tmp_path / "missing")


def test_table(tmp_path: Path):
    _touch(tmp_path / "img" / "a_t1.nii.gz")
    table = tmp_path / "cohort.csv"
    table.write_text("subject,t1w,t2w,flair,t1w_gd\nP01,img/a_t1.nii.gz,n/a,img/f.nii.gz,\n")
    (exam,) = discover(table)
    assert exam.subject == "P01" and exam.t1w == tmp_path / "img" / "a_t1.nii.gz"
    assert exam.t2w is None and exam.t1w_gd is None
    assert exam.missing() == ["T2w"]
    bad = tmp_path / "bad.tsv"
    bad.write_text("subject\tt1w\n../etc\tx.nii.gz\n")
    with pytest.raises(BidsError, match="alphanumeric"):
        read_table(bad)


def test_derivative_path_and_description(tmp_path: Path):
    exam = Exam("01", "02")
    p = derivative_path(tmp_path, exam, "T1w", ce="gadolinium", desc="synthetic")
    assert p == tmp_path / "sub-01/ses-02/anat/sub-01_ses-02_ce-gadolinium_desc-synthetic_T1w.nii.gz"
    q = derivative_path(tmp_path, Exam("03"), "lesions", ext=".tsv", desc="enhancing")
    assert q.name == "sub-03_desc-enhancing_lesions.tsv"
    with pytest.raises(ValueError):
        derivative_path(tmp_path, exam, "T1w", desc="../x")
    write_dataset_description(tmp_path, "gdsynth")
    desc = json.loads((tmp_path / "dataset_description.json").read_text())
    assert desc["DatasetType"] == "derivative"
    assert desc["GeneratedBy"][0]["Name"] == "gdsynth"
