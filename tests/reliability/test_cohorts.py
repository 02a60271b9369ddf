"""Cohorts that look right and are not (issue #17.3, #17.8): files named for another subject
inside a subject's folder, a symlinked subject, an exam beside session folders, and cohort tables
with a byte-order mark or in another encoding."""

from __future__ import annotations

import json
import shutil
import warnings
from pathlib import Path

import pytest

from gdsynth.errors import BidsError
from gdsynth.inference import outputs as O
from gdsynth.io import read_tsv
from gdsynth.io.bids import Exam, discover, read_table
from gdsynth.preprocess.quality import label_problems
from tests.reliability.common import SEQUENCES, run_cli, traceback_free, tree_hashes

pytestmark = pytest.mark.filterwarnings("ignore::RuntimeWarning")


def _anat(phantom4: Path) -> Path:
    return phantom4 / "sub-001" / "anat"


def _exam(root: Path, folder: str, label: str, phantom4: Path) -> None:
    anat = root / folder / "anat"
    anat.mkdir(parents=True)
    for seq in SEQUENCES:
        shutil.copyfile(_anat(phantom4) / f"sub-001_{seq}.nii.gz", anat / f"sub-{label}_{seq}.nii.gz")


def test_misfiled_and_symlinked_subjects_are_referred(phantom4, zero_model, tmp_path):
    root = tmp_path / "bids"
    _exam(root, "sub-01", "01", phantom4)
    _exam(root, "sub-02", "01", phantom4)  # files of sub-01 filed under sub-02
    (root / "sub-03").symlink_to(root / "sub-01", target_is_directory=True)  # a symlinked subject
    _exam(root, "sub-04", "04", phantom4)  # sub-04/anat beside sub-04/ses-1/anat
    _exam(root, "sub-04/ses-1", "04_ses-1", phantom4)
    before = tree_hashes(root)
    out = tmp_path / "out"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = run_cli(["-q", "predict", str(root), "-m", str(zero_model), "-o", str(out),
                          "--device", "cpu"])
    assert result.code == 0 and traceback_free(result.stderr), result.stderr
    assert tree_hashes(root) == before
    said = [str(w.message) for w in caught if "beside its session folders" in str(w.message)]
    assert len(said) == 1 and str(root / "sub-04" / "anat") in said[0]
    rows = {r["exam"]: r["status"] for r in read_tsv(out / "run_summary.tsv")}
    assert rows == dict.fromkeys(["sub-01", "sub-02", "sub-03", "sub-04", "sub-04_ses-1"], "done")

    def summary(exam: Exam) -> dict:
        return json.loads(O.SUMMARY.path(out, exam).read_text())

    for good in (Exam("01"), Exam("04"), Exam("04", "1")):
        assert summary(good)["refer_for_gadolinium"] is False, summary(good)["reason"]
    for bad in ("02", "03"):
        record = summary(Exam(bad))
        assert record["refer_for_gadolinium"] is True
        assert record["reason"].startswith("quality: sub labels disagree"), record["reason"]
        assert f"sub-{bad}" in record["reason"] and "sub-01" in record["reason"]
        assert record["detection"]["quality_flags"]


def test_relabelled_single_exam_or_table_is_not_flagged(tmp_path):
    """A pseudonym given with --subject or in a table is not a mismatch; files that disagree
    among themselves are."""
    a = tmp_path / "sub-07" / "anat"
    a.mkdir(parents=True)
    files = {s: a / f"sub-07_{s}.nii.gz" for s in SEQUENCES}
    pre = {k: files[k] for k in ("T1w", "T2w", "FLAIR")}
    assert label_problems(Exam("P1", None, pre)) == []
    mixed = Exam("P1", None, {**pre, "T2w": a / "sub-08_T2w.nii.gz"})
    assert label_problems(mixed) and "sub-08" in label_problems(mixed)[0]
    bids = Exam("09", None, files, extra={"bids_folder": str(a)})
    assert label_problems(bids) and "sub-09" in label_problems(bids)[0]


@pytest.mark.parametrize("delimiter", ["\t", ","])
def test_cohort_table_with_byte_order_mark(tmp_path, delimiter):
    ext = ".tsv" if delimiter == "\t" else ".csv"
    table = tmp_path / f"cohort{ext}"
    header = delimiter.join(["subject", "t1w", "t2w", "flair"])
    row = delimiter.join(["01", "a/T1w.nii.gz", "a/T2w.nii.gz", "a/FLAIR.nii.gz"])
    table.write_bytes(("\ufeff" + header + "\n" + row + "\n").encode("utf-8"))
    exams = discover(table)
    assert [e.subject for e in exams] == ["01"] and exams[0].t1w == tmp_path / "a" / "T1w.nii.gz"


def test_cohort_table_not_utf8_named(tmp_path):
    table = tmp_path / "cohort.tsv"
    table.write_bytes("subject\tt1w\nJosé\tx.nii.gz\n".encode("latin-1"))
    with pytest.raises(BidsError) as info:
        read_table(table)
    assert str(table) in str(info.value) and "not UTF-8" in str(info.value)


def test_quality_measures_are_json_without_nan():
    """A flat sequence gives undefined correlations: flagged, and stored as null (the prep cache's
    provenance JSON refuses NaN)."""
    import numpy as np

    from gdsynth.io import Geometry
    from gdsynth.preprocess.quality import exam_quality

    grid = Geometry((20, 20, 20), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0))
    t1 = np.random.default_rng(0).uniform(0.5, 1.1, grid.shape).astype(np.float32)
    brain = np.zeros(grid.shape, bool)
    brain[4:16, 4:16, 4:16] = True
    measures, flags = exam_quality(Exam("01"), {"T1w": t1, "FLAIR": np.ones_like(t1)}, brain, grid,
                                   t1w_brain=(brain, grid), moving={"FLAIR": grid},
                                   registration={})
    json.dumps(measures, allow_nan=False)
    assert measures["FLAIR"]["edge_agreement"] is None
    assert any("FLAIR does not line up" in f for f in flags)
