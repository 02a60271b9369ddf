"""Hand-made lesion-matching cases for the MSSEG/Anima detection rules."""

import numpy as np
import pytest

from gdsynth.metrics.lesions import (
    DetectionCriteria,
    components,
    detected_rows,
    dice,
    match_lesions,
    overlap_table,
    size_class,
)

SHAPE = (40, 40, 20)
SP = (1.0, 1.0, 1.0)


def box(arr, x0, x1, y0, y1, z0, z1, value=1):
    arr[x0:x1, y0:y1, z0:z1] = value
    return arr


def empty():
    return np.zeros(SHAPE, np.int32)


def test_perfect_match():
    ref = box(empty(), 5, 10, 5, 10, 5, 10)
    m = match_lesions(ref, ref.copy(), SP)
    assert (m.n_reference, m.n_detected, m.n_predicted, m.n_false_positive) == (1, 1, 1, 0)
    assert m.voxel_dice == 1.0
    assert m.reference[0]["coverage"] == 1.0 and m.reference[0]["volume_mm3"] == 125


def test_miss_and_false_positive():
    ref = box(empty(), 5, 10, 5, 10, 5, 10)
    pred = box(empty(), 25, 30, 25, 30, 5, 10)
    m = match_lesions(ref, pred, SP)
    assert m.n_detected == 0 and m.n_false_positive == 1
    assert m.reference[0]["score"] is None
    assert m.voxel_dice == 0.0
    m2 = match_lesions(ref, empty(), SP)
    assert m2.n_detected == 0 and m2.n_predicted == 0


def test_one_big_prediction_over_two_small_lesions_claims_neither():
    ref = box(box(empty(), 5, 8, 5, 8, 5, 8, 1), 12, 15, 5, 8, 5, 8, 2)  # 27 voxels each
    pred = box(empty(), 2, 30, 2, 20, 2, 12)  # 5040 voxels, 99 % outside the lesions
    m = match_lesions(ref, pred, SP)
    assert all(r["coverage"] == 1.0 for r in m.reference)
    assert m.n_detected == 0  # beta guard: the prediction is mostly false positive
    assert m.n_predicted == 1 and m.n_false_positive == 1


def test_prediction_bridging_two_lesions_detects_both():
    ref = box(box(empty(), 5, 10, 5, 10, 5, 10, 1), 14, 19, 5, 10, 5, 10, 2)
    pred = (ref > 0).astype(np.int32)
    pred[10:14, 7, 7] = 1  # a thin bridge: one component, 4 voxels outside the lesions
    m = match_lesions(ref, pred, SP)
    assert m.n_predicted == 1
    assert m.n_detected == 2 and m.n_true_positive == 1


def test_split_predictions_on_one_lesion():
    ref = box(empty(), 5, 15, 5, 10, 5, 10)  # 250 voxels
    pred = box(box(empty(), 5, 9, 5, 10, 5, 10, 1), 11, 15, 5, 10, 5, 10, 1)  # two halves, 80 %
    m = match_lesions(ref, pred, SP)
    assert m.n_predicted == 2
    assert m.n_detected == 1 and m.n_true_positive == 2
    assert m.reference[0]["coverage"] == pytest.approx(0.8)


def test_tiny_overlap_below_alpha_is_a_miss_and_a_false_positive():
    ref = box(empty(), 5, 15, 5, 15, 5, 10)  # 500 voxels
    pred = box(empty(), 5, 10, 5, 10, 5, 6)  # 25 voxels inside: 5 % < alpha
    m = match_lesions(ref, pred, SP)
    assert m.reference[0]["coverage"] == pytest.approx(0.05)
    assert m.n_detected == 0 and m.n_false_positive == 1
    pred2 = box(empty(), 5, 15, 5, 15, 5, 6)  # 100 voxels: 20 % > alpha
    assert match_lesions(ref, pred2, SP).n_detected == 1


def test_gamma_lets_a_sloppy_minor_contributor_pass():
    ref = box(empty(), 10, 20, 10, 20, 5, 10)  # 500 voxels
    good = box(empty(), 10, 20, 10, 17, 5, 10)  # 350 inside, 0 outside
    sloppy = box(empty(), 10, 20, 18, 30, 5, 10)  # 100 inside, 500 outside (83 %)
    pred = good + sloppy
    m = match_lesions(ref, pred, SP)
    assert m.n_predicted == 2
    assert m.n_detected == 1  # the good one alone brings 350/450 = 78 % > gamma
    # the rule is symmetric: the sloppy component still has > alpha of itself in a lesion that
    # the predictions cover well (only 10 % of it is outside them), so Anima counts it as a TP
    assert [p["true_positive"] for p in m.predicted] == [True, True]
    # if the sloppy component carries most of the overlap, the lesion is not detected
    good_small = box(empty(), 10, 20, 10, 12, 5, 10)  # 100 inside
    sloppy_big = box(empty(), 10, 20, 13, 40, 5, 10)  # 350 inside, 1000 outside (74 %)
    assert match_lesions(ref, good_small + sloppy_big, SP).n_detected == 0


def test_detected_rows_on_a_hand_table():
    # rows: background, lesion 1, lesion 2; columns: background, pred 1, pred 2
    t = np.array([[1000, 5, 900], [10, 90, 0], [50, 0, 50]])
    crit = DetectionCriteria()
    assert detected_rows(t, crit).tolist() == [True, False]  # pred 2 is 95 % outside
    assert detected_rows(t.T, crit).tolist() == [True, False]


def test_small_components_dropped_and_instances_kept_apart():
    lab = empty()
    lab[1, 1, 1] = 1  # 1 mm³ <= 3 mm³: dropped
    box(lab, 5, 8, 5, 8, 5, 8, 2)
    box(lab, 8, 11, 5, 8, 5, 8, 3)  # touches instance 2
    cc, src = components(lab, SP)
    assert cc.max() == 2 and sorted(src[1:].tolist()) == [2, 3]
    cc_bin, _ = components(lab, SP, DetectionCriteria(instances=False))
    assert cc_bin.max() == 1
    assert overlap_table(cc, cc_bin).shape == (3, 2)


def test_size_classes_and_stratified_rows():
    assert [size_class(v) for v in (10, 69.9, 70, 500, 500.1)] == [
        "small", "small", "medium", "medium", "large"]
    ref = empty()
    box(ref, 2, 6, 2, 6, 2, 6, 1)  # 64 mm³ small
    box(ref, 10, 15, 2, 7, 2, 8, 2)  # 150 mm³ medium
    box(ref, 20, 30, 10, 20, 2, 10, 3)  # 800 mm³ large
    pred = (ref == 3).astype(np.int32)
    m = match_lesions(ref, pred, SP)
    classes = {r["size_class"]: r["detected"] for r in m.reference}
    assert classes == {"small": False, "medium": False, "large": True}
    # spacing scales volumes: with 1.5 mm along x the same voxels hold 96, 225 and 1200 mm³
    m2 = match_lesions(ref, pred, (1.5, 1.0, 1.0))
    assert [r["size_class"] for r in m2.reference] == ["medium", "medium", "large"]


def test_scores_follow_source_labels():
    ref = box(empty(), 5, 10, 5, 10, 5, 10)
    pred = box(box(empty(), 5, 10, 5, 10, 5, 10, 7), 25, 30, 25, 30, 5, 10, 9)
    m = match_lesions(ref, pred, SP, scores={7: 0.8, 9: 0.3})
    by_src = {p["source_label"]: p for p in m.predicted}
    assert by_src[7]["score"] == 0.8 and by_src[7]["true_positive"]
    assert by_src[9]["score"] == 0.3 and not by_src[9]["true_positive"]
    assert m.reference[0]["score"] == 0.8


def test_dice():
    a = box(empty(), 0, 4, 0, 4, 0, 4)
    b = box(empty(), 2, 6, 0, 4, 0, 4)
    assert dice(a, b) == pytest.approx(0.5)
    assert dice(empty(), empty()) == 1.0
