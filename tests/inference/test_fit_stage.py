"""`gdsynth fit-detector` and `gdsynth train` → `predict` end to end on a tiny synthetic cohort.

Exams: the 1 mm synthetic brains of tests/detection/synthetic.py (an enhancing FLAIR-bright
lesion with its truth in ``derivatives/phantom``, a chronic FLAIR-bright one without), written as
BIDS; preparation is the registration-free ``simple_prepare`` (as the other CLI tests).
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from gdsynth.batch import CaseResult
from gdsynth.cli.main import main
from gdsynth.data.subjects import TrainingExam
from gdsynth.detection.stage import STAGE_FILE, load_stage
from gdsynth.inference import cohort as cohort_mod
from gdsynth.inference import fit_stage as fit_mod
from gdsynth.inference import outputs as O
from gdsynth.io import Geometry, read_tsv, write_image, write_labels
from gdsynth.io.bids import derivative_path, discover
from gdsynth.models.folder import load_model_folder
from gdsynth.training import cohort as train_cohort
from tests.detection.synthetic import LESION_A, LESION_B, SHAPE, add_lesion, base_exam
from tests.fixtures.inference import make_model, simple_prepare
from tests.fixtures.training import TINY

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
GRID = Geometry(SHAPE, (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))


def write_cohort(root, n: int, *, negatives: int = 0):
    """``n`` exams: all with a chronic lesion; all but ``negatives`` with an enhancing one."""
    for i in range(n):
        exam = base_exam(i)
        if i >= negatives:
            add_lesion(exam, *LESION_A, enhancement=0.5 + 0.1 * i, flair=1.8)
        add_lesion(exam, *LESION_B, enhancement=0.0, flair=1.45, truth=False)
        sub = f"sub-{i + 1:02d}"
        anat = root / sub / "anat"
        scale = 400.0
        for name, arr in (("T1w", exam.t1w), ("T2w", exam.t2w), ("FLAIR", exam.flair),
                          ("ce-gadolinium_T1w", exam.t1w + exam.enhancement)):
            write_image(anat / f"{sub}_{name}.nii.gz", (np.maximum(arr, 0) * scale + 5)
                        .astype(np.float32), GRID)
        write_labels(anat / f"{sub}_desc-brain_mask.nii.gz", exam.brain.astype(np.uint8), GRID)
        write_labels(root / "derivatives" / "phantom" / sub / "anat" /
                     f"{sub}_label-L_desc-enhancing_dseg.nii.gz", exam.truth, GRID)
    (root / "dataset_description.json").write_text(json.dumps({"Name": "tiny",
                                                               "BIDSVersion": "1.8.0"}))
    return root


@pytest.fixture()
def fast(monkeypatch):
    monkeypatch.setattr(fit_mod, "prepare_exam", simple_prepare)
    monkeypatch.setattr(cohort_mod, "prepare_exam", simple_prepare)


def _check_prediction(out, exam, stage):
    """dseg = rows at the lesion threshold; exam probability follows the top lesion score."""
    from gdsynth.io import read_image

    rows = read_tsv(O.LESION_TABLE.path(out, exam))
    summary = json.loads(O.SUMMARY.path(out, exam).read_text())
    labels, _ = read_image(O.LESION_LABELS.path(out, exam), allow_constant=True)
    scores = [float(r["score"]) for r in rows]
    assert {int(r["label"]) for r in rows if r["in_dseg"] == "true"} == \
        {int(v) for v in np.unique(labels) if v > 0}
    assert {int(r["label"]) for r in rows if float(r["score"]) >= stage.lesion_threshold} == \
        {int(r["label"]) for r in rows if r["in_dseg"] == "true"}
    assert summary["probability_active"] == pytest.approx(stage.exam_probability(scores))
    return summary


def test_fit_detector_end_to_end_then_predict(tmp_path, fast, capsys):
    bids = write_cohort(tmp_path / "bids", 5, negatives=1)
    model = make_model(tmp_path / "model", heads=())
    code = main(["-q", "fit-detector", str(model), "--bids", str(bids), "--folds", "3",
                 "--classifier", "logistic", "--device", "cpu"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "exam AUC" in out.out and "lesion threshold" in out.out
    _, card = load_model_folder(model)
    section = card.lesion_stage
    assert section["file"] == STAGE_FILE and section["heldout"]["n_exams"] == 5
    assert "phantom truth" in section["heldout"]["truth"]
    stage = load_stage(model, section)
    pred = tmp_path / "pred"
    assert main(["-q", "predict", str(bids), "-m", str(model), "-o", str(pred),
                 "--participant-label", "02", "--device", "cpu"]) == 0
    summary = _check_prediction(pred, discover(bids, ["02"])[0], stage)
    assert summary["detection"]["stage"] == "learned"


def test_train_then_predict_gives_a_calibrated_model(tmp_path, fast, monkeypatch, capsys):
    def already_prepared(bids_root, exams, **kwargs):  # the raw files are the prepared grid
        training = [TrainingExam(id=e.prefix, paths=e.inputs(), subject=e.subject,
                                 truth=derivative_path(bids_root / "derivatives" / "phantom", e,
                                                       "dseg", label="L", desc="enhancing"))
                    for e in exams]
        return training, [CaseResult(e.prefix, "done", 0.0) for e in exams]

    monkeypatch.setattr(train_cohort, "prepare_cohort", already_prepared)
    bids = write_cohort(tmp_path / "bids", 6)
    run = tmp_path / "run"
    code = main(["-q", "train", str(bids), "-o", str(run), "--config", str(TINY),
                 "--max-steps", "1", "--tracker", "none"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert "lesion stage (" in err and "refer threshold" in err  # figures printed
    _, card = load_model_folder(run / "model")
    held_out = card.training["split"]["val_exams"]
    assert card.lesion_stage["heldout"]["exams"] == sorted(held_out) or \
        set(card.lesion_stage["heldout"]["exams"]) == {f"{e}" for e in held_out}
    stage = load_stage(run / "model", card.lesion_stage)
    pred = tmp_path / "pred"
    assert main(["-q", "predict", str(bids), "-m", str(run / "model"), "-o", str(pred),
                 "--participant-label", "01", "--device", "cpu"]) == 0
    _check_prediction(pred, discover(bids, ["01"])[0], stage)
