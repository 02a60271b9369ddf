"""Per-component features: size, enhancement, pre-contrast appearance, shape, position.

Work is done on each component's bounding box grown by a margin (so it scales with the number of
candidates, not the volume). For component c (voxels V, spacing in mm):

* ``volume_mm3``, voxel centre ``i, j, k`` (mean index), ``mean/max_enhancement`` (raw map on V);
* ``mean_uncertainty`` (uncertainty map on V, or ``None``); ``head_max/head_mean`` (head map);
* ``flair_contrast`` = mean FLAIR on V / local NAWM level, the 25th percentile of FLAIR in the
  shell ``nawm_shell_mm[0]``–``[1]`` mm from V (in the brain, not CSF, not another candidate)
  clipped to 1 ± ``nawm_ref_tolerance``: images are NAWM-normalized, so the local level only
  corrects residual bias, and the low percentile and the clip keep an active lesion's own
  FLAIR-bright oedema (which often fills part of the shell) from becoming its reference;
  T2w is used when FLAIR is absent (``flair_source`` says which), ``None`` without either;
  ``tissue_contrast`` = the same mean / the exam's bright-tissue level
  (:func:`gdsynth.detection.context.bright_tissue_level`), ``None`` when unknown;
* ``elongation`` = sqrt(λ1/λ2) of the covariance of the voxel positions in mm (each axis regularized
  by one voxel's variance, spacing²/12), ``length_mm`` = sqrt(12 λ1) (extent of a uniform rod);
* ``dist_surface_mm`` / ``dist_csf_mm``: min distance of V to the brain surface / to CSF, capped at
  10 mm (:func:`gdsynth.detection.context.local_distances`); ``surface_fraction``: share of V
  within ``surface_margin_mm`` of the surface;
  ``csf_fraction`` = max(fraction of V in CSF, fraction of the ``csf_shell_mm`` shell around V in CSF);
* ``location``: see :func:`location_class`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from scipy import ndimage as ndi

from gdsynth.detection.context import (
    DIST_CAP_MM,
    TissueContext,
    local_distances,
    surface_fraction,
)
from gdsynth.detection.params import DetectionParams

LOCATIONS = ("periventricular", "juxtacortical", "deep-white-matter", "infratentorial-unknown")


def location_class(feat: dict[str, Any], ctx: TissueContext, params: DetectionParams) -> str:
    """Coarse location from distances alone (no atlas).

    ``infratentorial-unknown`` when the centre lies in the lowest ``infratentorial_fraction`` of the
    brain's k extent (prepared space is RAS, k = inferior → superior), or when nothing else can be
    said (no CSF estimate and not near the surface); ``juxtacortical`` within ``juxtacortical_mm`` of
    the brain edge; ``periventricular`` within ``periventricular_mm`` of CSF; else deep white matter.
    """
    k0, k1 = ctx.k_range
    if k1 > k0 and feat["k"] < k0 + params.infratentorial_fraction * (k1 - k0):
        return "infratentorial-unknown"
    if feat["dist_surface_mm"] <= params.juxtacortical_mm:
        return "juxtacortical"
    if feat["dist_csf_mm"] is None:
        return "infratentorial-unknown"
    if feat["dist_csf_mm"] <= params.periventricular_mm:
        return "periventricular"
    return "deep-white-matter"


def _shape(coords_mm: np.ndarray, spacing: np.ndarray) -> tuple[float, float]:
    """(elongation, length_mm) of a point cloud (N, 3) in mm."""
    cov = np.cov(coords_mm.T) if len(coords_mm) > 1 else np.zeros((3, 3))
    cov = cov + np.diag(spacing**2 / 12.0)
    eig = np.sort(np.linalg.eigvalsh(cov))[::-1]
    return float(np.sqrt(eig[0] / max(eig[1], 1e-12))), float(np.sqrt(12.0 * eig[0]))


def component_features(
    labels: np.ndarray,
    enhancement: np.ndarray,
    ctx: TissueContext,
    params: DetectionParams,
    *,
    flair: np.ndarray | None = None,
    t2w: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    head: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """One feature dict per label 1..K of ``labels`` (int, (X, Y, Z)), in label order."""
    spacing = np.asarray(ctx.spacing, dtype=float)
    contrast_img, contrast_src = (flair, "FLAIR") if flair is not None else (t2w, "T2w")
    if contrast_img is None:
        contrast_src = None
    outer = max(params.nawm_shell_mm[1], params.csf_shell_mm, DIST_CAP_MM)
    margin = np.ceil(outer / spacing).astype(int) + 1
    feats: list[dict[str, Any]] = []
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        box = tuple(
            slice(max(s.start - m, 0), min(s.stop + m, n))
            for s, m, n in zip(sl, margin, labels.shape, strict=True)
        )
        lab_box = labels[box]
        comp = lab_box == lab
        idx = np.argwhere(comp)
        offset = np.array([b.start for b in box])
        centre = idx.mean(axis=0) + offset
        enh = enhancement[box][comp]
        elong, length = _shape(idx * spacing, spacing)
        dist = ndi.distance_transform_edt(~comp, sampling=spacing)
        brain_box = ctx.brain[box]
        dist_surface, dist_csf = local_distances(ctx, box, comp)
        f: dict[str, Any] = {
            "label": lab,
            "i": float(centre[0]),
            "j": float(centre[1]),
            "k": float(centre[2]),
            "n_voxels": int(comp.sum()),
            "volume_mm3": float(comp.sum() * np.prod(spacing)),
            "mean_enhancement": float(enh.mean()),
            "max_enhancement": float(enh.max()),
            "mean_uncertainty": None if uncertainty is None else float(uncertainty[box][comp].mean()),
            "head_max": None if head is None else float(head[box][comp].max()),
            "head_mean": None if head is None else float(head[box][comp].mean()),
            "elongation": elong,
            "length_mm": length,
            "dist_surface_mm": dist_surface,
            "dist_csf_mm": dist_csf,
            "surface_fraction": surface_fraction(ctx, box, comp, params.surface_margin_mm)
            if dist_surface <= params.surface_margin_mm else 0.0,
            "csf_fraction": 0.0,
            "flair_contrast": None,
            "tissue_contrast": None,
            "flair_source": contrast_src,
        }
        csf_box = None if ctx.csf is None else ctx.csf[box]
        if csf_box is not None:
            shell = (dist > 0) & (dist <= params.csf_shell_mm) & brain_box
            inside = float(csf_box[comp].mean())
            around = float(csf_box[shell].mean()) if shell.any() else 0.0
            f["csf_fraction"] = max(inside, around)
        if contrast_img is not None:
            lo, hi = params.nawm_shell_mm
            ring = (dist >= lo) & (dist <= hi) & brain_box & (lab_box == 0)
            if csf_box is not None:
                ring &= ~csf_box
            img = contrast_img[box]
            ref = float(np.percentile(img[ring], 25)) if ring.sum() >= 5 else 1.0
            tol = params.nawm_ref_tolerance
            ref = min(max(ref, 1.0 - tol), 1.0 + tol)  # the ring may sit in the lesion's oedema
            f["flair_contrast"] = float(img[comp].mean() / max(ref, 1e-3))
            if ctx.bright_level is not None:  # vs this exam's brightest normal tissue
                f["tissue_contrast"] = float(img[comp].mean() / max(ctx.bright_level, 1e-3))
        f["location"] = location_class(f, ctx, params)
        feats.append(f)
    return feats
