"""Tissue context computed once per exam: CSF estimate, distances to the brain edge and to CSF.

Inputs are normalized pre-contrast images (NAWM ≈ 1.0), (X, Y, Z), on the enhancement map's grid.

* CSF (inside the brain mask) = the AND of every available rule: T1w < ``csf_t1w_max`` (dark),
  T2w > ``csf_t2w_min`` (bright), FLAIR < ``csf_flair_max`` (nulled). AND keeps FLAIR-bright
  lesions and T1 "black holes" out of the CSF estimate. No sequence → no CSF estimate (``None``).
* ``dist_surface`` (mm): Euclidean distance of each brain voxel to the nearest voxel outside the
  brain mask (the array border counts as outside) minus the largest voxel spacing, clipped at 0:
  the outermost layer of brain voxels is at 0 mm whatever the resolution.
* ``dist_csf`` (mm): distance of each voxel to the nearest CSF voxel (``None`` without CSF).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from gdsynth.detection.params import DetectionParams


@dataclass(frozen=True)
class TissueContext:
    """Per-exam maps shared by features and suppression (all (X, Y, Z))."""

    brain: np.ndarray  # bool
    spacing: tuple[float, float, float]
    dist_surface: np.ndarray  # float32 mm, 0 outside the brain
    csf: np.ndarray | None  # bool, inside the brain
    dist_csf: np.ndarray | None  # float32 mm
    k_range: tuple[int, int]  # first and last brain slice along k (inferior → superior in RAS)

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


def tissue_context(
    brain: np.ndarray,
    spacing: Sequence[float],
    params: DetectionParams,
    *,
    t1w: np.ndarray | None = None,
    t2w: np.ndarray | None = None,
    flair: np.ndarray | None = None,
) -> TissueContext:
    """Compute the :class:`TissueContext` of one exam (two Euclidean distance transforms)."""
    brain = brain.astype(bool)
    sp = tuple(float(s) for s in spacing)
    padded = np.pad(brain, 1)
    dist_surface = ndi.distance_transform_edt(padded, sampling=sp)[1:-1, 1:-1, 1:-1]
    dist_surface = np.where(brain, np.maximum(dist_surface - max(sp), 0.0), 0.0)
    csf = estimate_csf(brain, params, t1w=t1w, t2w=t2w, flair=flair)
    dist_csf = None
    if csf is not None and csf.any():
        dist_csf = ndi.distance_transform_edt(~csf, sampling=sp).astype(np.float32)
    elif csf is not None:
        csf = None  # a usable sequence but no CSF found: treat as unknown
    ks = np.flatnonzero(brain.any(axis=(0, 1)))
    k_range = (int(ks[0]), int(ks[-1])) if ks.size else (0, 0)
    return TissueContext(
        brain=brain,
        spacing=sp,  # type: ignore[arg-type]
        dist_surface=dist_surface.astype(np.float32),
        csf=csf,
        dist_csf=dist_csf,
        k_range=k_range,
    )
