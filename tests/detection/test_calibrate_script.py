"""experiments/calibrate_detection.py: files in, fitted params written into the model card."""

import json

import pytest

from gdsynth.detection import DetectionParams
from gdsynth.io import Geometry, write_image, write_labels
from gdsynth.io.bids import Exam, derivative_path
from gdsynth.models.card import ModelCard
from tests.detection.synthetic import SHAPE, SPACING, random_exam
from tests.utils import load_experiment

RAS = Geometry(SHAPE, SPACING, (0.0, 0.0, 0.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))


@pytest.fixture()
def dataset(tmp_path, monkeypatch):
    """Raw BIDS exams (already normalized, RAS), their predictions and truth; a model card."""
    from gdsynth.inference import prep as prep_module

    root = tmp_path / "bids"
    pred = root / "derivatives" / "gdsynth"
    truth = root / "derivatives" / "phantom"
    masks = {}
    for n in range(8):
        synthetic = random_exam(seed=n)
        exam = Exam(f"{n:02d}")
        anat = root / f"sub-{exam.subject}" / "anat"
        for seq, arr in (("T1w", synthetic.t1w), ("T2w", synthetic.t2w), ("FLAIR", synthetic.flair)):
            write_image(anat / f"sub-{exam.subject}_{seq}.nii.gz", arr, RAS)
        write_image(derivative_path(pred, exam, "T1w", desc="enhancement"), synthetic.enhancement, RAS)
        write_labels(derivative_path(truth, exam, "dseg", desc="enhancing"),
                     synthetic.truth, RAS)
        masks[exam.subject] = synthetic.brain

    def fake_prepare(exam, card):  # the files are already on a RAS grid and normalized
        from gdsynth.io import read_image

        vols = {s: read_image(exam.path(s))[0] for s in ("T1w", "T2w", "FLAIR")}
        return prep_module.PreparedExam(vols, masks[exam.subject], RAS, RAS, 1.0, {})

    monkeypatch.setattr(prep_module, "prepare_exam", fake_prepare)
    model = tmp_path / "model"
    model.mkdir()
    ModelCard(architecture={"name": "unet"},
              detection=DetectionParams(min_brain_ml=10.0).to_dict()).save(model / "model_card.json")
    return model, pred


def test_script_writes_fitted_params_into_card(dataset, tmp_path):
    model, pred = dataset
    script = load_experiment("calibrate_detection")
    report = tmp_path / "report.json"
    assert script.main([str(model), str(pred), "--report", str(report)]) == 0
    card = ModelCard.load(model / "model_card.json")
    params = DetectionParams.from_dict(card.detection)
    info = params.calibration_info
    assert info["n_cases"] == 8 and len(info["exams"]) == 8
    assert info["operating_point"]["sensitivity"] >= params.target_sensitivity
    assert json.loads(report.read_text())["n_cases"] == 8
    assert params.min_brain_ml == 10.0  # settings of the card are kept


def test_script_reports_missing_root(tmp_path, capsys):
    script = load_experiment("calibrate_detection")
    model = tmp_path / "m"
    model.mkdir()
    ModelCard(architecture={"name": "unet"}).save(model / "model_card.json")
    assert script.main([str(model), str(tmp_path / "preds")]) == 1
    assert "--bids" in capsys.readouterr().err
