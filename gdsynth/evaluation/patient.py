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
from scipy.stats import norm, rankdata

Z95 = float(norm.ppf(0.975))


def _xy(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    yt = np.asarray(y, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if yt.shape != s.shape:
        raise ValueError(f"y {yt.shape} and score {s.shape} differ in length")
    return yt, s


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg), ties count 1/2); NaN with one class."""
    yt, s = _xy(y, score)
    n_pos, n_neg = int(yt.sum()), int((~yt).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks handle ties
    return float((ranks[yt].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_ci_delong(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """DeLong confidence interval of the AUC (normal approximation, clipped to [0, 1])."""
    yt, s = _xy(y, score)
    pos, neg = s[yt], s[~yt]
    if len(pos) < 2 or len(neg) < 2:
        return float("nan"), float("nan")
    psi = (pos[:, None] > neg[None, :]) + 0.5 * (pos[:, None] == neg[None, :])
    auc = psi.mean()
    var = psi.mean(axis=1).var(ddof=1) / len(pos) + psi.mean(axis=0).var(ddof=1) / len(neg)
    z = float(norm.ppf(0.5 + level / 2))
    half = z * np.sqrt(var)
    return float(max(0.0, auc - half)), float(min(1.0, auc + half))


def roc_curve(y: np.ndarray, score: np.ndarray) -> list[dict]:
    """ROC points (``threshold``, ``fpr``, ``tpr``), threshold decreasing, from (0, 0) to (1, 1);
    a case is called positive when ``score >= threshold``."""
    yt, s = _xy(y, score)
    n_pos, n_neg = int(yt.sum()), int((~yt).sum())
    points = [{"threshold": float("inf"), "fpr": 0.0, "tpr": 0.0}]
    for t in np.unique(s)[::-1]:
        called = s >= t
        points.append({
            "threshold": float(t),
            "fpr": float((called & ~yt).sum() / n_neg) if n_neg else float("nan"),
            "tpr": float((called & yt).sum() / n_pos) if n_pos else float("nan"),
        })
    return points


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
    yt, d = _xy(y, decision)
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
    yt, p = _xy(y, probability)
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
    yt, p = _xy(y, probability)
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
