"""experiments/stage_learning_curve.py without a model: its case cache round-trips (NaN included)
and its measurement fits the stage on the first N exams and scores the test exams as documented."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gdsynth.detection.stage_features import STAGE_FEATURES
from gdsynth.detection.stage_fit import StageCase
from gdsynth.evaluation.report import jsonable
from tests.utils import load_experiment


@pytest.fixture(scope="module")
def lc():
    return load_experiment("stage_learning_curve")


def _case(i: int, rng: np.random.Generator, active: bool) -> StageCase:
    """Four candidates; in an active exam the first is a true lesion with a high ``enh_max``."""
    feats = []
    for c in range(4):
        f = {name: float(rng.normal()) for name in STAGE_FEATURES}
        f["label"] = c + 1
        f["enh_max"] = 3.0 + rng.normal(0, 0.3) if active and c == 0 else rng.normal(0, 0.3)
        feats.append(f)
    tp = np.array([active, False, False, False])
    cover = [[(0, 1.0)]] if active else []
    ref = [{"source_label": 1, "volume_mm3": 100.0, "size_class": "medium"}] if active else []
    return StageCase(f"sub-{i:03d}", feats, tp, cover, ref)


def test_case_cache_round_trips_with_nan(lc):
    case = _case(1, np.random.default_rng(0), True)
    case.features[2]["FLAIR_core"] = float("nan")  # a missing sequence's feature
    back = lc.case_from_json(json.loads(json.dumps(jsonable(lc.case_to_json(case)))))
    assert back.id == case.id and back.positive
    assert np.isnan(back.features[2]["FLAIR_core"])
    assert back.features[0]["enh_max"] == case.features[0]["enh_max"]
    np.testing.assert_array_equal(back.tp, case.tp)
    assert back.cover == [[(0, 1.0)]] and back.reference == case.reference


def test_measure_fits_on_the_fit_exams_and_scores_the_test_exams(lc):
    rng = np.random.default_rng(1)
    fit = [_case(i, rng, i % 2 == 0) for i in range(10)]
    test = [_case(100 + i, rng, i % 2 == 0) for i in range(6)]
    r = lc.measure(fit, test, ("logistic",))
    assert r["classifier"] == "logistic"
    t = r["test"]
    # the true lesion stands out on enh_max: every one found, no false positive, exams separated
    assert (t["n_detected"], t["n_reference"], t["n_true_positive"]) == (3, 3, 3)
    assert t["fp_per_scan"] == 0.0 and t["lesion_f1"] == pytest.approx(1.0)
    assert t["exam_auc"] == pytest.approx(1.0)
    table = lc.render([{"n_fit": 10, "label": "logistic", **r}], 6, 3, 3)
    assert "| 10 | logistic |" in table and "**1.00**" in table
