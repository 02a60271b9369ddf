"""gdsynth.inference.calibrate: calibration cases read from files (with an injected preparation,
no patching), exams without truth skipped, overrides of the starting parameters, the card update."""

from __future__ import annotations

import numpy as np

from gdsynth.detection import DetectionParams
from gdsynth.inference.calibrate import (
    TUNE_GRID,
    calibrate_cases,
    load_cases,
    starting_params,
    update_card,
)
from gdsynth.inference.prep import PreparedExam
from gdsynth.io import Geometry, read_image, write_image, write_labels
from gdsynth.io.bids import Exam, derivative_path
from gdsynth.models.card import ModelCard
from tests.detection.synthetic import SHAPE, SPACING, random_exam

RAS = Geometry(SHAPE, SPACING, (0.0, 0.0, 0.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))


def _dataset(root, n: int):
    """Raw exams already normalized on a RAS grid, their enhancement maps, truth for all but the
    last; returns (pred, truth, prepare) where ``prepare`` reads the files back as prepared."""
    pred, truth = root / "derivatives" / "gdsynth", root / "derivatives" / "phantom"
    brains = {}
    for i in range(n):
        synthetic, exam = random_exam(seed=i), Exam(f"{i:02d}")
        anat = root / f"sub-{exam.subject}" / "anat"
        for seq, arr in (("T1w", synthetic.t1w), ("T2w", synthetic.t2w), ("FLAIR", synthetic.flair)):
            write_image(anat / f"sub-{exam.subject}_{seq}.nii.gz", arr, RAS)
        write_image(derivative_path(pred, exam, "T1w", desc="enhancement"), synthetic.enhancement,
                    RAS)
        if i < n - 1:
            write_labels(derivative_path(truth, exam, "dseg", desc="enhancing"), synthetic.truth, RAS)
        brains[exam.subject] = synthetic.brain

    def prepare(exam, card):
        vols = {s: read_image(exam.path(s))[0] for s in ("T1w", "T2w", "FLAIR")}
        return PreparedExam(vols, brains[exam.subject], RAS, RAS, 1.0, {})

    return pred, truth, prepare


def test_cases_from_files_with_an_injected_preparation(tmp_path):
    root = tmp_path / "bids"
    pred, truth, prepare = _dataset(root, 4)
    card = ModelCard(architecture={"name": "unet"})
    cases = load_cases(root, pred, truth, card, prepare=prepare)
    assert [c["id"] for c in cases] == ["sub-00", "sub-01", "sub-02"]  # sub-03 has no truth
    for i, case in enumerate(cases):
        expected = random_exam(seed=i)
        assert case["truth"].dtype == np.int32
        np.testing.assert_array_equal(case["truth"] > 0, expected.truth > 0)
        np.testing.assert_allclose(case["enhancement"], expected.enhancement, atol=1e-6)
        assert case["spacing"] == SPACING and case["brain_mask"] is not None
    assert [c["id"] for c in load_cases(root, pred, truth, card, ["01"], prepare=prepare)] == \
        ["sub-01"]


def test_fit_and_write_into_the_card(tmp_path):
    root = tmp_path / "bids"
    pred, truth, prepare = _dataset(root, 7)
    model = tmp_path / "model"
    model.mkdir()
    card = ModelCard(architecture={"name": "unet"},
                     detection=DetectionParams(min_brain_ml=10.0).to_dict())
    card.save(model / "model_card.json")
    params = starting_params(card, target_sensitivity=0.9)
    assert params.target_sensitivity == 0.9 and params.min_brain_ml == 10.0
    assert starting_params(ModelCard(architecture={"name": "unet"})) == DetectionParams()
    fitted = calibrate_cases(load_cases(root, pred, truth, card, prepare=prepare), params)
    assert fitted.calibration_info["exams"] == [f"sub-{i:02d}" for i in range(6)]
    update_card(model, fitted)
    stored = DetectionParams.from_dict(ModelCard.load(model / "model_card.json").detection)
    assert stored.calibration_info["n_cases"] == 6 and stored.min_brain_ml == 10.0
    assert stored.refer_threshold == fitted.refer_threshold
    assert all(lo < hi for hi, lo in TUNE_GRID)
