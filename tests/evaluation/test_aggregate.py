"""Cohort summary, bootstrap intervals, JSON sanitising and the comparison table."""

import json
import math

import numpy as np
import pytest

from gdsynth.evaluation import compare_methods, evaluate_arrays, summarize
from gdsynth.evaluation.aggregate import f1_score, lesion_bootstrap
from gdsynth.evaluation.report import jsonable

SP = (1.0, 1.0, 1.0)


def _results(n=8):
    out = []
    for e in range(n):
        ref = np.zeros((20, 20, 10), np.int32)
        pred = np.zeros_like(ref)
        if e % 2 == 0:  # active exam: lesion 1 found in half of them
            ref[2:7, 2:7, 2:7] = 1
            if e % 4 == 0:
                pred[2:7, 2:7, 2:7] = 1
        pred[12:16, 12:16, 2:6] = 2 if e % 3 == 0 else 0  # a false positive now and then
        out.append(evaluate_arrays(ref, pred, SP, exam=f"e{e}", probability_active=0.9 if e % 4 == 0
                                   else 0.2, refer=e % 4 == 0))
    return out


def test_pooled_counts_and_bootstrap_brackets_point_estimate():
    res = _results()
    s = summarize(res)
    les = s["lesions"]
    assert (les["n_reference"], les["n_detected"]) == (4, 2)
    assert les["n_false_positive"] == 3 and les["fp_per_scan"] == pytest.approx(3 / 8)
    assert les["f1"] == pytest.approx(f1_score(les["ppv"], les["sensitivity"]))
    ci = les["ci95_exam_bootstrap"]
    assert ci["sensitivity"][0] <= les["sensitivity"] <= ci["sensitivity"][1]
    assert ci["fp_per_scan"][0] <= les["fp_per_scan"] <= ci["fp_per_scan"][1]
    assert lesion_bootstrap(res, seed=3) == lesion_bootstrap(res, seed=3)  # reproducible
    op = s["patient"]["operating_point"]  # referred: e0, e4 (active); missed active: e2, e6
    assert op["sensitivity"]["value"] == 0.5 and op["npv"]["value"] == pytest.approx(4 / 6)


def test_summary_is_json_ready_and_comparable():
    s = summarize(_results(2))
    text = json.dumps(jsonable(s), allow_nan=False)
    assert "NaN" not in text
    assert jsonable({"a": float("nan"), "b": (1.0, float("inf"))}) == {"a": None, "b": [1.0, None]}
    table = compare_methods({"m": json.loads(text)}, columns=["lesion sens.", "AUC"])
    assert table.splitlines()[0] == "| method | lesion sens. | AUC |"
    with pytest.raises(ValueError, match="valid"):
        compare_methods({"m": s}, columns=["nope"])
    assert math.isnan(f1_score(float("nan"), 0.5)) and f1_score(0.0, 0.0) == 0.0
    # detects nothing while there are lesions (post = pre): no true positive, F1 = 0, not NaN
    assert f1_score(float("nan"), 0.0) == 0.0 and f1_score(0.0, float("nan")) == 0.0
    assert math.isnan(f1_score(float("nan"), float("nan")))
