"""`gdsynth train --labels DERIV`: enhancing-lesion masks from a derivative folder (the output of
`gdsynth label`, or any `_desc-enhancing_dseg`/`_mask`) take precedence over the phantom truth,
are resampled by world coordinates, and a mask off the brain is refused, naming the file."""

from __future__ import annotations

import logging
import shutil

import nibabel as nib
import numpy as np
import pytest

from gdsynth.cli.main import main
from gdsynth.data.subjects import LESION, AddLesionLabels, make_subject
from gdsynth.io import Geometry, read_image, write_labels
from gdsynth.io.bids import discover
from gdsynth.models.folder import load_model_folder
from gdsynth.training.cohort import LabelsError, check_labels, prepare_cohort
from tests.fixtures.training import TINY


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A 1-exam 2 mm phantom, its `gdsynth label` output and the preparation cache it wrote
    (the same preparation as training's: read back by `prepare_cohort`)."""
    from gdsynth.phantom import generate_dataset

    root = tmp_path_factory.mktemp("labels")
    bids = root / "bids"
    generate_dataset(bids, subjects=1, seed=3, resolution=2, active_fraction=1.0)
    out = root / "derived"
    assert main(["-q", "label", str(bids), "-o", str(out), "--prep", str(root / "prep")]) == 0
    return bids, out, root / "prep"


def _prepared(bids, prep, labels=()):
    training, outcomes = prepare_cohort(bids, discover(bids), prep_root=prep, labels=labels,
                                        progress=False)
    assert all(o.status != "failed" for o in outcomes), outcomes
    return training


def _lesion_map(exam):
    subject = AddLesionLabels()(make_subject(exam, ["T1w", "T2w", "FLAIR"]))
    return subject[LESION].data[0].numpy(), subject["T1w"]


def test_train_uses_the_labels_of_gdsynth_label(labelled, tmp_path, capsys):
    bids, derived, prep = labelled
    run = tmp_path / "run"
    code = main(["-q", "train", str(bids), "-o", str(run), "--config", str(TINY), "--max-steps", "1",
                 "--labels", str(derived), "--prep-dir", str(prep), "--set", "data.val_fraction=0"])
    assert code == 0, capsys.readouterr().err
    _, card = load_model_folder(run / "model")
    record = card.training["labels"]
    assert record["counts"] == {"annotation": 1, "truth": 0, "threshold": 0}
    for exam_id, one in record["exams"].items():
        assert one["source"] == "annotation"
        assert one["path"].startswith(str(derived)) and one["path"].endswith(
            f"{exam_id}_desc-enhancing_dseg.nii.gz")
    # the lesions trained on are those of the label map (on the prepared grid), not the truth's
    exam = next(e for e in _prepared(bids, prep, [derived]))
    lesion, t1w = _lesion_map(exam)
    written, native = read_image(exam.truth, allow_constant=True)
    expected = (written > 0).sum() * native.voxel_volume / t1w.spacing[0] ** 3
    assert lesion.any() and lesion.sum() == pytest.approx(expected, rel=0.25)
    truth_exam = next(e for e in _prepared(bids, prep))
    assert truth_exam.extra["label_source"] == "truth" and truth_exam.truth != exam.truth
    assert not np.array_equal(lesion, _lesion_map(truth_exam)[0])


def test_exam_without_mask_falls_back_with_a_warning(labelled, tmp_path, caplog):
    bids, derived, prep = labelled
    other = tmp_path / "other"  # a derivative folder without this exam's mask
    shutil.copytree(derived, other)
    shutil.rmtree(other / "sub-001")
    with caplog.at_level(logging.WARNING, logger="gdsynth.training.cohort"):
        training = _prepared(bids, prep, [other])
    assert [(e.id, e.extra["label_source"]) for e in training] == [("sub-001", "truth")]
    assert "1 exam(s) have no enhancing-lesion mask" in caplog.text
    assert "sub-001 (truth)" in caplog.text
    # several folders: the first holding the exam's mask wins
    training = _prepared(bids, prep, [other, derived])
    assert training[0].extra["label_source"] == "annotation"
    assert str(training[0].truth).startswith(str(derived))


def _lps_copy(geometry: Geometry) -> Geometry:
    """The same voxels stored in LPS order: axes 0 and 1 reversed (a different grid, same space)."""
    far = geometry.index_to_world(np.array([geometry.shape[0] - 1, geometry.shape[1] - 1, 0]))
    d = geometry.direction_matrix
    direction = np.column_stack([-d[:, 0], -d[:, 1], d[:, 2]])
    return Geometry(geometry.shape, geometry.spacing, tuple(float(v) for v in far),
                    tuple(float(v) for v in direction.ravel()))


def test_lps_stored_mask_is_resampled_by_world_coordinates(labelled, tmp_path):
    bids, _, prep = labelled
    exam = _prepared(bids, prep)[0]
    brain, grid = read_image(exam.paths["mask"], allow_constant=True)
    inside = np.argwhere(brain > 0)
    i, j, k = inside[len(inside) // 2]
    box = np.zeros(grid.shape, dtype=np.uint8)  # an asymmetric box inside the brain
    box[i - 3:i + 1, j - 1:j + 3, k:k + 2] = 1
    lps = _lps_copy(grid)
    stored = box[::-1, ::-1, :]  # voxel (a, b, c) of the LPS grid is (X-1-a, Y-1-b, c) here
    path = tmp_path / "deriv" / "sub-001" / "anat" / "sub-001_desc-enhancing_mask.nii.gz"
    write_labels(path, stored, lps)
    assert nib.aff2axcodes(nib.load(path).affine) == ("L", "P", "S")
    exam = _prepared(bids, prep, [tmp_path / "deriv"])[0]
    assert exam.truth == path and exam.extra["label_source"] == "annotation"
    lesion, _ = _lesion_map(exam)
    np.testing.assert_array_equal(lesion, box * (brain > 0))


def test_mask_off_the_brain_is_refused_naming_the_file(labelled, tmp_path, capsys):
    bids, _, prep = labelled
    exam = _prepared(bids, prep)[0]
    brain, grid = read_image(exam.paths["mask"], allow_constant=True)
    # 1: the mask's field of view lies 500 mm away from the head
    away = grid.replace(origin=tuple(float(o) + 500.0 for o in grid.origin))
    far = tmp_path / "far" / "sub-001" / "anat" / "sub-001_desc-enhancing_dseg.nii.gz"
    write_labels(far, (brain > 0).astype(np.uint8), away)
    with pytest.raises(LabelsError, match="field of view does not overlap"):
        check_labels(far, exam.paths["mask"])
    code = main(["-q", "train", str(bids), "-o", str(tmp_path / "run"), "--config", str(TINY),
                 "--max-steps", "1", "--labels", str(tmp_path / "far"), "--prep-dir", str(prep)])
    err = capsys.readouterr().err
    assert code != 0 and str(far) in err and "does not overlap the exam's brain" in err
    assert not (tmp_path / "run" / "model").exists()
    # 2: same grid, but every labelled voxel outside the brain
    corner = np.zeros(grid.shape, dtype=np.uint8)
    corner[:2, :2, :2] = 1
    assert not (corner * brain).any()
    outside = tmp_path / "outside.nii.gz"
    write_labels(outside, corner, grid)
    with pytest.raises(LabelsError, match="none of its 8 labelled voxels") as err:
        check_labels(outside, exam.paths["mask"])
    assert str(outside) in str(err.value)
    # an empty mask on the brain is valid (an exam without enhancing lesion)
    empty = tmp_path / "empty.nii.gz"
    write_labels(empty, np.zeros(grid.shape, dtype=np.uint8), grid)
    check_labels(empty, exam.paths["mask"])
