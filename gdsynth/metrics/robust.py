"""Robust statistics of a sample of voxel values."""

from __future__ import annotations

import numpy as np


def robust_sd(values: np.ndarray) -> float:
    """1.4826 × median absolute deviation (the SD of a Gaussian, robust to outliers); 0.0 for no
    values. Computed in the dtype of ``values`` (pass float64 for a float64 result)."""
    v = np.asarray(values)
    if v.size == 0:
        return 0.0
    return float(1.4826 * np.median(np.abs(v - np.median(v))))
