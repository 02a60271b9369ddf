"""Is the uncertainty useful? Sparsification, lesion/patient calibration, refer-for-Gd policy.

Pure functions on 1D arrays (flatten voxel maps first, inside the brain):

* :func:`sparsification` — remove voxels by decreasing predicted ``std`` (MC-dropout SD,
  normalized units), the error (mean ``|synthetic − real|`` by default) of the rest at each removed
  fraction; the *oracle* removes by decreasing true error. Both curves are normalized by the error
  with nothing removed. :func:`ause` = area between the two (0 = std ranks errors perfectly; a
  random std gives ~ the area under the oracle's complement, large);
* :func:`lesion_calibration` — reliability of per-lesion scores vs "is a true lesion"
  (:func:`gdsynth.evaluation.patient.calibration`);
* :func:`patient_calibration` — the same per exam (``probability_active`` vs active);
* :func:`referral_curve` — the policy "give gadolinium when the score ≥ t": over thresholds, the
  share of exams referred, sensitivity (active exams referred) and NPV (exams not referred that
  are truly inactive), with Wilson intervals from :func:`~gdsynth.evaluation.patient.wilson_interval`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gdsynth.evaluation.patient import calibration, wilson_interval


def _flat(*arrays: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(a, dtype=np.float64).ravel() for a in arrays]
    if len({a.size for a in out}) != 1:
        raise ValueError(f"arrays differ in size: {[a.size for a in out]}")
    return out


def _curve(error: np.ndarray, order: np.ndarray, fractions: np.ndarray) -> np.ndarray:
    """Mean error of what remains after removing the first ``f`` × N voxels of ``order``."""
    sorted_err = error[order]
    # suffix means: remaining = sorted_err[k:]
    csum = np.concatenate([np.cumsum(sorted_err[::-1])[::-1], [0.0]])
    n = error.size
    k = np.minimum((fractions * n).round().astype(int), n - 1)
    return csum[k] / (n - k)


def sparsification(std: np.ndarray, error: np.ndarray, n_points: int = 50) -> dict[str, Any]:
    """Sparsification curves: ``fractions`` removed (0 .. (n-1)/n), ``by_std``, ``oracle``,
    ``random`` (flat at 1) — each the remaining mean error / the full mean error — and ``ause``."""
    s, e = _flat(std, error)
    e = np.abs(e)
    if e.size == 0:
        raise ValueError("no voxels")
    fractions = np.linspace(0.0, 1.0, n_points, endpoint=False)
    full = float(e.mean()) or 1.0
    by_std = _curve(e, np.argsort(-s, kind="stable"), fractions) / full
    oracle = _curve(e, np.argsort(-e, kind="stable"), fractions) / full
    return {"fractions": fractions.tolist(), "by_std": by_std.tolist(),
            "oracle": oracle.tolist(), "random": [1.0] * n_points,
            "ause": ause(fractions, by_std, oracle), "full_error": float(e.mean())}


def ause(fractions: Sequence[float], by_std: Sequence[float], oracle: Sequence[float]) -> float:
    """Area Under the Sparsification Error: ∫ (by_std − oracle) d(fraction) (trapezoid)."""
    f = np.asarray(fractions, float)
    gap = np.asarray(by_std, float) - np.asarray(oracle, float)
    return float(np.sum((gap[1:] + gap[:-1]) * np.diff(f)) / 2.0)


def lesion_calibration(score: np.ndarray, is_true: np.ndarray, n_bins: int = 10) -> dict:
    """Per-lesion reliability: predicted-lesion ``score`` (0..1) vs matched to a reference lesion."""
    return calibration(np.asarray(is_true, bool), np.asarray(score, float), n_bins)


def patient_calibration(probability: np.ndarray, active: np.ndarray, n_bins: int = 10) -> dict:
    """Per-exam reliability of ``probability_active`` vs "has an enhancing lesion"."""
    return calibration(np.asarray(active, bool), np.asarray(probability, float), n_bins)


def referral_curve(score: np.ndarray, active: np.ndarray,
                   thresholds: Sequence[float] | None = None) -> list[dict[str, Any]]:
    """Refer-for-gadolinium policy over thresholds (refer when ``score >= t``), one dict per
    threshold: ``threshold``, ``referred`` (share of exams), ``sensitivity`` and ``npv`` (NaN when
    undefined) with ``*_ci`` Wilson 95 % intervals, and counts ``tp, fn, tn, fp``. Default
    thresholds: every distinct score plus +inf (nobody referred) and 0 (everybody)."""
    s, y = _flat(score, np.asarray(active, float))
    y = y > 0.5
    if thresholds is None:
        thresholds = sorted({0.0, *s.tolist(), float("inf")}, reverse=True)
    rows = []
    for t in thresholds:
        refer = s >= t
        tp, fn = int((refer & y).sum()), int((~refer & y).sum())
        tn, fp = int((~refer & ~y).sum()), int((refer & ~y).sum())
        rows.append({
            "threshold": float(t), "referred": float(refer.mean()) if s.size else float("nan"),
            "sensitivity": tp / (tp + fn) if tp + fn else float("nan"),
            "sensitivity_ci": list(wilson_interval(tp, tp + fn)),
            "npv": tn / (tn + fn) if tn + fn else float("nan"),
            "npv_ci": list(wilson_interval(tn, tn + fn)),
            "tp": tp, "fn": fn, "tn": tn, "fp": fp,
        })
    return rows
