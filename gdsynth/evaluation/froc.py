"""FROC: lesion sensitivity against false positives per scan, over lesion score thresholds.

Built from :class:`gdsynth.metrics.lesions.LesionMatch` results, in the usual CAD/FROC way
(Chakraborty): every predicted lesion is a mark with a score; a reference lesion counts as found at
threshold ``t`` when its lesion-localisation score (the highest ``t`` at which predicted lesions
passing the beta guard still cover more than alpha of it) is >= ``t``; predicted lesions that
are false positives at the full operating point are the non-lesion marks. Both coordinates are
therefore monotone in ``t`` by construction, and the lowest threshold reproduces exactly the
lesion sensitivity and FP/scan of the Anima matching of the full prediction.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gdsynth.metrics.lesions import LesionMatch

#: FP/scan budgets at which sensitivity is reported (as in LUNA16's CPM).
FP_BUDGETS = (0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0)


def froc_curve(matches: Sequence[LesionMatch]) -> list[dict]:
    """FROC points over all exams, threshold decreasing.

    Each point: ``threshold``, ``sensitivity`` (detected / reference lesions, NaN without any),
    ``fp_per_scan`` (false positives / exams), ``n_detected``, ``n_false_positive``. The first
    point (threshold +inf) is (0, 0).
    """
    n_scans = len(matches)
    lesion_scores = np.array(
        [r["score"] for m in matches for r in m.reference if r["score"] is not None], dtype=float
    )
    n_ref = sum(m.n_reference for m in matches)
    fp_scores = np.array(
        [p["score"] for m in matches for p in m.predicted if not p["true_positive"]], dtype=float
    )
    thresholds = np.unique(np.concatenate([lesion_scores, fp_scores]))[::-1]
    points = [_point(float("inf"), 0, 0, n_ref, n_scans)]
    for t in thresholds:
        points.append(_point(float(t), int((lesion_scores >= t).sum()), int((fp_scores >= t).sum()),
                             n_ref, n_scans))
    return points


def _point(t: float, detected: int, fps: int, n_ref: int, n_scans: int) -> dict:
    return {
        "threshold": t,
        "sensitivity": detected / n_ref if n_ref else float("nan"),
        "fp_per_scan": fps / n_scans if n_scans else float("nan"),
        "n_detected": detected,
        "n_false_positive": fps,
    }


def sensitivity_at(points: Sequence[dict], fp_per_scan: float) -> float:
    """Best sensitivity reached with at most ``fp_per_scan`` false positives per scan."""
    ok = [p["sensitivity"] for p in points if p["fp_per_scan"] <= fp_per_scan]
    return float(max(ok)) if ok else float("nan")


def froc_summary(points: Sequence[dict], budgets: Sequence[float] = FP_BUDGETS) -> dict:
    """Sensitivity at each FP/scan budget and their mean (the competition performance metric)."""
    at = {f"{b:g}": sensitivity_at(points, b) for b in budgets}
    vals = [v for v in at.values() if v == v]
    return {"sensitivity_at_fp_per_scan": at,
            "cpm": float(np.mean(vals)) if len(vals) == len(at) else float("nan")}
