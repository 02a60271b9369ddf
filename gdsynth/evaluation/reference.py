"""Reference arrays that are computed rather than read: intensity normalization for synthesis
metrics, NAWM masks, and an enhancement reference derived from a real post-Gd scan.

Pure functions on (X, Y, Z) arrays of one grid, spacing in mm.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

#: Smoothing (mm) of the prepared/raw T1w ratio that recovers the input-scale factor field.
SCALE_SIGMA_MM = 8.0


def scale_field(prepared_pre: np.ndarray, raw_pre: np.ndarray, brain: np.ndarray,
                spacing: tuple[float, ...], sigma_mm: float = SCALE_SIGMA_MM) -> np.ndarray:
    """Smooth field ``f`` with ``raw_pre × f ≈ prepared_pre`` in the brain (float32, (X, Y, Z)).

    Inference writes the synthetic post in the input T1w scale (normalized × NAWM median × bias
    field); multiplying it by ``f`` undoes that. ``f = G[prepared · brain] / G[raw · brain]``
    (Gaussian G of ``sigma_mm``) is exact for a constant factor and follows a smooth bias field;
    outside the brain it holds the brain's median ratio.
    """
    b = np.asarray(brain, dtype=bool)
    p = np.where(b, np.asarray(prepared_pre, dtype=np.float64), 0.0)
    r = np.where(b, np.asarray(raw_pre, dtype=np.float64), 0.0)
    sigma = [sigma_mm / s for s in spacing]
    num, den = ndi.gaussian_filter(p, sigma), ndi.gaussian_filter(r, sigma)
    ok = b & (np.abs(r) > 0)
    fallback = float(np.median(p[ok] / r[ok])) if ok.any() else 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(b & (np.abs(den) > 1e-12), num / den, fallback)
    return f.astype(np.float32)


def nawm_from_truth(brain: np.ndarray, wm_probability: np.ndarray | None = None,
              lesions: np.ndarray | None = None) -> np.ndarray:
    """Normal-appearing white matter: WM probability >= 0.5 (else the whole brain) inside the
    brain, minus lesions dilated by one voxel (26-neighbourhood)."""
    m = np.asarray(brain, dtype=bool).copy()
    if wm_probability is not None:
        m &= np.asarray(wm_probability) >= 0.5
    if lesions is not None:
        m &= ~ndi.binary_dilation(np.asarray(lesions) > 0, structure=np.ones((3, 3, 3), bool))
    return m


def nawm_normalize(image: np.ndarray, nawm: np.ndarray) -> np.ndarray:
    """``image`` divided by its median in ``nawm`` (so NAWM = 1.0); raises on an empty mask."""
    m = np.asarray(nawm, dtype=bool)
    if not m.any():
        raise ValueError("empty NAWM mask: cannot normalize")
    med = float(np.median(np.asarray(image)[m]))
    if med <= 0:
        raise ValueError(f"NAWM median is {med:g}: cannot normalize")
    return (np.asarray(image, dtype=np.float32) / med).astype(np.float32)


def derive_enhancement_reference(
    pre: np.ndarray,
    post: np.ndarray,
    brain: np.ndarray,
    spacing: tuple[float, ...],
    *,
    threshold: float = 0.3,
    sigma_mm: float = 1.0,
    min_volume_mm3: float = 10.0,
    wm_lesions: np.ndarray | None = None,
) -> np.ndarray:
    """Enhancing-lesion reference from a *registered, normalized* real post-Gd scan.

    ``post − pre`` (NAWM = 1 units) is smoothed (Gaussian, ``sigma_mm``), thresholded at
    ``threshold`` inside the brain eroded by one voxel (residual misregistration at the brain
    edge), optionally kept only where ``wm_lesions`` (e.g. FLAIR-hyperintense lesions) is set,
    split into 26-connected components and cleared of components <= ``min_volume_mm3``.
    Returns int32 instance labels 1..K. A rough stand-in for expert masks: vessels and choroid
    plexus also enhance, so prefer expert or phantom truth when available.
    """
    import cc3d

    diff = np.asarray(post, dtype=np.float32) - np.asarray(pre, dtype=np.float32)
    diff = ndi.gaussian_filter(diff, [sigma_mm / s for s in spacing])
    inside = ndi.binary_erosion(np.asarray(brain, dtype=bool), structure=np.ones((3, 3, 3), bool))
    cand = (diff > threshold) & inside
    if wm_lesions is not None:
        cand &= np.asarray(wm_lesions) > 0
    cc = cc3d.connected_components(cand.astype(np.uint8), connectivity=26).astype(np.int32)
    sizes = np.bincount(cc.ravel())
    keep = sizes * float(np.prod(spacing)) > min_volume_mm3
    keep[0] = False
    relabel = np.zeros(len(sizes), dtype=np.int32)
    relabel[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    return relabel[cc]
