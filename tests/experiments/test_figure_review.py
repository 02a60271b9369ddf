"""experiments/figure_review.py without a browser: the caption and the focus follow the truth, the
activity summary and the evaluation rows (as read from the demo's TSV/JSON files)."""

from __future__ import annotations

import pytest

from tests.utils import load_experiment


@pytest.fixture(scope="module")
def fr():
    return load_experiment("figure_review")


def truth(*enhancing: float) -> list[dict]:
    """Phantom ``_lesions.tsv`` rows (strings, as read_tsv gives them): one chronic lesion and one
    enhancing lesion per volume, labels 1..K."""
    rows = [{"label": "0", "kind": "chronic", "centre_x": "1", "centre_y": "2", "centre_z": "3",
             "volume_mm3": "900.0", "n_enhancing_voxels": "0"}]
    for k, vol in enumerate(enhancing, start=1):
        rows.append({"label": str(k), "kind": "active", "centre_x": f"{10 * k}",
                     "centre_y": "-5.5", "centre_z": "7.25", "volume_mm3": f"{vol}",
                     "n_enhancing_voxels": f"{int(vol)}"})
    return rows


def summary(p: float, refer: bool) -> dict:
    return {"probability_active": p, "refer_for_gadolinium": refer}


def per_exam(n_ref: int, n_det: int, n_pred: int, n_fp: int) -> dict:
    return {"exam": "sub-001", "status": "ok", "n_reference": str(n_ref), "n_detected": str(n_det),
            "n_predicted": str(n_pred), "n_false_positive": str(n_fp)}


def reference(*detected: bool) -> list[dict]:
    """Evaluation ``lesions.tsv`` rows, volumes on the evaluation grid (differ from the truth)."""
    return [{"exam": "sub-001", "label": str(k), "source_label": str(k), "volume_mm3": "8",
             "detected": "true" if d else "false"} for k, d in enumerate(detected, start=1)]


def predicted(*rows: tuple[int, float, bool]) -> list[dict]:
    return [{"exam": "sub-001", "label": str(i), "source_label": str(src), "score": f"{score}",
             "true_positive": "true" if tp else "false"}
            for i, (src, score, tp) in enumerate(rows, start=1)]


def test_active_referred_lesion_found(fr):
    preds = predicted((3, 0.9, False), (5, 0.7, True), (6, 0.8, True))
    focus = fr.choose_focus(truth(216.2, 1204.2), preds)
    assert focus.label == "6" and focus.centre is None  # top-scoring true positive, not the FP
    text = fr.caption("sub-001", "gdsynth-phantom", truth(216.2, 1204.2), summary(0.934, True),
                      per_exam(2, 1, 3, 1), reference(False, True), focus, "phantom siteC")
    assert "**sub-001** (phantom siteC), model `gdsynth-phantom`" in text
    assert "truly **active**: 2 enhancing lesions (1204, 216 mm³)" in text
    assert "P(active) 0.934, referred for gadolinium" in text
    assert "1 of 2 enhancing lesions detected, 1 missed (216 mm³)" in text  # truth volume
    assert "3 detections, 1 of them false positive." in text
    assert "Correctly referred" in text and "Missed" not in text
    assert "label 6, score 0.80" in text


def test_active_missed(fr):
    focus = fr.choose_focus(truth(216.0, 1204.0), predicted((1, 0.02, False)))
    assert focus.label is None and focus.centre == (20.0, -5.5, 7.25)  # the largest true lesion
    text = fr.caption("sub-001", "m", truth(216.0, 1204.0), summary(0.000875, False),
                      per_exam(2, 0, 1, 1), reference(False, False), focus)
    assert "P(active) 0.001, not referred" in text
    assert "0 of 2 enhancing lesions detected, 2 missed (1204, 216 mm³)" in text
    assert "Missed: the exam is truly active but gdsynth called it inactive" in text
    assert "Correctly" not in text
    assert "largest true enhancing lesion (1204 mm³, not detected)" in text


def test_active_referred_on_false_positives_only(fr):
    text = fr.caption("sub-001", "m", truth(300.0), summary(0.99, True), per_exam(1, 0, 4, 4),
                      reference(False))
    assert "truly **active**: 1 enhancing lesion (300 mm³)" in text
    assert "on false-positive detections only" in text and "Correctly" not in text


def test_inactive_correctly_not_referred(fr):
    assert fr.choose_focus(truth(), []) is None
    text = fr.caption("sub-002", "m", truth(), summary(0.03, False), per_exam(0, 0, 0, 0), [])
    assert "truly **inactive**: no enhancing lesion" in text
    assert "0 of 0 enhancing lesions detected, none missed; 0 detections, 0 of them false " \
           "positives." in text
    assert "Correctly not referred" in text and "centred" not in text


def test_inactive_false_referral(fr):
    preds = predicted((2, 0.6, False), (4, 0.95, False))
    focus = fr.choose_focus(truth(), preds)
    assert focus.label == "4" and "false positive" in focus.text
    text = fr.caption("sub-002", "m", truth(), summary(0.97, True), per_exam(0, 0, 2, 2), [],
                      focus)
    assert "P(active) 0.970, referred for gadolinium" in text
    assert "2 detections, 2 of them false positives." in text
    assert "False referral: the exam has no enhancing lesion" in text


def test_reference_count_disagreeing_with_truth_is_said(fr):
    text = fr.caption("sub-001", "m", truth(5.0, 400.0), summary(0.2, False), per_exam(1, 0, 0, 0),
                      reference(False))
    assert "The evaluation counts 1 reference lesions on its grid, the truth table 2." in text
