"""Patient-level probability, refer decision and quality flags."""

import numpy as np
import pytest

from gdsynth.detection import DetectionParams, quality_flags, summarize_patient
from gdsynth.detection.patient import calibrated_probability, probability_any


def test_probability_any_combines_scores():
    assert probability_any([]) == 0.0
    assert probability_any([0.5, 0.5]) == pytest.approx(0.75)
    assert probability_any([1.0, 0.1]) == pytest.approx(1.0)


def test_platt_identity_and_monotonic():
    p = DetectionParams()
    assert float(calibrated_probability(0.3, p)) == pytest.approx(0.3)
    q = DetectionParams(platt_a=2.0, platt_b=-1.0)
    values = calibrated_probability(np.array([0.01, 0.2, 0.6, 0.99]), q)
    assert np.all(np.diff(values) > 0)


def test_refer_follows_operating_threshold():
    lesions = [{"score": 0.3}]
    assert summarize_patient(lesions, DetectionParams(refer_threshold=0.25))["refer_for_gadolinium"]
    out = summarize_patient(lesions, DetectionParams(refer_threshold=0.4))
    assert out["refer_for_gadolinium"] is False and out["n_lesions"] == 1
    assert "no active lesion expected" in out["reason"]


def test_quality_flag_forces_referral():
    out = summarize_patient([], DetectionParams(), quality=["empty brain mask"])
    assert out["refer_for_gadolinium"] is True
    assert out["reason"] == "quality: empty brain mask"


def test_quality_flags_cover_nonfinite_enhancement():
    brain = np.ones((10, 10, 10), bool)
    enh = np.zeros((10, 10, 10), np.float32)
    enh[5, 5, 5] = np.nan
    params = DetectionParams(min_brain_ml=0.5)
    assert quality_flags(brain, (1, 1, 1), params, enhancement=np.zeros_like(enh)) == []
    flags = quality_flags(brain, (1, 1, 1), params, enhancement=enh)
    assert flags == ["non-finite values in the enhancement map"]
    flags = quality_flags(brain, (1, 1, 1), DetectionParams(min_brain_ml=0.1, max_brain_ml=0.5))
    assert "above" in flags[0]
