"""Patient-level metrics: "does this exam have any enhancing lesion?".

Pure functions on 1D arrays: ``y`` (bool, truth: at least one reference enhancing lesion),
``score`` (e.g. ``probability_active``, higher = more likely active) and ``decision`` (bool, the
stored operating point ``refer_for_gadolinium``: True = give gadolinium). ROC AUC is the
Mann-Whitney statistic with average ranks for ties, with a DeLong 95 % interval; proportions
carry Wilson 95 % intervals; calibration is a reliability diagram over equal-width bins and
the expected calibration error ECE = sum_b (n_b / N) |observed_b - predicted_b|.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

from gdsynth.metrics.roc import auc_ci_delong, labels_and_scores, roc_auc, roc_curve

__all__ = ["Z95", "auc_ci_delong", "calibration", "operating_point", "patient_metrics", "roc_auc",
           "roc_curve", "wilson_interval"]

Z95 = float(norm.ppf(0.975))


def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (NaN when n = 0)."""
    if n == 0:
        return float("nan"), float("nan")
    p = k / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return float(max(0.0, centre - half)), float(min(1.0, centre + half))


def _prop(k: int, n: int) -> dict:
    lo, hi = wilson_interval(k, n)
    return {"value": k / n if n else float("nan"), "k": k, "n": n, "ci95": [lo, hi]}


def operating_point(y: np.ndarray, decision: np.ndarray) -> dict:
    """Confusion counts and sensitivity, specificity, PPV, NPV (each with k, n, Wilson CI)."""
    yt, d = labels_and_scores(y, decision)
    d = d.astype(bool)
    tp, fn = int((yt & d).sum()), int((yt & ~d).sum())
    fp, tn = int((~yt & d).sum()), int((~yt & ~d).sum())
    return {
        "tp": tp, "fp": fp, "tn": tn, "fn": fn,
        "sensitivity": _prop(tp, tp + fn),
        "specificity": _prop(tn, tn + fp),
        "ppv": _prop(tp, tp + fp),
        "npv": _prop(tn, tn + fn),
    }


def calibration(y: np.ndarray, probability: np.ndarray, n_bins: int = 10) -> dict:
    """Reliability diagram (equal-width bins on [0, 1]), ECE, maximum calibration error, Brier.

    Each bin: ``lower``, ``upper``, ``count``, ``mean_predicted``, ``observed`` (fraction
    positive; NaN in empty bins). Empty bins do not enter ECE.
    """
    yt, p = labels_and_scores(y, probability)
    if np.any((p < 0) | (p > 1)):
        raise ValueError("probabilities must lie in [0, 1]")
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    idx = np.clip(np.searchsorted(edges, p, side="right") - 1, 0, n_bins - 1)
    bins, ece, mce = [], 0.0, 0.0
    n = len(p)
    for b in range(n_bins):
        sel = idx == b
        count = int(sel.sum())
        mp = float(p[sel].mean()) if count else float("nan")
        obs = float(yt[sel].mean()) if count else float("nan")
        if count:
            gap = abs(obs - mp)
            ece += count / n * gap
            mce = max(mce, gap)
        bins.append({"lower": float(edges[b]), "upper": float(edges[b + 1]), "count": count,
                     "mean_predicted": mp, "observed": obs})
    brier = float(np.mean((p - yt) ** 2)) if n else float("nan")
    return {"bins": bins, "ece": float(ece) if n else float("nan"), "mce": float(mce) if n else
            float("nan"), "brier": brier, "n": n}


def patient_metrics(
    y: np.ndarray, probability: np.ndarray, decision: np.ndarray, n_bins: int = 10
) -> dict:
    """All patient-level metrics in one JSON-ready dict (counts included)."""
    yt, p = labels_and_scores(y, probability)
    lo, hi = auc_ci_delong(yt, p)
    return {
        "n_exams": int(len(yt)),
        "n_active": int(yt.sum()),
        "auc": roc_auc(yt, p),
        "auc_ci95": [lo, hi],
        "operating_point": operating_point(yt, decision),
        "roc": roc_curve(yt, p),
        "calibration": calibration(yt, p, n_bins),
    }
