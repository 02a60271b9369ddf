"""FROC construction: monotone, ends at the Anima operating point."""

import numpy as np

from gdsynth.evaluation.froc import froc_curve, froc_summary, sensitivity_at
from gdsynth.metrics.lesions import match_lesions

SP = (1.0, 1.0, 1.0)


def _exam(seed: int):
    rng = np.random.default_rng(seed)
    ref = np.zeros((40, 40, 12), np.int32)
    pred = np.zeros_like(ref)
    scores = {}
    label = 0
    for k in range(4):  # reference lesions at fixed spots, some predicted
        x = 3 + 9 * k
        ref[x:x + 4, 3:7, 3:7] = k + 1
        if rng.random() < 0.7:
            label += 1
            pred[x:x + 4, 3:6, 3:7] = label
            scores[label] = float(rng.random())
    for _ in range(3):  # false positives elsewhere
        label += 1
        x = 3 + 9 * int(rng.integers(0, 4))
        pred[x:x + 3, 20 + 5 * (label % 3):23 + 5 * (label % 3), 3:6] = label
        scores[label] = float(rng.random())
    return match_lesions(ref, pred, SP, scores=scores)


def test_froc_is_monotone_and_ends_at_operating_point():
    matches = [_exam(s) for s in range(6)]
    pts = froc_curve(matches)
    sens = np.array([p["sensitivity"] for p in pts])
    fps = np.array([p["fp_per_scan"] for p in pts])
    assert np.all(np.diff(sens) >= 0) and np.all(np.diff(fps) >= 0)
    assert sens[0] == 0 and fps[0] == 0
    n_ref = sum(m.n_reference for m in matches)
    assert sens[-1] == sum(m.n_detected for m in matches) / n_ref
    assert fps[-1] == sum(m.n_false_positive for m in matches) / len(matches)


def test_froc_summary_budgets():
    pts = [{"sensitivity": 0.0, "fp_per_scan": 0.0}, {"sensitivity": 0.5, "fp_per_scan": 0.3},
           {"sensitivity": 0.9, "fp_per_scan": 3.0}]
    assert sensitivity_at(pts, 0.25) == 0.0
    assert sensitivity_at(pts, 1.0) == 0.5
    s = froc_summary(pts)
    assert s["sensitivity_at_fp_per_scan"]["8"] == 0.9
    assert 0 < s["cpm"] < 0.9
