"""Fit the lesion stage on held-out exams, cross-fitted: out-of-fold scores calibrate it.

Input: one :class:`StageCase` per exam whose maps come from a generator that never trained on
it (:func:`label_case` matches the exam's union candidates to its reference enhancing lesions with
the MSSEG rule of :mod:`gdsynth.metrics.lesions`).

:func:`fit_stage`:

1. exams are split into ``folds`` (stratified by "has an enhancing lesion"); for each fold the
   classifier is fitted on the other folds' candidates and scores this fold's: every exam gets
   out-of-fold (OOF) lesion scores from a classifier that never saw it;
2. each classifier kind (:class:`gdsynth.detection.classifier.ClassifierKind`) is tried; the one
   with the lower OOF log-loss is kept (``kinds`` restricts the choice);
3. lesion threshold: the OOF score threshold with the best pooled lesion F1 (the ``_dseg``
   operating point);
4. exam model: Platt scaling of logit(max OOF lesion score) against "exam has an enhancing
   lesion", then the refer threshold keeping OOF exam sensitivity ≥ ``target_sensitivity``
   (:func:`gdsynth.detection.calibration.choose_threshold`);
5. the final classifier is fitted on every candidate; the OOF figures (lesion F1, exam AUC with
   its DeLong CI, sensitivity/specificity/NPV at the refer threshold) go to ``heldout``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from gdsynth.detection.calibration import choose_threshold, operating_metrics
from gdsynth.detection.classifier import ClassifierKind, fit_model, parse_kind, predict_proba
from gdsynth.detection.scoring import logit
from gdsynth.detection.stage import LesionStage
from gdsynth.detection.stage_features import STAGE_FEATURES, CandidateSettings, feature_matrix
from gdsynth.errors import ConfigError
from gdsynth.evaluation.report import jsonable
from gdsynth.metrics.lesions import (
    DetectionCriteria,
    components,
    detected_rows,
    overlap_table,
    size_class,
)
from gdsynth.metrics.roc import auc_ci_delong, roc_auc


@dataclass
class StageCase:
    """One exam's candidates and their match to the reference.

    ``tp[c]``: candidate c is a true positive; ``cover[r]``: (candidate index, fraction of
    reference lesion r it covers) for the candidates that may count for r; ``reference``: one
    dict per reference lesion (``volume_mm3``, ``size_class``, ``source_label``).
    """

    id: str
    features: list[dict[str, Any]]
    tp: np.ndarray
    cover: list[list[tuple[int, float]]] = field(default_factory=list)
    reference: list[dict[str, Any]] = field(default_factory=list)

    @property
    def positive(self) -> bool:
        return bool(self.reference)


def label_case(case_id: str, labels: np.ndarray, features: list[dict[str, Any]],
               truth: np.ndarray, spacing: Sequence[float]) -> StageCase:
    """Match candidate ``labels`` (1..K, ``features[k-1]`` for label k) to the reference."""
    crit = DetectionCriteria()
    sp = tuple(float(s) for s in spacing)
    ref_cc, ref_src = components(truth, sp, crit)
    pred_cc, pred_src = components(labels, sp, crit)
    table = overlap_table(ref_cc, pred_cc)
    full = np.zeros((len(ref_src), len(pred_src)), dtype=np.int64)
    full[: table.shape[0], : table.shape[1]] = table
    index_of = {int(f["label"]): i for i, f in enumerate(features)}
    tp = np.zeros(len(features), dtype=bool)
    for j, ok in enumerate(detected_rows(full.T, crit), start=1):
        if ok and int(pred_src[j]) in index_of:
            tp[index_of[int(pred_src[j])]] = True
    outside = full[0] / np.maximum(full.sum(axis=0), 1)
    voxel = float(np.prod(sp))
    cover, reference = [], []
    for i in range(1, len(ref_src)):
        size = int(full[i].sum())
        cover.append([(index_of[int(pred_src[j])], full[i, j] / max(size, 1))
                      for j in np.flatnonzero(full[i]) if j > 0 and outside[j] <= crit.beta
                      and int(pred_src[j]) in index_of])
        reference.append({"source_label": int(ref_src[i]), "volume_mm3": size * voxel,
                          "size_class": size_class(size * voxel)})
    return StageCase(case_id, list(features), tp, cover, reference)


def lesion_counts(cases: Sequence[StageCase], scores: Sequence[np.ndarray], threshold: float
                  ) -> dict[str, float]:
    """Pooled lesion sensitivity, PPV, F1 and FP per scan when candidates ≥ ``threshold`` are kept
    (a reference lesion is detected when the kept candidates cover > 10 % of it)."""
    n_pred = n_tp = n_ref = n_det = 0
    for case, s in zip(cases, scores, strict=True):
        keep = s >= threshold
        n_pred += int(keep.sum())
        n_tp += int((keep & case.tp).sum())
        n_ref += len(case.cover)
        n_det += sum(sum(f for c, f in cov if keep[c]) > 0.10 for cov in case.cover)
    sens = n_det / n_ref if n_ref else float("nan")
    ppv = n_tp / n_pred if n_pred else float("nan")
    f1 = 2 * sens * ppv / (sens + ppv) if n_ref and n_pred and sens + ppv > 0 else 0.0
    return {"lesion_sensitivity": sens, "lesion_ppv": ppv, "lesion_f1": f1,
            "fp_per_scan": (n_pred - n_tp) / max(len(cases), 1), "n_reference": n_ref,
            "n_detected": n_det, "n_predicted": n_pred, "n_true_positive": n_tp}


def best_lesion_threshold(cases: Sequence[StageCase], scores: Sequence[np.ndarray]) -> float:
    """The score threshold (a midpoint between sorted scores) with the best pooled lesion F1."""
    allscores = np.unique(np.concatenate([s for s in scores if len(s)] or [np.zeros(0)]))
    if allscores.size == 0:
        return 0.5
    cuts = np.concatenate([[allscores[0] / 2], (allscores[1:] + allscores[:-1]) / 2])
    best, best_f1 = 0.5, -1.0
    for t in cuts:
        f1 = lesion_counts(cases, scores, float(t))["lesion_f1"]
        if f1 > best_f1 + 1e-12:
            best, best_f1 = float(t), f1
    return best


def _folds(cases: Sequence[StageCase], k: int) -> np.ndarray:
    order = sorted(range(len(cases)), key=lambda i: (not cases[i].positive, cases[i].id))
    fold = np.zeros(len(cases), dtype=int)
    for rank, i in enumerate(order):
        fold[i] = rank % k
    return fold


def _log_loss(y: np.ndarray, p: np.ndarray) -> float:
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p))) if y.size else float("nan")


def oof_scores(cases: Sequence[StageCase], features: Sequence[str], kind: ClassifierKind,
               folds: int) -> list[np.ndarray]:
    """Out-of-fold lesion scores of every case (a fold without both classes scores the prior)."""
    fold = _folds(cases, folds)
    out: list[np.ndarray] = [np.zeros(0)] * len(cases)
    for f in range(folds):
        train = [c for c, g in zip(cases, fold, strict=True) if g != f]
        x = feature_matrix([feat for c in train for feat in c.features], features)
        y = np.concatenate([c.tp for c in train]) if train else np.zeros(0, bool)
        model = fit_model(x, y, kind) if 0 < y.sum() < y.size else None
        for i in np.flatnonzero(fold == f):
            xi = feature_matrix(cases[i].features, features)
            out[i] = predict_proba(model, xi) if model is not None else \
                np.full(len(xi), float(y.mean()) if y.size else 0.0)
    return out


def fit_stage(
    cases: Sequence[StageCase], *, features: Sequence[str] = STAGE_FEATURES,
    kinds: Sequence[str] = ("logistic", "trees"), folds: int = 5,
    target_sensitivity: float = 0.95, settings: CandidateSettings | None = None,
) -> tuple[LesionStage, list[np.ndarray]]:
    """Fitted :class:`LesionStage` and the OOF lesion scores per case (see module doc)."""
    cases = list(cases)
    y = np.concatenate([c.tp for c in cases]) if cases else np.zeros(0, bool)
    positive = np.array([c.positive for c in cases])
    if len(cases) < 2 or not 0 < y.sum() < y.size:
        raise ConfigError(None, f"the lesion stage needs ≥ 2 held-out exams whose candidates hold "
                                f"true and false lesions (got {len(cases)} exams, {int(y.sum())} "
                                f"true of {y.size} candidates)")
    k = max(2, min(folds, len(cases)))
    tried: dict[str, Any] = {}
    best = None
    for name in kinds:
        kind = parse_kind(name)
        scores = oof_scores(cases, features, kind, k)
        loss = _log_loss(y.astype(float), np.concatenate(scores))
        tried[kind.value] = {"oof_log_loss": loss}
        if best is None or loss < best[1]:
            best = (kind, loss, scores)
    assert best is not None
    kind, _, scores = best
    lesion_threshold = best_lesion_threshold(cases, scores)
    top = np.array([float(s.max()) if len(s) else 0.0 for s in scores])
    a, b = 1.0, 0.0
    if 0 < positive.sum() < positive.size:
        from sklearn.linear_model import LogisticRegression

        z = logit(top)[:, None]
        fit = LogisticRegression(C=100.0, max_iter=1000).fit(z, positive.astype(int))
        a, b = float(fit.coef_[0, 0]), float(fit.intercept_[0])
        if a <= 0:  # the exam score must not rank backwards; keep the identity
            a, b = 1.0, 0.0
    prob = 1 / (1 + np.exp(-(a * logit(top) + b)))
    refer = choose_threshold(prob, positive, target_sensitivity)
    refer = float(refer) if refer is not None else 0.5
    auc = roc_auc(positive, prob) if 0 < positive.sum() < positive.size else float("nan")
    ci = auc_ci_delong(positive, prob) if 0 < positive.sum() < positive.size else (float("nan"),) * 2
    heldout = {
        "protocol": f"{k}-fold out-of-fold scores on {len(cases)} held-out exams",
        "n_exams": len(cases), "n_active_exams": int(positive.sum()),
        "n_candidates": int(y.size), "n_true_candidates": int(y.sum()),
        "classifier": kind.value, "classifiers_tried": tried,
        "lesion": lesion_counts(cases, scores, lesion_threshold),
        "exam_auc": auc, "exam_auc_ci95": list(ci),
        "exam_operating_point": operating_metrics(prob, positive, refer),
        "exams": [c.id for c in cases],
    }
    heldout = jsonable(heldout)
    x = feature_matrix([f for c in cases for f in c.features], features)
    stage = LesionStage(features=list(features), model=fit_model(x, y, kind), exam_a=a, exam_b=b,
                        lesion_threshold=lesion_threshold, refer_threshold=refer,
                        target_sensitivity=target_sensitivity,
                        candidates=settings or CandidateSettings(), heldout=heldout)
    return stage, scores
