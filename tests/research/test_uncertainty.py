"""Uncertainty evaluation: AUSE small when std tracks the error, large for a random std; oracle
below by_std; referral curve end points; lesion/patient calibration."""

from __future__ import annotations

import numpy as np
import pytest

from gdsynth.evaluation.uncertainty import (
    lesion_calibration,
    patient_calibration,
    referral_curve,
    sparsification,
)


def _errors(n=20000, seed=0):
    rng = np.random.default_rng(seed)
    std = rng.gamma(2.0, 0.05, n)
    error = np.abs(rng.normal(0, std))  # error drawn with that std: std predicts it
    return std, error, rng


def test_ause_small_when_std_tracks_error_and_large_when_random():
    std, error, rng = _errors()
    good = sparsification(std, error)
    random = sparsification(rng.permutation(std), error)
    perfect = sparsification(error, error)
    assert perfect["ause"] == pytest.approx(0.0, abs=1e-12)
    assert 0 < good["ause"] < 0.5 * random["ause"]
    assert random["ause"] > 0.3
    o, s = np.array(good["oracle"]), np.array(good["by_std"])
    assert np.all(o <= s + 1e-12) and o[0] == pytest.approx(1.0) and np.all(np.diff(o) <= 1e-12)
    assert len(good["fractions"]) == 50 and good["fractions"][0] == 0.0


def test_sparsification_rejects_mismatched_sizes():
    with pytest.raises(ValueError, match="differ"):
        sparsification(np.ones(3), np.ones(4))


def test_referral_curve_end_points_and_monotone():
    score = np.array([0.9, 0.8, 0.3, 0.2, 0.1, 0.05])
    active = np.array([1, 1, 1, 0, 0, 0])
    rows = referral_curve(score, active)
    assert rows[0]["threshold"] == float("inf") and rows[0]["referred"] == 0.0
    assert rows[0]["sensitivity"] == 0.0 and rows[0]["npv"] == 0.5
    assert rows[-1]["referred"] == 1.0 and rows[-1]["sensitivity"] == 1.0
    assert np.isnan(rows[-1]["npv"])
    at = next(r for r in rows if r["threshold"] == 0.3)
    assert at["referred"] == 0.5 and at["sensitivity"] == 1.0 and at["npv"] == 1.0
    referred = [r["referred"] for r in rows]
    assert referred == sorted(referred)


def test_calibrations_reuse_patient_metrics():
    rng = np.random.default_rng(3)
    p = rng.uniform(0, 1, 4000)
    y = rng.uniform(0, 1, 4000) < p  # calibrated by construction
    assert lesion_calibration(p, y)["ece"] < 0.05
    assert patient_calibration(np.clip(p + 0.3, 0, 1), y)["ece"] > 0.2
