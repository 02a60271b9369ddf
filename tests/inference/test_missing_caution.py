"""An exam predicted without some inputs is never called inactive (the refer point was fitted on
complete exams), and its reason says so (issue #18: never silently pretend)."""

from __future__ import annotations

from gdsynth.inference.cohort import add_missing_caution


def test_a_complete_exam_is_left_alone():
    summary = {"refer_for_gadolinium": False, "reason": "no lesion above the threshold"}
    add_missing_caution(summary, [])
    assert summary == {"refer_for_gadolinium": False, "reason": "no lesion above the threshold"}


def test_an_exam_without_flair_below_the_refer_point_is_referred_with_the_reason():
    summary = {"refer_for_gadolinium": False, "probability_active": 0.01, "reason": "top lesion 0.01"}
    add_missing_caution(summary, ["FLAIR"])
    assert summary["refer_for_gadolinium"] is True
    assert summary["probability_active"] == 0.01  # the score is not rewritten
    assert summary["reason"].startswith("top lesion 0.01; made without FLAIR")
    assert "not called inactive" in summary["reason"]


def test_an_already_referred_exam_only_gets_the_caution():
    summary = {"refer_for_gadolinium": True, "reason": "lesion 1"}
    add_missing_caution(summary, ["T2w", "FLAIR"])
    assert summary["refer_for_gadolinium"] is True
    assert "made without T2w, FLAIR" in summary["reason"] and "not called inactive" not in summary["reason"]
