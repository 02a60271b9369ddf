"""ROC analysis of a binary truth ``y`` (bool, e.g. "the exam has an enhancing lesion") against a
``score`` (higher = more likely positive): pure functions on 1D arrays, arguments always
``(y, score)``.

ROC AUC is the Mann-Whitney statistic with average ranks for ties (a tie counts ½), NaN when one
class is absent; its 95 % interval is DeLong's. Used by detection (fitting, held-out figures) and
evaluation (patient-level metrics).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm, rankdata


def labels_and_scores(y: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``y`` as a flat bool array and ``score`` as a flat float64 array of the same length."""
    yt = np.asarray(y, dtype=bool).ravel()
    s = np.asarray(score, dtype=np.float64).ravel()
    if yt.shape != s.shape:
        raise ValueError(f"y {yt.shape} and score {s.shape} differ in length")
    return yt, s


def roc_auc(y: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney U / (n_pos n_neg), ties count 1/2); NaN with one class."""
    yt, s = labels_and_scores(y, score)
    n_pos, n_neg = int(yt.sum()), int((~yt).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    ranks = rankdata(s)  # average ranks handle ties
    return float((ranks[yt].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


def auc_ci_delong(y: np.ndarray, score: np.ndarray, level: float = 0.95) -> tuple[float, float]:
    """DeLong confidence interval of the AUC (normal approximation, clipped to [0, 1])."""
    yt, s = labels_and_scores(y, score)
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
    yt, s = labels_and_scores(y, score)
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
