"""Calibration on synthetic validation exams: logistic fit, Platt scaling, operating point."""

import numpy as np
import pytest

from gdsynth.detection import DetectionParams, detect_lesions, fit_calibration
from gdsynth.detection.calibration import choose_threshold, operating_metrics
from gdsynth.detection.logistic import fit_logistic, log_loss
from gdsynth.metrics.roc import roc_auc
from tests.detection.synthetic import random_exam

PARAMS = DetectionParams(min_brain_ml=10.0)


@pytest.fixture(scope="module")
def cases():
    return [random_exam(seed).case() for seed in range(16)]


@pytest.fixture(scope="module")
def fitted(cases):
    return fit_calibration(cases, PARAMS)


def test_fit_logistic_recovers_coefficients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4000, 2)) * [1.0, 3.0] + [0.0, 2.0]
    p = 1 / (1 + np.exp(-(-1.0 + 2.0 * x[:, 0] - 0.5 * x[:, 1])))
    y = (rng.uniform(size=4000) < p).astype(float)
    b, w = fit_logistic(x, y, l2=0.0)
    assert b == pytest.approx(-1.0, abs=0.2)
    np.testing.assert_allclose(w, [2.0, -0.5], atol=0.15)


def test_fit_logistic_handles_constant_column_and_separable_data():
    x = np.column_stack([np.arange(10.0), np.ones(10)])
    y = (np.arange(10) >= 5).astype(float)
    b, w = fit_logistic(x, y, l2=0.1)
    assert np.isfinite(b) and np.all(np.isfinite(w)) and w[1] == 0.0 and w[0] > 0


def test_choose_threshold_keeps_target_sensitivity():
    prob = np.array([0.05, 0.1, 0.2, 0.3, 0.6, 0.7, 0.8, 0.9])
    positive = np.array([False, False, True, False, True, True, True, True])
    t = choose_threshold(prob, positive, 0.95)
    assert 0.1 < t < 0.2  # between the lowest positive (0.2) and the next exam below (0.1)
    assert t == pytest.approx(1 / (1 + np.sqrt(4 * 9)))  # logit midpoint
    m = operating_metrics(prob, positive, t)
    assert m["sensitivity"] == 1.0 and m["npv"] == 1.0 and m["specificity"] == pytest.approx(2 / 3)
    assert 0.3 < choose_threshold(prob, positive, 0.8) < 0.6  # one miss of 5 allowed
    assert choose_threshold(np.array([0.4, 0.7]), np.array([True, True]), 0.95) == 0.4
    assert choose_threshold(prob, np.zeros(8, bool), 0.95) is None
    assert roc_auc(positive, prob) == pytest.approx(14 / 15) == m["auc"]
    assert operating_metrics(prob, np.zeros(8, bool), t)["auc"] is None  # one class: None in JSON


def test_calibration_does_not_worsen_log_loss(fitted):
    info = fitted.calibration_info
    assert info["n_lesion_candidates"] > info["n_true_lesions"] > 0
    assert info["lesion_log_loss_after"] <= info["lesion_log_loss_before"] + 1e-12
    assert info["patient_log_loss_after"] <= info["patient_log_loss_before"] + 1e-12
    assert info["score_fit"] == "fitted"


def test_calibration_meets_sensitivity_target(cases, fitted):
    op = fitted.calibration_info["operating_point"]
    assert op["sensitivity"] >= fitted.target_sensitivity
    referred = []
    for case in cases:
        inputs = {k: v for k, v in case.items() if k != "truth"}
        out = detect_lesions(inputs.pop("enhancement"), **inputs, params=fitted)
        referred.append(out.summary["refer_for_gadolinium"])
    positive = np.array([case["truth"].any() for case in cases])
    assert np.mean(np.array(referred)[positive]) >= fitted.target_sensitivity


def test_calibrated_params_round_trip(fitted):
    import json

    back = DetectionParams.from_dict(json.loads(json.dumps(fitted.to_dict())))
    assert back == fitted


def test_hysteresis_grid_tuning_picks_best_f1(cases):
    grid = [(0.6, 0.3), (0.25, 0.12)]
    out = fit_calibration(cases[:8], PARAMS, tune_grid=grid)
    table = out.calibration_info["hysteresis_grid"]
    best = max(table, key=lambda row: row["lesion_f1"])
    assert (out.high, out.low) == (best["high"], best["low"])
    assert len(table) == 2


def test_log_loss_basics():
    assert log_loss(np.array([1, 0]), np.array([1.0, 0.0])) < 1e-6
    assert log_loss(np.array([1, 0]), np.array([0.5, 0.5])) == pytest.approx(np.log(2))


def test_fit_logistic_matches_scikit_learn():
    sklearn = pytest.importorskip("sklearn.linear_model")
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3)) * [1.0, 5.0, 0.2]
    y = (rng.uniform(size=300) < 1 / (1 + np.exp(-(x[:, 0] - 0.3 * x[:, 1])))).astype(float)
    b, w = fit_logistic(x, y, l2=0.05)
    z = (x - x.mean(0)) / x.std(0)
    ref = sklearn.LogisticRegression(C=1 / (0.05 * len(y)), tol=1e-10, max_iter=1000).fit(z, y)
    np.testing.assert_allclose(1 / (1 + np.exp(-(b + x @ w))), ref.predict_proba(z)[:, 1], atol=1e-4)
