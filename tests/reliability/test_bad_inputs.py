"""Bad inputs through the user-facing command: ``gdsynth predict`` (single exam and BIDS).

Every case ends in exactly one of three documented ways, never in a traceback and never in a
silently wrong result:

* ``ok`` — processed (an automatic, lossless fix: any voxel order, oblique grid, other field of
  view/spacing, int16 with scaling, singleton 4th dimension, odd file names); the outputs lie on
  the input T1w grid and agree with the clean exam's outputs;
* ``error`` — refused with one line naming the file and the problem, non-zero exit, no result;
* ``quality`` — processed but referred for gadolinium with a ``quality:`` reason, never "no active
  lesion" (not a brain).

The model predicts no enhancement (``zero_model``), so a clean brain gives "no active lesion" and a
referral can only come from the quality checks.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from gdsynth.inference import outputs as O
from gdsynth.io import read_image, read_tsv, write_image
from gdsynth.io.bids import Exam
from gdsynth.preprocess.resample import resample
from tests.reliability import badinputs as B
from tests.reliability.common import SEQUENCES, run_cli, traceback_free, tree_hashes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")

EXAM = Exam("01")

# name: (builder, expectation, fragment of the one-line error); the culprit file is the T1w unless
# named in CULPRIT
CASES: dict[str, tuple[B.Builder, str, str]] = {
    "voxel-order-RAS": (B.voxel_order("RAS"), "ok", ""),
    "voxel-order-LPS": (B.voxel_order("LPS"), "ok", ""),
    "voxel-order-PIR": (B.voxel_order("PIR"), "ok", ""),
    "oblique-T1w": (B.oblique, "ok", ""),
    "other-fov-and-spacing": (B.other_fov_and_spacing, "ok", ""),
    "int16-with-scaling": (B.int16_scaled, "ok", ""),
    "singleton-4th-dimension": (B.singleton_4d, "ok", ""),
    "odd-file-names": (B.odd_names, "ok", ""),
    "2d-image": (B.image_2d, "error", "is 2D"),
    "2d-single-slice": (B.slab_2d, "error", "is 2D"),
    "4d-image": (B.image_4d, "error", "is 4D"),
    "nan-voxels": (B.non_finite(float("nan")), "error", "NaN or infinite"),
    "inf-voxels": (B.non_finite(float("inf")), "error", "NaN or infinite"),
    "constant-image": (B.constant(100.0), "error", "every voxel equals 100"),
    "all-zero-image": (B.constant(0.0), "error", "every voxel equals 0"),
    "truncated-gzip": (B.truncated, "error", "corrupt or truncated"),
    "truncated-inside-gzip": (B.truncated_inside_gzip, "error", "truncated"),
    "zero-byte-file": (B.zero_bytes, "error", "empty (0 bytes)"),
    "png-named-nii": (B.png_named_nii, "error", "components per voxel"),
    "text-named-nii-gz": (B.garbage_gz, "error", "not a readable image"),
    "folder-given-as-file": (B.folder_as_file, "error", "folder with no DICOM series"),
    "missing-file": (B.missing_file, "error", "not found"),
    "absurd-header-size": (B.absurd_header, "error", "above the limit"),
    "colour-image": (B.rgb_image, "error", "components per voxel"),
    "no-overlap": (B.no_overlap, "error", "does not overlap"),
    "vox-offset-348": (B.vox_offset(348.0), "error", "vox_offset 348 is below 352"),
    "vox-offset-nan": (B.vox_offset(float("nan")), "error", "vox_offset is nan"),
    "vox-offset-1e18": (B.vox_offset(1e18), "error", "not a valid data offset"),
    "pixdim-zero": (B.pixdim_zero, "error", "pixdim[1] = 0"),
    "slope-zero-with-intercept": (B.slope_zero_with_intercept, "ok", ""),
    "gzip-trailing-data": (B.trailing_gzip_data, "ok", ""),
    "non-brain-smooth-blob": (B.smooth_blob, "quality", ""),
    "non-brain-shuffled-voxels": (B.shuffled, "quality", ""),
    "not-skull-stripped": (B.bright_shell, "shell", ""),
    "T2w-FLAIR-of-another-subject": (B.other_subject, "quality", "does not line up"),
    "FLAIR-is-a-T1w-copy": (B.flair_is_t1w, "quality", "FLAIR looks like a T1w"),
    "FLAIR-covers-12-of-42-slices": (B.flair_slab, "quality", "FLAIR covers"),
    "T2w-clipped-by-its-storage-window": (B.t2w_clipped, "quality", "T2w is clipped"),
}
CULPRIT = {"missing-file": "FLAIR", "no-overlap": "FLAIR"}


def good_paths(phantom4: Path) -> dict[str, Path]:
    anat = phantom4 / "sub-001" / "anat"
    return {s: anat / f"sub-001_{s}.nii.gz" for s in SEQUENCES}


def predict_single(paths: dict[str, str], model: Path, out: Path, subject: str = "01"):
    return run_cli(["-q", "predict", "--t1w", str(paths["T1w"]), "--t2w", str(paths["T2w"]),
                    "--flair", str(paths["FLAIR"]), "--subject", subject, "-m", str(model),
                    "-o", str(out), "--device", "cpu"])


def summary(out: Path, exam: Exam = EXAM) -> dict | None:
    path = O.SUMMARY.path(out, exam)
    return json.loads(path.read_text()) if path.is_file() else None


@pytest.fixture(scope="module")
def reference(phantom4, zero_model, tmp_path_factory) -> Path:
    """Outputs of the clean exam (stored LAS, as the phantom writes it)."""
    out = tmp_path_factory.mktemp("reference") / "out"
    result = predict_single({k: str(v) for k, v in good_paths(phantom4).items()}, zero_model, out)
    assert result.code == 0, result.stderr
    assert summary(out)["refer_for_gadolinium"] is False
    return out


def _agrees_with_reference(out: Path, reference: Path, oblique: bool) -> None:
    """The synthetic post-Gd T1w, moved onto the reference grid by world coordinates, matches the
    clean exam's inside the head (same intensity scale, same anatomy)."""
    name = O.SYNTHETIC.path(reference, EXAM)
    ref, ref_geometry = read_image(name)
    got, geometry = read_image(O.SYNTHETIC.path(out, EXAM))
    moved = resample(got, geometry, ref_geometry)
    head = ref > np.percentile(ref, 60)
    rel = np.abs(moved - ref)[head] / np.median(ref[head])
    assert np.median(rel) < (0.05 if oblique else 0.005)
    assert np.corrcoef(moved[head], ref[head])[0, 1] > (0.97 if oblique else 0.999)


@pytest.mark.parametrize("case", list(CASES))
def test_bad_input_single_exam(case, phantom4, zero_model, reference, tmp_path):
    builder, expected, fragment = CASES[case]
    good = good_paths(phantom4)
    folder = tmp_path / "in"
    folder.mkdir()
    paths = builder(good, folder)
    before = tree_hashes(folder, *good.values())
    out = tmp_path / "out"
    result = predict_single(paths, zero_model, out)

    assert traceback_free(result.stderr), result.stderr
    assert tree_hashes(folder, *good.values()) == before  # inputs never modified
    record = summary(out)
    if expected == "error":
        assert result.code != 0
        lines = [ln for ln in result.stderr.splitlines() if fragment in ln]
        assert len(lines) == 1, result.stderr
        assert str(paths[CULPRIT.get(case, "T1w")]) in lines[0], lines[0]  # names the file
        assert record is None and not O.SYNTHETIC.path(out, EXAM).exists()  # no result at all
        return
    assert result.code == 0, result.stderr
    t1w_grid = read_image(paths["T1w"])[1]
    for output in (O.SYNTHETIC, O.ENHANCEMENT, O.LESION_LABELS):
        _, geometry = read_image(output.path(out, EXAM), allow_constant=True)
        assert geometry.same_grid(t1w_grid), output  # outputs on the input T1w grid
    if expected == "ok":
        _agrees_with_reference(out, reference, oblique=case == "oblique-T1w")
        assert record["n_lesions"] == summary(reference)["n_lesions"]
    elif expected == "quality":
        assert record["refer_for_gadolinium"] is True
        assert record["reason"].startswith("quality: "), record["reason"]
        assert fragment in record["reason"] and fragment in str(record["detection"]["quality_flags"])
    else:  # un-stripped head: referred for quality, or the shell correctly left out of the brain
        ref_ml = summary(reference)["detection"]["brain_volume_ml"]
        if not record["reason"].startswith("quality: "):
            assert abs(record["detection"]["brain_volume_ml"] - ref_ml) < 0.1 * ref_ml
            assert record["n_lesions"] == summary(reference)["n_lesions"]


@pytest.mark.parametrize("subject", ["../evil", "<script>", "a b", "é", ""])
def test_subject_label_must_be_alphanumeric(subject, phantom4, zero_model, tmp_path):
    paths = {k: str(v) for k, v in good_paths(phantom4).items()}
    result = predict_single(paths, zero_model, tmp_path / "out", subject=subject)
    assert result.code == 2 and traceback_free(result.stderr)
    assert "must be alphanumeric" in result.stderr
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.nii.gz"))


def _bids_exam(root: Path, label: str, good: dict[str, Path], skip: tuple[str, ...] = ()) -> Path:
    anat = root / f"sub-{label}" / "anat"
    anat.mkdir(parents=True)
    for seq, path in good.items():
        if seq not in skip:
            shutil.copyfile(path, anat / f"sub-{label}_{seq}.nii.gz")
    return anat


def test_bad_inputs_bids_cohort(phantom4, zero_model, tmp_path):
    """One cohort with a good exam and five bad ones: each bad exam fails (or is referred) on its
    own line, the good exam is done, the run exits non-zero and the summary lists every exam."""
    good = good_paths(phantom4)
    root = tmp_path / "bids"
    _bids_exam(root, "01", good)
    _bids_exam(root, "02", good, skip=("FLAIR",))  # missing sequence
    anat = _bids_exam(root, "03", good)  # empty brain mask
    t1, geometry = read_image(anat / "sub-03_T1w.nii.gz")
    write_image(anat / "sub-03_desc-brain_mask.nii.gz", np.zeros(t1.shape, np.uint8), geometry)
    anat = _bids_exam(root, "04", good)  # not a brain
    blob = B.smooth_blob(good, tmp_path)
    for seq in SEQUENCES:
        shutil.copyfile(blob[seq], anat / f"sub-04_{seq}.nii.gz")
    anat = _bids_exam(root, "05", good)  # truncated T1w
    data = (anat / "sub-05_T1w.nii.gz").read_bytes()
    (anat / "sub-05_T1w.nii.gz").write_bytes(data[: len(data) // 2])
    (root / "sub-06").mkdir()  # a subject folder without anat/: not an exam
    before = tree_hashes(root)

    out = tmp_path / "out"
    result = run_cli(["-q", "predict", str(root), "-m", str(zero_model), "-o", str(out),
                      "--device", "cpu"])
    assert result.code == 1 and traceback_free(result.stderr), result.stderr
    assert tree_hashes(root) == before
    rows = {r["exam"]: r for r in read_tsv(out / "run_summary.tsv")}
    assert {k: r["status"] for k, r in rows.items()} == {
        "sub-01": "done", "sub-02": "failed", "sub-03": "failed", "sub-04": "done",
        "sub-05": "failed"}
    expected = {"sub-02": ("sub-02_T1w.nii.gz", "lacks required sequence(s): FLAIR"),
                "sub-03": ("sub-03_desc-brain_mask.nii.gz", "brain mask is empty"),
                "sub-05": ("sub-05_T1w.nii.gz", "corrupt or truncated")}
    for exam, (name, problem) in expected.items():
        line = [ln for ln in result.stderr.splitlines() if f"failed {exam}:" in ln]
        assert len(line) == 1 and name in line[0] and problem in line[0], result.stderr
        assert summary(out, Exam(exam[4:])) is None
    assert summary(out, Exam("01"))["refer_for_gadolinium"] is False
    blob_summary = summary(out, Exam("04"))
    assert blob_summary["refer_for_gadolinium"] and blob_summary["reason"].startswith("quality: ")


@pytest.mark.parametrize("label", ["a b", "<script>x<", "é", "01..02"])
def test_bids_subject_folder_labels_must_be_alphanumeric(label, phantom4, zero_model, tmp_path):
    root = tmp_path / "bids"
    _bids_exam(root, label, good_paths(phantom4))
    result = run_cli(["-q", "predict", str(root), "-m", str(zero_model), "-o",
                      str(tmp_path / "out"), "--device", "cpu"])
    assert result.code == 2 and traceback_free(result.stderr)
    line = result.stderr.strip().splitlines()[-1]
    assert f"sub-{label}" in line and "alphanumeric" in line, result.stderr


def test_bids_folder_without_subjects(tmp_path, zero_model):
    (tmp_path / "bids" / "derivatives").mkdir(parents=True)
    result = run_cli(["-q", "predict", str(tmp_path / "bids"), "-m", str(zero_model), "-o",
                      str(tmp_path / "out"), "--device", "cpu"])
    assert result.code == 2 and traceback_free(result.stderr)
    assert "not a BIDS dataset" in result.stderr
