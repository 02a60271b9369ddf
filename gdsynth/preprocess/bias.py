"""N4 bias-field correction (SimpleITK), estimated on a shrunk image, applied at full resolution."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdsynth.io import Geometry


@dataclass(frozen=True)
class N4Params:
    """N4 settings: the field is fitted on a copy of the mask's bounding box shrunk to voxels of
    at least ``shrink_mm`` mm and at most ``max_voxels`` voxels (N4's cost grows with both)."""

    shrink_mm: float = 4.0
    max_voxels: int = 30_000
    iterations: tuple[int, ...] = (20, 20)
    convergence: float = 1e-3
    control_points: int = 4


def n4_correct(
    array: np.ndarray, geometry: Geometry, mask: np.ndarray, params: N4Params = N4Params()
) -> tuple[np.ndarray, np.ndarray]:
    """Bias-corrected (X, Y, Z) float32 array and the multiplicative field (same grid).

    The field is estimated inside ``mask`` (bool) on a shrunk copy of the mask's bounding box,
    evaluated at full resolution there (a smooth B-spline), extended outside the box by its
    edge values, and divided out everywhere.
    """
    import SimpleITK as sitk

    from gdsynth.io.geometry import sitk_to_array

    img = np.asarray(array, np.float32)
    offset = float(min(0.0, img.min()))  # N4 works on log intensities: keep them positive
    positive = img - offset + 1e-3 * float(np.percentile(img[mask], 50) if mask.any() else 1.0)
    idx = np.nonzero(mask)
    lo = [int(i.min()) for i in idx]
    hi = [int(i.max()) + 1 for i in idx]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    sub = geometry.replace(shape=tuple(b - a for a, b in zip(lo, hi, strict=True)),
                           origin=tuple(geometry.index_to_world(np.asarray(lo, float))))
    full = sub.to_sitk(np.ascontiguousarray(positive[box]))
    full_mask = sub.to_sitk(np.ascontiguousarray(mask[box]).astype(np.uint8))
    budget = (np.prod(sub.shape) / params.max_voxels) ** (1 / 3)
    factor = [max(1, int(round(params.shrink_mm / s)), int(np.ceil(budget))) for s in sub.spacing]
    small = sitk.Shrink(full, factor)
    small_mask = sitk.Shrink(full_mask, factor)
    corrector = sitk.N4BiasFieldCorrectionImageFilter()
    corrector.SetMaximumNumberOfIterations(list(params.iterations))
    corrector.SetConvergenceThreshold(params.convergence)
    corrector.SetNumberOfControlPoints([max(4, params.control_points)] * 3)
    corrector.Execute(small, small_mask)
    log_field = sitk_to_array(corrector.GetLogBiasFieldAsImage(full)).astype(np.float32)
    pad = [(a, s - b) for a, b, s in zip(lo, hi, geometry.shape, strict=True)]
    field = np.exp(np.pad(log_field, pad, mode="edge"))
    corrected = (img / field).astype(np.float32)
    return corrected, field
