"""Tissue context of one exam (CSF estimate) and distances measured around each candidate.

Inputs are normalized pre-contrast images (NAWM ≈ 1.0), (X, Y, Z), on the enhancement map's grid.

* CSF (inside the brain mask) = the AND of every available rule: T1w < ``csf_t1w_max`` (dark),
  T2w > ``csf_t2w_min`` (bright), FLAIR < ``csf_flair_max`` (nulled). AND keeps FLAIR-bright
  lesions and T1 "black holes" out of the CSF estimate. No sequence, or no CSF voxel → ``None``.
* Bright-tissue level (:func:`bright_tissue_level`): a high percentile of FLAIR (else T2w) over
  the non-CSF brain, the reference of the ``not-brighter-than-tissue`` rule.
* :func:`local_distances` (mm, capped at :data:`DIST_CAP_MM`): distance of a component to the brain
  surface — Euclidean distance to the nearest voxel outside the brain mask (the array border counts
  as outside) minus the largest voxel spacing, so the outermost brain voxels are at 0 mm whatever the
  resolution — and to the nearest CSF voxel. They are computed in the component's bounding box
  grown by at least the cap (distance transforms of a small box, not of the whole volume), which is
  exact up to the cap.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from gdsynth.detection.params import DetectionParams

#: Distances beyond this (mm) are reported as this: every rule and score term saturates before it.
DIST_CAP_MM = 10.0


@dataclass(frozen=True)
class TissueContext:
    """Per-exam maps shared by features and suppression (all (X, Y, Z))."""

    brain: np.ndarray  # bool
    spacing: tuple[float, float, float]
    csf: np.ndarray | None  # bool, inside the brain; None when unknown
    k_range: tuple[int, int]  # first and last brain slice along k (inferior → superior in RAS)
    bright_level: float | None = None  # upper level of normal tissue on FLAIR (else T2w)

    @property
    def brain_volume_ml(self) -> float:
        return float(self.brain.sum() * np.prod(self.spacing) / 1000.0)


def estimate_csf(
    brain: np.ndarray,
    params: DetectionParams,
    *,
    t1w: np.ndarray | None = None,
    t2w: np.ndarray | None = None,
    flair: np.ndarray | None = None,
) -> np.ndarray | None:
    """Boolean CSF mask inside ``brain`` from the available sequences, or ``None`` without any."""
    rules = []
    if t1w is not None:
        rules.append(t1w < params.csf_t1w_max)
    if t2w is not None:
        rules.append(t2w > params.csf_t2w_min)
    if flair is not None:
        rules.append(flair < params.csf_flair_max)
    if not rules:
        return None
    csf = brain.copy()
    for rule in rules:
        csf &= rule
    return csf


def bright_tissue_level(
    brain: np.ndarray,
    params: DetectionParams,
    *,
    t2w: np.ndarray | None = None,
    flair: np.ndarray | None = None,
) -> float | None:
    """The ``tissue_percentile`` (90th) percentile of FLAIR (else T2w) over the brain's non-CSF
    voxels (FLAIR ≥ ``csf_flair_max``, or T2w ≤ ``csf_t2w_min``): the brightest normal tissue of
    this exam, i.e. grey matter and its noise (lesions are a small fraction of the brain). Grey
    matter is 0.9–1.2 × NAWM on FLAIR depending on the scanner, so a fixed ratio to NAWM cannot
    tell a weakly FLAIR-bright lesion from cortex; a ratio to this level can. ``None`` without
    either sequence."""
    if flair is not None:
        values = flair[brain & (flair >= params.csf_flair_max)]
    elif t2w is not None:
        values = t2w[brain & (t2w <= params.csf_t2w_min)]
    else:
        return None
    if values.size < 100:
        return None
    return float(np.percentile(values, params.tissue_percentile))


def tissue_context(
    brain: np.ndarray,
    spacing: Sequence[float],
    params: DetectionParams,
    *,
    t1w: np.ndarray | None = None,
    t2w: np.ndarray | None = None,
    flair: np.ndarray | None = None,
) -> TissueContext:
    """The :class:`TissueContext` of one exam."""
    brain = brain.astype(bool)
    csf = estimate_csf(brain, params, t1w=t1w, t2w=t2w, flair=flair)
    if csf is not None and not csf.any():
        csf = None  # a usable sequence but no CSF found: treat as unknown
    ks = np.flatnonzero(brain.any(axis=(0, 1)))
    k_range = (int(ks[0]), int(ks[-1])) if ks.size else (0, 0)
    sp = tuple(float(s) for s in spacing)
    level = bright_tissue_level(brain, params, t2w=t2w, flair=flair)
    return TissueContext(brain=brain, spacing=sp, csf=csf, k_range=k_range,  # type: ignore[arg-type]
                         bright_level=level)


def _capped_min(mask: np.ndarray, dist: np.ndarray) -> float:
    return float(min(dist[mask].min(), DIST_CAP_MM))


def surface_fraction(
    ctx: TissueContext, box: tuple[slice, ...], comp: np.ndarray, margin_mm: float
) -> float:
    """Fraction of component ``comp`` (bool array of ``box``'s shape) within ``margin_mm`` of the
    brain surface (distance measured as in :func:`local_distances`)."""
    sp = ctx.spacing
    brain = ctx.brain[box]
    pad = [(int(s.start == 0), int(s.stop == n)) for s, n in zip(box, ctx.brain.shape, strict=True)]
    padded = np.pad(brain, pad)
    if padded.all() or not comp.any():
        return 0.0
    inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad, brain.shape, strict=True))
    edt = ndi.distance_transform_edt(padded, sampling=sp)[inner]
    return float((np.maximum(edt - max(sp), 0.0)[comp] <= margin_mm).mean())


def local_distances(
    ctx: TissueContext, box: tuple[slice, ...], comp: np.ndarray
) -> tuple[float, float | None]:
    """``(distance to brain surface, distance to CSF or None)`` of component ``comp`` (bool array
    of ``box``'s shape) in mm, capped at :data:`DIST_CAP_MM`; ``box`` must extend at least the cap
    beyond the component where the volume allows."""
    sp = ctx.spacing
    brain = ctx.brain[box]
    pad = [
        (int(s.start == 0), int(s.stop == n))
        for s, n in zip(box, ctx.brain.shape, strict=True)
    ]
    padded = np.pad(brain, pad)  # the array border counts as outside the brain
    inner = tuple(slice(lo, lo + n) for (lo, _), n in zip(pad, brain.shape, strict=True))
    if padded.all():
        surface = DIST_CAP_MM
    else:
        edt = ndi.distance_transform_edt(padded, sampling=sp)[inner]
        surface = _capped_min(comp, np.maximum(edt - max(sp), 0.0))
    if ctx.csf is None:
        return surface, None
    csf = ctx.csf[box]
    if not csf.any():
        return surface, DIST_CAP_MM
    return surface, _capped_min(comp, ndi.distance_transform_edt(~csf, sampling=sp))
