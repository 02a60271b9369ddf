"""Baselines: post = pre and the FLAIR-hyperintensity heuristic, in memory and as files."""

import numpy as np

from gdsynth.evaluation import ReferenceSpec, evaluate_arrays, evaluate_exam
from gdsynth.evaluation.baselines import flair_heuristic, post_equals_pre, write_prediction
from gdsynth.io import Geometry, write_image, write_labels
from gdsynth.io.bids import Exam, derivative_path, discover

SHAPE = (30, 30, 16)
SP = (1.0, 1.0, 1.0)


def _flair():
    brain = np.zeros(SHAPE, bool)
    brain[2:28, 2:28, 2:14] = True
    flair = np.where(brain, 1.0, 0.1).astype(np.float32)
    flair[5:10, 5:10, 5:10] = 2.5  # strong lesion
    flair[18:22, 18:22, 6:10] = 1.7  # faint lesion
    return flair, brain


def test_post_equals_pre_detects_nothing():
    t1 = np.random.default_rng(0).random(SHAPE).astype(np.float32) + 0.5
    out = post_equals_pre(t1)
    ref = np.zeros(SHAPE, np.int32)
    ref[5:10, 5:10, 5:10] = 1
    r = evaluate_arrays(ref, out.labels, SP, synthetic=out.synthetic, real_post=t1 + (ref > 0),
                        brain=np.ones(SHAPE, bool), probability_active=out.probability_active,
                        refer=out.refer)
    assert r.match.n_detected == 0 and r.match.n_predicted == 0
    assert abs(r.synthesis["mae_enhancing"] - 1.0) < 1e-6
    assert out.probability_active == 0.0 and not out.refer


def test_flair_heuristic_finds_bright_lesions_ranked_by_contrast():
    flair, brain = _flair()
    out = flair_heuristic(flair, brain, SP)
    assert len(out.scores) == 2 and out.refer
    strong = out.labels[7, 7, 7]
    faint = out.labels[20, 20, 8]
    assert out.scores[strong] > out.scores[faint] > 0
    assert out.probability_active == out.scores[strong]
    assert not flair_heuristic(np.where(brain, 1.0, 0.1), brain, SP).refer


def test_write_prediction_is_scored_by_evaluate_exam(tmp_path):
    flair, brain = _flair()
    geo = Geometry(SHAPE, SP, (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
    ref_root, pred = tmp_path / "bids", tmp_path / "flair-baseline"
    exam = Exam("01")
    anat = ref_root / "sub-01" / "anat"
    for name in ("T1w", "T2w", "FLAIR"):
        write_image(anat / f"sub-01_{name}.nii.gz", flair * 100, geo)
    truth = np.zeros(SHAPE, np.int32)
    truth[5:10, 5:10, 5:10] = 1  # only the strong lesion enhances
    write_labels(derivative_path(ref_root / "derivatives" / "phantom", exam, "dseg", label="L",
                                 desc="enhancing"), truth, geo)
    write_prediction(pred, exam, geo, flair_heuristic(flair, brain, SP))
    r = evaluate_exam(discover(ref_root)[0], pred, ReferenceSpec(ref_root))
    assert r.ok and r.match.n_detected == 1 and r.match.n_false_positive == 1
    assert r.refer is True and 0 < r.probability_active < 1
    assert sorted(p["score"] for p in r.match.predicted)[0] < 0.7
