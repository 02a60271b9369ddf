"""Intensity normalization to normal-appearing white matter (NAWM = 1.0 on every sequence).

Choice: one NAWM mask per exam, defined on the *pre-contrast* images only:

1. inside the brain mask, a 3-class 1D k-means on the pre T1w (smoothed 1 mm); the brightest class is white
   matter (WM is brightest on T1w);
2. eroded by ``erode_mm`` (at least one voxel) so partial-volume borders with grey matter and CSF are excluded;
3. minus voxels hyperintense on FLAIR (or T2w when FLAIR is absent): above the WM median by
   more than ``lesion_mads`` robust standard deviations. These are MS lesions and oedema.

Every image, the registered real post-Gd T1w included, is divided by the median of *its own*
values inside this *same* mask. Effect: normal white matter is 1.0 on every sequence, so the
enhancement post − pre is ≈ 0 in normal tissue (a global gain change or a mild diffuse white
matter uptake of gadolinium cancels), while enhancing lesions — excluded from the mask on FLAIR,
and a tiny fraction of it anyway — keep their positive difference. Defining the mask on the post
image instead would let enhancement enter the reference; defining it per sequence would compare
different tissue on pre and post.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from gdsynth.metrics.robust import robust_sd
from gdsynth.preprocess.mask import erode_mm


def kmeans_1d(values: np.ndarray, k: int = 3, iterations: int = 50) -> np.ndarray:
    """Sorted centres of a deterministic 1D k-means (initialised at evenly spaced quantiles)."""
    v = np.asarray(values, np.float64).ravel()
    centres = np.quantile(v, (np.arange(k) + 0.5) / k)
    for _ in range(iterations):
        edges = (centres[:-1] + centres[1:]) / 2
        cls = np.searchsorted(edges, v)
        new = np.array([v[cls == c].mean() if np.any(cls == c) else centres[c] for c in range(k)])
        if np.allclose(new, centres, rtol=0, atol=1e-9 * max(1.0, float(np.abs(v).max()))):
            break
        centres = new
    return np.sort(centres)


def nawm_mask(
    t1w: np.ndarray,
    brain: np.ndarray,
    spacing: tuple[float, ...],
    *,
    lesion_image: np.ndarray | None = None,
    erode_mm_: float = 1.5,
    lesion_mads: float = 3.0,
    min_voxels: int = 50,
) -> np.ndarray:
    """Normal-appearing white matter (bool, (X, Y, Z)); see the module docstring."""
    # classify a smoothed copy: thresholding the raw image would pick voxels whose *noise* is
    # positive, biasing the pre-contrast median up against any other image on the same mask
    smooth = ndi.gaussian_filter(np.asarray(t1w, np.float32), sigma=[1.0 / s for s in spacing])
    vals = smooth[brain]
    if vals.size < min_voxels:
        return brain.copy()
    centres = kmeans_1d(vals[:: max(1, vals.size // 200_000)])
    wm = brain & (smooth > (centres[1] + centres[2]) / 2)
    eroded = erode_mm(wm, max(erode_mm_, 1.01 * max(spacing)), spacing)  # >= one voxel
    nawm = eroded if eroded.sum() >= min_voxels else wm
    if lesion_image is not None and nawm.any():
        les = ndi.gaussian_filter(np.asarray(lesion_image, np.float32),
                                  sigma=[1.0 / s for s in spacing])
        ref = les[nawm]
        hyper = les > np.median(ref) + lesion_mads * max(robust_sd(ref.astype(np.float64)), 1e-6)
        kept = nawm & ~hyper
        if kept.sum() >= min_voxels:
            nawm = kept
    return nawm


def nawm_median(image: np.ndarray, nawm: np.ndarray) -> float:
    """Median of ``image`` inside the NAWM mask (the normalization divisor)."""
    return float(np.median(image[nawm]))
