"""Image-synthesis metrics inside a mask, in normalized intensity units (NAWM = 1.0).

Pure functions on (X, Y, Z) float arrays on one grid:

* MAE: mean |synthetic - real| over the mask.
* PSNR = 10 log10(L² / MSE) over the mask with a **fixed data range** L = :data:`DATA_RANGE`
  = 2.0 normalized units (NAWM = 1, so 0..2 spans background to enhancing tissue), the same for
  every exam and method so numbers compare; never the per-image maximum.
* SSIM, 3D: the Wang et al. map with a Gaussian window (sigma 1.5 voxels, truncated at 3.5 sigma,
  i.e. 11 taps), K1 = 0.01, K2 = 0.03, population (not sample) covariances and C = (K L)² with the
  same fixed L, computed on the whole volume after setting voxels outside the brain mask to 0 in
  both images (so skull and background never enter a window), then averaged over the mask.
  Equal to ``skimage.metrics.structural_similarity(..., gaussian_weights=True, sigma=1.5,
  use_sample_covariance=False, data_range=L, full=True)``'s map.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Fixed PSNR/SSIM data range (normalized intensity units, NAWM = 1.0).
DATA_RANGE = 2.0


def _pair(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None):
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"images differ in shape: {x.shape} vs {y.shape}")
    m = np.ones(x.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool)
    if m.shape != x.shape:
        raise ValueError(f"mask {m.shape} does not match images {x.shape}")
    return x, y, m


def mae(synthetic: np.ndarray, real: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error over the mask (normalized units); NaN for an empty mask."""
    x, y, m = _pair(synthetic, real, mask)
    return float(np.abs(x[m] - y[m]).mean()) if m.any() else float("nan")


def mean_error(synthetic: np.ndarray, real: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean signed error (synthetic - real) over the mask: > 0 means too bright."""
    x, y, m = _pair(synthetic, real, mask)
    return float((x[m] - y[m]).mean()) if m.any() else float("nan")


def psnr(synthetic: np.ndarray, real: np.ndarray, mask: np.ndarray | None = None,
         data_range: float = DATA_RANGE) -> float:
    """Peak signal-to-noise ratio (dB) over the mask with a fixed data range; inf if identical."""
    x, y, m = _pair(synthetic, real, mask)
    if not m.any():
        return float("nan")
    mse = float(((x[m] - y[m]) ** 2).mean())
    return float("inf") if mse == 0 else float(10.0 * np.log10(data_range**2 / mse))


def ssim_map_3d(synthetic: np.ndarray, real: np.ndarray, data_range: float = DATA_RANGE, *,
             sigma: float = 1.5, k1: float = 0.01, k2: float = 0.03) -> np.ndarray:
    """Local SSIM of two (X, Y, Z) volumes (Gaussian window, reflect borders), float64 map."""
    x, y, _ = _pair(synthetic, real, None)

    def smooth(a: np.ndarray) -> np.ndarray:
        return ndi.gaussian_filter(a, sigma=sigma, truncate=3.5, mode="reflect")

    ux, uy = smooth(x), smooth(y)
    vx = smooth(x * x) - ux * ux
    vy = smooth(y * y) - uy * uy
    vxy = smooth(x * y) - ux * uy
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))


def ssim(synthetic: np.ndarray, real: np.ndarray, mask: np.ndarray | None = None,
         data_range: float = DATA_RANGE) -> float:
    """3D SSIM averaged over the mask, on volumes zeroed outside it (see module docstring)."""
    x, y, m = _pair(synthetic, real, mask)
    if not m.any():
        return float("nan")
    if mask is not None:
        x, y = np.where(m, x, 0.0), np.where(m, y, 0.0)
    return float(ssim_map_3d(x, y, data_range)[m].mean())


def synthesis_metrics(
    synthetic: np.ndarray,
    real: np.ndarray,
    brain: np.ndarray,
    regions: dict[str, np.ndarray] | None = None,
    data_range: float = DATA_RANGE,
) -> dict[str, float]:
    """MAE, PSNR and SSIM in the brain, plus MAE, mean error and PSNR in each named region
    (e.g. ``{"enhancing": ..., "lesions": ...}``; keys ``mae_<name>``, ...). Regions are
    intersected with the brain; an empty region gives NaN."""
    b = np.asarray(brain, dtype=bool)
    out = {
        "mae": mae(synthetic, real, b),
        "psnr": psnr(synthetic, real, b, data_range),
        "ssim": ssim(synthetic, real, b, data_range),
    }
    for name, region in (regions or {}).items():
        r = np.asarray(region, dtype=bool) & b
        out[f"mae_{name}"] = mae(synthetic, real, r)
        out[f"bias_{name}"] = mean_error(synthetic, real, r)
        out[f"psnr_{name}"] = psnr(synthetic, real, r, data_range)
        out[f"voxels_{name}"] = int(r.sum())
    return out
