"""Patient-level metrics against scikit-learn and hand-made cases."""

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from gdsynth.evaluation.patient import (
    auc_ci_delong,
    calibration,
    operating_point,
    patient_metrics,
    roc_auc,
    roc_curve,
    wilson_interval,
)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_auc_matches_sklearn_with_ties(seed):
    rng = np.random.default_rng(seed)
    y = rng.random(60) < 0.4
    score = np.round(rng.random(60) + 0.4 * y, 1)  # rounding makes many ties
    assert roc_auc(y, score) == pytest.approx(roc_auc_score(y, score), abs=1e-12)
    lo, hi = auc_ci_delong(y, score)
    assert lo <= roc_auc(y, score) <= hi


def test_auc_edge_cases():
    assert roc_auc([1, 1, 0, 0], [0.9, 0.8, 0.2, 0.1]) == 1.0
    assert roc_auc([1, 1, 0, 0], [0.5, 0.5, 0.5, 0.5]) == 0.5
    assert np.isnan(roc_auc([1, 1], [0.3, 0.4]))


def test_roc_curve_ends_and_trapezoid_area_equals_auc():
    rng = np.random.default_rng(5)
    y = rng.random(40) < 0.5
    s = np.round(rng.random(40) + 0.3 * y, 1)
    pts = roc_curve(y, s)
    fpr = np.array([p["fpr"] for p in pts])
    tpr = np.array([p["tpr"] for p in pts])
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    area = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    assert area == pytest.approx(roc_auc(y, s))


def test_operating_point_counts_and_npv():
    y = np.array([1, 1, 1, 0, 0, 0, 0, 0], bool)
    refer = np.array([1, 1, 0, 1, 0, 0, 0, 0], bool)
    op = operating_point(y, refer)
    assert (op["tp"], op["fn"], op["fp"], op["tn"]) == (2, 1, 1, 4)
    assert op["sensitivity"]["value"] == pytest.approx(2 / 3)
    assert op["specificity"]["value"] == pytest.approx(4 / 5)
    assert op["npv"]["value"] == pytest.approx(4 / 5)
    assert op["ppv"]["value"] == pytest.approx(2 / 3)
    lo, hi = op["npv"]["ci95"]
    assert lo < 0.8 < hi


def test_wilson_interval_known_value():
    lo, hi = wilson_interval(8, 10)
    assert lo == pytest.approx(0.4902, abs=1e-3) and hi == pytest.approx(0.9433, abs=1e-3)


def test_ece_near_zero_when_perfectly_calibrated():
    rng = np.random.default_rng(0)
    p = rng.random(200_000)
    y = rng.random(p.size) < p  # outcomes drawn with exactly the stated probability
    cal = calibration(y, p, n_bins=10)
    assert cal["ece"] < 0.01
    assert sum(b["count"] for b in cal["bins"]) == p.size


def test_ece_of_overconfident_predictions_is_large():
    y = np.array([0, 1] * 50, bool)
    p = np.where(y, 0.99, 0.98)  # says "active" for everyone
    assert calibration(y, p)["ece"] > 0.4


def test_patient_metrics_bundle():
    y = np.array([1, 0, 1, 0, 0], bool)
    p = np.array([0.9, 0.2, 0.6, 0.7, 0.1])
    out = patient_metrics(y, p, p >= 0.5)
    assert out["n_exams"] == 5 and out["n_active"] == 2
    assert out["auc"] == pytest.approx(roc_auc_score(y, p))
    assert len(out["calibration"]["bins"]) == 10
