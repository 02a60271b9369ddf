"""Head and brain masks from intensities alone, for skull-stripped and non-stripped heads.

Brain mask (:func:`brain_mask`), on (X, Y, Z) arrays already on one grid:

1. robust-scale each image (T1w, plus FLAIR or T2w) by its 99th percentile, average, smooth
   (1 mm Gaussian) and threshold with Otsu: tissue is bright, background, CSF and skull are dark;
2. erode by ``erode_mm`` (distance transform, so spacing is honoured): this cuts the thin bridges
   between the brain and a bright scalp/fat shell; keep the largest component (the brain);
3. reconstruct: grow it back by geodesic dilation inside the tissue mask, a little further than
   the erosion, so the brain regains its border but does not leak back into the scalp;
4. closing by ``close_mm`` (sulcal CSF) and hole filling (ventricles).

A skull-stripped volume goes through the same steps unchanged: erosion and reconstruction give
the brain back. :func:`head_mask` is the cheap foreground mask used to restrict registration.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi


def otsu_threshold(values: np.ndarray, bins: int = 256) -> float:
    """Otsu's threshold of a 1D sample (between-class variance maximised over a histogram)."""
    v = np.asarray(values, dtype=np.float64).ravel()
    hist, edges = np.histogram(v, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    w0 = np.cumsum(hist)
    w1 = w0[-1] - w0
    m0 = np.cumsum(hist * centres)
    mu0 = m0 / np.maximum(w0, 1)
    mu1 = (m0[-1] - m0) / np.maximum(w1, 1)
    between = w0 * w1 * (mu0 - mu1) ** 2
    return float(centres[int(np.argmax(between[:-1]))])


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean mask (empty stays empty)."""
    labels, n = ndi.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def erode_mm(mask: np.ndarray, radius: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Erosion by a ball of ``radius`` mm (Euclidean distance transform)."""
    padded = np.pad(mask, 1)
    dist = ndi.distance_transform_edt(padded, sampling=spacing)
    return (dist > radius)[1:-1, 1:-1, 1:-1]


def dilate_mm(mask: np.ndarray, radius: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Dilation by a ball of ``radius`` mm."""
    return ndi.distance_transform_edt(~mask, sampling=spacing) <= radius


def close_mm(mask: np.ndarray, radius: float, spacing: tuple[float, ...]) -> np.ndarray:
    """Morphological closing by a ball of ``radius`` mm (padded so borders do not erode)."""
    pad = int(np.ceil(radius / min(spacing))) + 1
    padded = np.pad(mask, pad)
    closed = erode_mm(dilate_mm(padded, radius, spacing), radius, spacing)
    return closed[pad:-pad, pad:-pad, pad:-pad]


def fill_holes(mask: np.ndarray) -> np.ndarray:
    """3D hole filling."""
    return ndi.binary_fill_holes(mask)


def _crop(mask: np.ndarray, margin: int) -> tuple[slice, ...]:
    idx = np.nonzero(mask)
    if not idx[0].size:
        return tuple(slice(0, s) for s in mask.shape)
    return tuple(slice(max(0, int(i.min()) - margin), min(s, int(i.max()) + margin + 1))
                 for i, s in zip(idx, mask.shape, strict=True))


def _scaled(image: np.ndarray) -> np.ndarray:
    img = np.asarray(image, dtype=np.float32)
    lo = float(np.percentile(img, 1))
    hi = float(np.percentile(img, 99.5))
    return (img - lo) / max(hi - lo, 1e-6)


def head_mask(image: np.ndarray, spacing: tuple[float, ...], *, dilate: float = 5.0) -> np.ndarray:
    """Foreground (head) mask: Otsu on the smoothed image, holes filled (a scalp shell encloses
    the brain), largest component, dilated by ``dilate`` mm."""
    sm = ndi.gaussian_filter(_scaled(image), sigma=[1.0 / s for s in spacing])
    fg = largest_component(fill_holes(sm > otsu_threshold(sm)))
    return dilate_mm(fg, dilate, spacing) if dilate > 0 else fg


def brain_mask(
    images: list[np.ndarray],
    spacing: tuple[float, ...],
    *,
    erode: float = 4.0,
    close: float = 4.0,
) -> np.ndarray:
    """Brain mask (bool, (X, Y, Z)) from co-registered images on one grid, T1w first.

    ``erode`` (mm) must exceed half the thickness of the bridges between brain and scalp;
    ``close`` (mm) bridges sulci. See the module docstring for the steps.
    """
    combined = np.mean([_scaled(im) for im in images], axis=0)
    sm = ndi.gaussian_filter(combined, sigma=[1.0 / s for s in spacing])
    tissue = sm > otsu_threshold(sm)
    box = _crop(tissue, int(np.ceil((close + 2) / min(spacing))) + 1)
    t = tissue[box]
    core = largest_component(erode_mm(t, erode, spacing))
    if not core.any():  # tiny or thin object: nothing survives erosion, keep the tissue itself
        core = largest_component(t)
    steps = int(np.ceil((erode + 1.5 * max(spacing)) / min(spacing)))
    grown = ndi.binary_dilation(core, structure=np.ones((3, 3, 3), bool),
                                iterations=steps, mask=t)
    brain = fill_holes(close_mm(grown, close, spacing))
    out = np.zeros(tissue.shape, bool)
    out[box] = brain
    return out
