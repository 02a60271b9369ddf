"""Fit the detection on validation exams: lesion score, patient calibration, operating point.

``cases``: one dict per validation exam with the :func:`detect_lesions` inputs — keys
``enhancement``, ``brain_mask``, ``spacing`` and optionally ``flair``, ``t1w``, ``t2w``,
``uncertainty``, ``heads`` — plus ``truth`` (reference enhancing-lesion labels, (X, Y, Z)) and an
optional ``id``.

Rules (:func:`fit_calibration`):

1. optional hysteresis tuning: each ``(high, low)`` of ``tune_grid`` is run on every case and the
   pair with the best pooled lesion F1 is kept (ties: first in the grid);
2. matching: detections vs reference with :func:`gdsynth.metrics.lesions.match_lesions`
   (MSSEG/Anima: a component counts when ≥ alpha = 10 % of it is covered, with the beta/gamma
   guards); a detection is a positive example when it is a true positive;
3. lesion score: L2 logistic regression (:func:`fit_logistic`) on the score features of all
   detected (not suppressed) candidates; kept only if its log-loss on the validation lesions is
   not worse than the current coefficients';
4. patient calibration: Platt scaling ``sigmoid(a · logit(p_any) + b)`` on exam labels (any
   reference lesion), kept only if not worse than the identity (a=1, b=0) on the same scores;
5. operating point: a ``refer_threshold`` that keeps patient-level sensitivity ≥
   ``target_sensitivity`` on validation (the exams with a lesion, sorted by probability: at most
   ⌊(1 − target) · n_pos⌋ of them may fall below it), placed halfway in logit space between the
   lowest positive exam still referred and the next lower exam (see :func:`choose_threshold`). NPV at that sensitivity is what tells whether
   the injection could be skipped; it is recorded with sensitivity, specificity, PPV and ROC AUC.

Everything measured goes to ``params.calibration_info``. Quality flags are ignored here (the
decision uses the probability only); every validation exam must be a usable brain.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from gdsynth.detection.detect import DetectionResult, detect_lesions, score_lesions
from gdsynth.detection.logistic import fit_logistic, log_loss
from gdsynth.detection.params import SCORE_FEATURES, DetectionParams
from gdsynth.detection.patient import calibrated_probability, probability_any
from gdsynth.detection.scoring import design_matrix, logit, sigmoid
from gdsynth.errors import ConfigError
from gdsynth.metrics.lesions import match_lesions
from gdsynth.metrics.roc import roc_auc

_INPUTS = ("flair", "t1w", "t2w", "uncertainty", "heads")


def run_case(case: dict[str, Any], params: DetectionParams) -> tuple[DetectionResult, list[bool], list[bool]]:
    """Detect on one case; return ``(result, tp per lesion (label order), detected per reference)``."""
    for key in ("enhancement", "brain_mask", "spacing", "truth"):
        if key not in case:
            raise ConfigError(None, f"calibration case {case.get('id', '?')} lacks {key!r}")
    result = detect_lesions(
        case["enhancement"],
        brain_mask=case["brain_mask"],
        spacing=case["spacing"],
        params=params,
        **{k: case.get(k) for k in _INPUTS},
    )
    match = match_lesions(case["truth"], result.labels, tuple(case["spacing"]))
    tp_of = {row["source_label"]: row["true_positive"] for row in match.predicted}
    tp = [bool(tp_of.get(les["label"], False)) for les in result.lesions]
    detected = [bool(row["detected"]) for row in match.reference]
    return result, tp, detected


def lesion_f1(runs: Sequence[tuple[DetectionResult, list[bool], list[bool]]]) -> dict[str, float]:
    """Pooled lesion sensitivity, PPV and F1 over runs of :func:`run_case`."""
    n_pred = sum(len(tp) for _, tp, _ in runs)
    n_tp = sum(sum(tp) for _, tp, _ in runs)
    n_ref = sum(len(d) for _, _, d in runs)
    n_det = sum(sum(d) for _, _, d in runs)
    sens = n_det / n_ref if n_ref else 1.0
    ppv = n_tp / n_pred if n_pred else 1.0
    f1 = 2 * sens * ppv / (sens + ppv) if sens + ppv > 0 else 0.0
    return {"lesion_sensitivity": sens, "lesion_ppv": ppv, "lesion_f1": f1}


def choose_threshold(prob: np.ndarray, positive: np.ndarray, target: float) -> float | None:
    """Refer threshold keeping mean(prob[positive] ≥ t) ≥ ``target``; ``None`` without positives.

    The highest such threshold is the probability p+ of the lowest positive exam still to be
    referred; the threshold is set halfway, in logit space, between p+ and the next lower
    probability of any exam (a margin for unseen exams that refers no extra validation exam).
    """
    pos = np.sort(prob[positive])
    if pos.size == 0:
        return None
    misses = int(math.floor((1.0 - target) * pos.size + 1e-9))
    top = float(pos[min(misses, pos.size - 1)])
    below = prob[prob < top]
    if below.size == 0:
        return top
    return float(sigmoid((logit(top, 1e-9) + logit(float(below.max()), 1e-9)) / 2))


def operating_metrics(prob: np.ndarray, positive: np.ndarray, threshold: float) -> dict[str, Any]:
    """Patient-level sensitivity, specificity, PPV, NPV and ROC AUC (``None`` when undefined) at
    ``threshold``."""
    refer = prob >= threshold
    tp = int(np.sum(refer & positive))
    fn = int(np.sum(~refer & positive))
    tn = int(np.sum(~refer & ~positive))
    fp = int(np.sum(refer & ~positive))

    def ratio(a: int, b: int) -> float | None:
        return a / b if b else None

    auc = roc_auc(positive, prob)
    return {
        "sensitivity": ratio(tp, tp + fn),
        "specificity": ratio(tn, tn + fp),
        "ppv": ratio(tp, tp + fp),
        "npv": ratio(tn, tn + fn),
        "n_positive": tp + fn,
        "n_negative": tn + fp,
        "auc": None if math.isnan(auc) else auc,
    }


def tune_hysteresis(
    cases: Sequence[dict[str, Any]], params: DetectionParams, grid: Sequence[tuple[float, float]]
) -> tuple[DetectionParams, list[dict[str, float]]]:
    """Best ``(high, low)`` of ``grid`` by pooled lesion F1; returns params and the grid table."""
    table, best, best_f1 = [], params, -1.0
    for high, low in grid:
        trial = params.replace(high=float(high), low=float(low))
        stats = lesion_f1([run_case(c, trial) for c in cases])
        table.append({"high": float(high), "low": float(low), **stats})
        if stats["lesion_f1"] > best_f1:
            best, best_f1 = trial, stats["lesion_f1"]
    return best, table


def _patient_probabilities(runs, params: DetectionParams) -> np.ndarray:
    p_any = [probability_any(score_lesions(r.lesions, params)) for r, _, _ in runs]
    return calibrated_probability(np.array(p_any), params)


def fit_calibration(
    cases: Sequence[dict[str, Any]],
    params: DetectionParams | None = None,
    *,
    tune_grid: Sequence[tuple[float, float]] | None = None,
    l2: float = 0.1,
) -> DetectionParams:
    """Fitted copy of ``params`` (see module doc for the rules); details in ``calibration_info``."""
    params = params or DetectionParams()
    if not cases:
        raise ConfigError(None, "fit_calibration needs at least one validation case")
    info: dict[str, Any] = {"n_cases": len(cases), "l2": l2}
    if tune_grid:
        params, info["hysteresis_grid"] = tune_hysteresis(cases, params, tune_grid)
    runs = [run_case(c, params) for c in cases]
    start = params
    info.update(lesion_f1(runs))
    feats = [les for r, _, _ in runs for les in r.lesions]
    y = np.array([t for _, tp, _ in runs for t in tp], dtype=float)
    use_head = params.detector.needs_head
    x = design_matrix(feats, use_head=use_head)
    before = score_lesions(feats, params)
    info.update(n_lesion_candidates=int(y.size), n_true_lesions=int(y.sum()))
    info["lesion_log_loss_before"] = log_loss(y, before)
    coefs = dict(params.score_coefficients)
    if y.size >= 4 and 0 < y.sum() < y.size:
        b, w = fit_logistic(x, y, l2=l2)
        fitted = {"intercept": b, **{n: float(v) for n, v in zip(SCORE_FEATURES, w, strict=True)}}
        if not use_head:
            fitted["head_probability"] = coefs["head_probability"]
        trial = params.replace(score_coefficients=fitted)
        if log_loss(y, score_lesions(feats, trial)) <= info["lesion_log_loss_before"]:
            coefs = fitted
            info["score_fit"] = "fitted"
        else:
            info["score_fit"] = "kept (fit did not lower the log-loss)"
    else:
        info["score_fit"] = "kept (need ≥ 4 candidates of both classes)"
    params = params.replace(score_coefficients=coefs)
    info["lesion_log_loss_after"] = log_loss(y, score_lesions(feats, params))

    positive = np.array([bool(np.any(np.asarray(c["truth"]) > 0)) for c in cases])
    info.update(n_positive_exams=int(positive.sum()), n_negative_exams=int((~positive).sum()))
    info["patient_log_loss_before"] = log_loss(positive, _patient_probabilities(runs, start))
    p_any = np.array([probability_any(score_lesions(r.lesions, params)) for r, _, _ in runs])
    current = log_loss(positive, calibrated_probability(p_any, params))
    if 0 < positive.sum() < positive.size:
        a, w = fit_logistic(logit(p_any)[:, None], positive.astype(float), l2=1e-3)
        trial = params.replace(platt_a=float(w[0]), platt_b=float(a))
        if log_loss(positive, calibrated_probability(p_any, trial)) <= current:
            params = trial
            info["platt_fit"] = "fitted"
        else:
            info["platt_fit"] = "kept (fit did not lower the log-loss)"
    else:
        info["platt_fit"] = "kept (need exams with and without lesions)"
    prob = calibrated_probability(p_any, params)
    info["patient_log_loss_after"] = log_loss(positive, prob)
    threshold = choose_threshold(prob, positive, params.target_sensitivity)
    if threshold is not None:
        params = params.replace(refer_threshold=threshold)
    info["operating_point"] = {
        "refer_threshold": params.refer_threshold,
        "target_sensitivity": params.target_sensitivity,
        **operating_metrics(prob, positive, params.refer_threshold),
    }
    return params.replace(calibration_info=info)
