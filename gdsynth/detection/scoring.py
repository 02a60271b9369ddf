"""Per-lesion score in 0..1: a logistic model on a few features.

``score = sigmoid(intercept + Σ_f coef_f · x_f)`` with the features of :data:`SCORE_FEATURES`:

=====================  ==================================================================
``max_enhancement``    max of the enhancement map on the lesion (normalized units)
``mean_enhancement``   mean of the enhancement map on the lesion
``log_volume``         ln(volume in mm³)
``flair_excess``       flair_contrast − 1 (0 when neither FLAIR nor T2w is given)
``mean_uncertainty``   mean uncertainty (MC-dropout std, normalized units; 0 when absent)
``log_elongation``     ln(elongation) (0 for a sphere)
``surface_term``       min(distance to brain edge, 10 mm) / 10 mm
``csf_term``           min(distance to CSF, 10 mm) / 10 mm (1 when no CSF estimate)
``head_probability``   max "enhancing" head probability (detectors with ``needs_head`` only)
=====================  ==================================================================

Hand-set defaults live in :data:`gdsynth.detection.params.DEFAULT_SCORE_COEFFICIENTS`; fitted
ones come from :func:`gdsynth.detection.calibration.fit_calibration`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from gdsynth.detection.params import SCORE_FEATURES


def sigmoid(x: np.ndarray | float) -> np.ndarray:
    """Numerically stable logistic function."""
    x = np.asarray(x, dtype=float)
    return np.where(x >= 0, 1 / (1 + np.exp(-np.abs(x))), np.exp(-np.abs(x)) / (1 + np.exp(-np.abs(x))))


def logit(p: np.ndarray | float, eps: float = 1e-4) -> np.ndarray:
    """log(p / (1 − p)) with p clipped to [eps, 1 − eps]."""
    p = np.clip(np.asarray(p, dtype=float), eps, 1 - eps)
    return np.log(p / (1 - p))


def feature_vector(feat: Mapping[str, Any], *, use_head: bool) -> np.ndarray:
    """The score features (in :data:`SCORE_FEATURES` order) of one candidate's feature dict."""
    flair = feat.get("flair_contrast")
    unc = feat.get("mean_uncertainty")
    dcsf = feat.get("dist_csf_mm")
    head = feat.get("head_max")
    values = {
        "max_enhancement": feat["max_enhancement"],
        "mean_enhancement": feat["mean_enhancement"],
        "log_volume": np.log(max(feat["volume_mm3"], 1e-3)),
        "flair_excess": 0.0 if flair is None else flair - 1.0,
        "mean_uncertainty": 0.0 if unc is None else unc,
        "log_elongation": np.log(max(feat["elongation"], 1.0)),
        "surface_term": min(feat["dist_surface_mm"], 10.0) / 10.0,
        "csf_term": 1.0 if dcsf is None else min(dcsf, 10.0) / 10.0,
        "head_probability": float(head) if (use_head and head is not None) else 0.0,
    }
    return np.array([values[name] for name in SCORE_FEATURES], dtype=float)


def design_matrix(feats: list[Mapping[str, Any]], *, use_head: bool) -> np.ndarray:
    """(N, F) matrix of :func:`feature_vector` rows."""
    if not feats:
        return np.zeros((0, len(SCORE_FEATURES)))
    return np.stack([feature_vector(f, use_head=use_head) for f in feats])


def score_matrix(x: np.ndarray, coefficients: Mapping[str, float]) -> np.ndarray:
    """Scores (N,) in 0..1 of a design matrix (N, F)."""
    w = np.array([coefficients.get(name, 0.0) for name in SCORE_FEATURES], dtype=float)
    return sigmoid(coefficients.get("intercept", 0.0) + x @ w)
