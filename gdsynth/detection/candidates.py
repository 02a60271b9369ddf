"""Candidate regions: smoothing at the lesion scale, hysteresis, 3D connected components, size.

All arrays are (X, Y, Z) on one grid; ``spacing`` is the voxel size in mm along X, Y, Z.

* :func:`smooth_in_mask` — Gaussian smoothing (sigma in mm) by normalized convolution inside the
  brain mask, so the zero background outside the brain does not pull edge values down and
  enhancement outside the brain does not leak in.
* :func:`remove_background` — subtract the slowly varying enhancement level (normal grey-matter
  enhancement, differing bias fields of the pre and post scans) estimated by a wide Gaussian
  (``background_mm``) of the map clipped at median + 2 robust SD (so lesions do not raise it), and
  estimate the noise as 1.4826 × MAD of what is left inside the brain. The hysteresis thresholds
  are then ``max(high, high_sigmas × noise)`` and ``max(low, low_sigmas × noise)``: a clean
  synthetic map keeps the absolute thresholds, a noisy one (e.g. real post − pre) gets stricter ones
  instead of one brain-wide component.
* :func:`hysteresis_components` — 26-connected components (cc3d) of ``value ≥ low`` that contain
  at least one seed voxel ``value ≥ high``: a seed grows into its whole low-threshold region; a
  low region without a seed is no lesion.
* :func:`trim_to_peak` — keep, in each component, the voxels ≥ ``peak_fraction`` × its peak
  (half maximum by default), so the label follows the enhancing lesion rather than the smoothing
  tail grown down to ``low`` (matters for small lesions: MSSEG matching penalizes a prediction that
  lies mostly outside the lesion); then components are recomputed.
* :func:`remove_small` — drop components below a volume in mm³ and relabel 1..K.
"""

from __future__ import annotations

from collections.abc import Sequence

import cc3d
import numpy as np
from scipy import ndimage as ndi

from gdsynth.metrics.robust import robust_sd


def smooth_in_mask(
    image: np.ndarray, mask: np.ndarray, sigma_mm: float, spacing: Sequence[float]
) -> np.ndarray:
    """Gaussian-smoothed ``image`` (float32) inside ``mask``, 0 outside; ``sigma_mm`` in mm."""
    mask = mask.astype(bool)
    values = np.where(mask, image, 0.0).astype(np.float32)
    if sigma_mm <= 0:
        return values
    sigma = [sigma_mm / float(s) for s in spacing]
    num = ndi.gaussian_filter(values, sigma, mode="constant")
    den = ndi.gaussian_filter(mask.astype(np.float32), sigma, mode="constant")
    out = np.zeros_like(values)
    np.divide(num, den, out=out, where=mask & (den > 1e-3))
    return out


def remove_background(
    smoothed: np.ndarray, mask: np.ndarray, background_mm: float, spacing: Sequence[float]
) -> tuple[np.ndarray, float]:
    """``(smoothed − background, noise SD)`` inside ``mask`` (see module doc); 0 outside.

    ``background_mm`` ≤ 0 skips the background and only estimates the noise.
    """
    mask = mask.astype(bool)
    values = smoothed[mask]
    if values.size == 0:
        return np.zeros_like(smoothed), 0.0
    if background_mm > 0:
        cap = float(np.median(values)) + 2.0 * robust_sd(values)
        background = smooth_in_mask(np.minimum(smoothed, cap), mask, background_mm, spacing)
        residual = np.where(mask, smoothed - background, 0.0).astype(np.float32)
    else:
        residual = np.where(mask, smoothed, 0.0).astype(np.float32)
    return residual, robust_sd(residual[mask])


def hysteresis_components(
    value: np.ndarray, high: float, low: float, mask: np.ndarray | None = None
) -> np.ndarray:
    """int32 labels 1..K of the 26-connected ``value ≥ low`` regions holding a seed ``≥ high``."""
    low_mask = value >= low
    if mask is not None:
        low_mask &= mask.astype(bool)
    if not low_mask.any():
        return np.zeros(value.shape, np.int32)
    labels = cc3d.connected_components(low_mask.astype(np.uint8), connectivity=26)
    seeded = np.unique(labels[low_mask & (value >= high)])
    seeded = seeded[seeded > 0]
    lut = np.zeros(int(labels.max()) + 1, np.int32)
    lut[seeded] = np.arange(1, seeded.size + 1, dtype=np.int32)
    return lut[labels]


def trim_to_peak(labels: np.ndarray, value: np.ndarray, fraction: float,
                 radius_mm: float = 0.0, spacing: Sequence[float] | None = None) -> np.ndarray:
    """Components (int32, 26-connected, relabelled) of voxels ≥ ``fraction`` × their peak
    ``value``; ``fraction`` ≤ 0 returns ``labels`` unchanged. The peak is the component's maximum,
    or with ``radius_mm`` > 0 the maximum of the component within that distance (a box of half
    side ``radius_mm``): a lesion joined by the low threshold to a stronger neighbour (a vessel,
    another lesion) is then trimmed against its own peak, not removed."""
    n = int(labels.max())
    if fraction <= 0 or n == 0:
        return labels
    inside = labels > 0
    if radius_mm > 0 and spacing is not None:
        size = [2 * int(round(radius_mm / float(s))) + 1 for s in spacing]
        peak = np.full(labels.shape, -np.inf, np.float32)
        for lab, sl in enumerate(ndi.find_objects(labels), start=1):
            if sl is None:
                continue
            comp = labels[sl] == lab
            local = ndi.maximum_filter(np.where(comp, value[sl], -np.inf), size=size,
                                       mode="constant", cval=-np.inf)
            peak[sl][comp] = local[comp]
        keep = inside & (value >= fraction * peak)
    else:
        peaks = np.full(n + 1, -np.inf, np.float32)
        np.maximum.at(peaks, labels[inside], value[inside])
        keep = inside & (value >= fraction * peaks[labels])
    return cc3d.connected_components(keep.astype(np.uint8), connectivity=26).astype(np.int32)


def remove_small(labels: np.ndarray, min_volume_mm3: float, spacing: Sequence[float]) -> np.ndarray:
    """Labels with components smaller than ``min_volume_mm3`` removed, relabelled 1..K (int32)."""
    voxel_mm3 = float(np.prod(spacing))
    counts = np.bincount(labels.ravel())
    keep = np.flatnonzero(counts * voxel_mm3 >= min_volume_mm3)
    keep = keep[keep > 0]
    lut = np.zeros(counts.size, np.int32)
    lut[keep] = np.arange(1, keep.size + 1, dtype=np.int32)
    return lut[labels]


def difference_candidates(
    enhancement: np.ndarray,
    brain: np.ndarray,
    spacing: Sequence[float],
    params,  # DetectionParams (not imported: params.py imports nothing from here, keep it so)
    info: dict | None = None,
) -> np.ndarray:
    """int32 candidate components of an enhancement map (the ``difference`` detector): smoothing,
    background removal, noise-scaled hysteresis, trimming to the peak (see module doc).
    ``info`` (when given) receives ``noise_sd``, ``high_used`` and ``low_used``."""
    smoothed = smooth_in_mask(enhancement, brain, params.sigma_mm, spacing)
    residual, noise = remove_background(smoothed, brain, params.background_mm, spacing)
    high = max(params.high, params.high_sigmas * noise)
    low = min(max(params.low, params.low_sigmas * noise), high)
    if info is not None:
        info.update(noise_sd=noise, high_used=high, low_used=low)
    labels = hysteresis_components(residual, high, low, brain)
    return trim_to_peak(labels, residual, params.peak_fraction, params.peak_radius_mm, spacing)


def union_components(*masks: np.ndarray) -> np.ndarray:
    """int32 26-connected components (cc3d) of the union of boolean masks."""
    union = np.zeros(masks[0].shape, bool)
    for m in masks:
        union |= m > 0
    if not union.any():
        return np.zeros(union.shape, np.int32)
    return cc3d.connected_components(union.astype(np.uint8), connectivity=26).astype(np.int32)
