"""Resampling between grids (SimpleITK), isotropic target grids and field-of-view overlap checks.

:func:`move_to_grid` is the one way to put an array on another grid: the exact index map when both
grids hold the same voxels (:func:`gdsynth.preprocess.orient.index_map`), else :func:`resample`.

Transforms follow the ITK convention: a 4x4 LPS matrix maps a point of the *target* (fixed)
world to the *source* (moving) world, so resampling reads ``source(matrix @ p)`` at each target
voxel centre ``p``.
"""

from __future__ import annotations

from enum import Enum

import numpy as np

from gdsynth.errors import ConfigError, GeometryError
from gdsynth.io import Geometry


class Interpolation(str, Enum):
    """Interpolators: linear or B-spline for images, nearest for labels and masks."""

    LINEAR = "linear"
    BSPLINE = "bspline"
    NEAREST = "nearest"

    @classmethod
    def parse(cls, value: str | Interpolation) -> Interpolation:
        """Validate a string choice, listing the valid ones on error."""
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(i.value for i in cls)
            raise ConfigError(None, f"unknown interpolation {value!r}; choose one of: {valid}") from None


def _sitk_interpolator(interp: Interpolation) -> int:
    import SimpleITK as sitk

    return {
        Interpolation.LINEAR: sitk.sitkLinear,
        Interpolation.BSPLINE: sitk.sitkBSpline,
        Interpolation.NEAREST: sitk.sitkNearestNeighbor,
    }[interp]


def matrix_to_sitk(matrix_lps: np.ndarray):  # -> sitk.AffineTransform
    """A 4x4 LPS matrix as a SimpleITK affine transform (same fixed → moving convention)."""
    import SimpleITK as sitk

    m = np.asarray(matrix_lps, dtype=float)
    tx = sitk.AffineTransform(3)
    tx.SetMatrix(tuple(m[:3, :3].ravel()))
    tx.SetTranslation(tuple(m[:3, 3]))
    return tx


def resample(
    array: np.ndarray,
    geometry: Geometry,
    target: Geometry,
    *,
    matrix_lps: np.ndarray | None = None,
    interpolation: str | Interpolation = Interpolation.LINEAR,
    default: float = 0.0,
) -> np.ndarray:
    """Resample an (X, Y, Z) array from ``geometry`` onto ``target`` (float32, or the input's
    integer type for nearest), through the optional target-world → source-world matrix."""
    import SimpleITK as sitk

    from gdsynth.io.geometry import sitk_to_array

    interp = Interpolation.parse(interpolation)
    src = np.asarray(array)
    if interp is not Interpolation.NEAREST or src.dtype == np.bool_:
        src = src.astype(np.float32)
    image = geometry.to_sitk(src)
    transform = matrix_to_sitk(matrix_lps) if matrix_lps is not None else sitk.Transform(3, sitk.sitkIdentity)
    out = sitk.Resample(image, target.empty_sitk(image.GetPixelID()), transform,
                        _sitk_interpolator(interp), float(default))
    result = sitk_to_array(out)
    return result.astype(np.bool_) if np.asarray(array).dtype == np.bool_ else result


def move_to_grid(
    array: np.ndarray,
    source: Geometry,
    target: Geometry,
    *,
    interpolation: str | Interpolation = Interpolation.LINEAR,
) -> np.ndarray:
    """Put an (X, Y, Z) array on ``source`` onto ``target``.

    Exact (a transpose/flip, same dtype, no value changed) when both grids hold the very same
    voxels in another order (e.g. the prepared grid and the native T1w grid when preprocessing
    only reoriented); otherwise resampled by world coordinates (:func:`resample`: ``linear`` or
    ``bspline`` for images, ``nearest`` for labels, which then keep their dtype).
    """
    from gdsynth.preprocess.orient import apply_index_map, index_map

    interp = Interpolation.parse(interpolation)
    arr = np.asarray(array)
    if tuple(arr.shape) != tuple(source.shape):
        raise ValueError(f"array shape {arr.shape} is not its grid's shape {source.shape}")
    m = index_map(source, target)
    if m is not None:
        return apply_index_map(arr, m, target.shape)
    out = resample(arr, source, target, interpolation=interp)
    return out.astype(arr.dtype, copy=False) if interp is Interpolation.NEAREST else out


def isotropic_geometry(geometry: Geometry, spacing: float) -> Geometry:
    """A grid with cubic voxels of ``spacing`` mm, same direction, centred on the same field of view."""
    if not spacing > 0:
        raise ConfigError(None, f"spacing must be positive (got {spacing} mm)")
    old = np.asarray(geometry.spacing)
    shape = np.maximum(1, np.round(np.asarray(geometry.shape) * old / spacing)).astype(int)
    d = geometry.direction_matrix
    centre = np.asarray(geometry.origin) + d @ ((np.asarray(geometry.shape) - 1) * old / 2)
    origin = centre - d @ ((shape - 1) * spacing / 2)
    return Geometry(tuple(shape), (spacing,) * 3, tuple(origin), geometry.direction)


def bounding_box(geometry: Geometry, matrix_lps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Axis-aligned world box (LPS mm, min and max corners) of a grid's field of view."""
    c = geometry.corners_world()
    if matrix_lps is not None:
        c = c @ np.asarray(matrix_lps)[:3, :3].T + np.asarray(matrix_lps)[:3, 3]
    return c.min(axis=0), c.max(axis=0)


def overlap_fraction(reference: Geometry, other: Geometry) -> float:
    """Fraction of ``reference``'s world bounding box that ``other``'s box covers (0 to 1)."""
    a0, a1 = bounding_box(reference)
    b0, b1 = bounding_box(other)
    inter = np.clip(np.minimum(a1, b1) - np.maximum(a0, b0), 0, None)
    return float(np.prod(inter) / max(np.prod(a1 - a0), 1e-9))


def require_overlap(path: object, reference: Geometry, other: Geometry, *, minimum: float = 0.01) -> float:
    """Raise :class:`GeometryError` naming ``path`` when ``other`` barely overlaps ``reference``."""
    frac = overlap_fraction(reference, other)
    if frac < minimum:
        a0, a1 = bounding_box(reference)
        b0, b1 = bounding_box(other)
        raise GeometryError(
            path,  # type: ignore[arg-type]
            f"does not overlap the T1w field of view ({100 * frac:.1f}% of it covered; T1w box "
            f"{np.round(a0, 1).tolist()}..{np.round(a1, 1).tolist()} mm LPS, this image "
            f"{np.round(b0, 1).tolist()}..{np.round(b1, 1).tolist()} mm)",
        )
    return frac
