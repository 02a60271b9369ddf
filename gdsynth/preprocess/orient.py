"""Exact reorientation to RAS voxel order and its inverse (pure axis permutations and flips).

The prepared space starts from the pre-contrast T1w grid with its index axes permuted and flipped
so that axis 0 points (most nearly) to the Right, axis 1 Anterior and axis 2 Superior. No voxel is
interpolated: arrays are transposed and flipped, and the geometry is rewritten so every voxel keeps
its world (LPS mm) position. :func:`index_map` recognises such a relation between any two grids,
which is what lets :func:`gdsynth.preprocess.move_to_grid` undo it exactly.
"""

from __future__ import annotations

from itertools import permutations

import numpy as np

from gdsynth.io import Geometry

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


def ras_permutation(geometry: Geometry) -> tuple[tuple[int, int, int], tuple[bool, bool, bool]]:
    """Index axis feeding each RAS output axis, and whether it is flipped.

    Chooses, among the 6 axis permutations, the one best aligned with R, A, S (sum of
    |cosines|), so oblique grids get a stable, unique answer.
    """
    ras = _LPS_TO_RAS @ geometry.direction_matrix  # rows: R, A, S; columns: index axes
    best = max(permutations(range(3)), key=lambda p: sum(abs(ras[a, p[a]]) for a in range(3)))
    flips = tuple(bool(ras[a, best[a]] < 0) for a in range(3))
    return tuple(best), flips  # type: ignore[return-value]


def _geometry_from_affine(affine_lps: np.ndarray, shape: tuple[int, ...]) -> Geometry:
    lin = affine_lps[:3, :3]
    spacing = np.linalg.norm(lin, axis=0)
    direction = lin / spacing[None, :]
    return Geometry(tuple(shape), tuple(spacing), tuple(affine_lps[:3, 3]), tuple(direction.ravel()))


def reorient_geometry(geometry: Geometry) -> tuple[Geometry, np.ndarray]:
    """RAS-ordered geometry of ``geometry`` and the 4x4 integer map prepared index → native index."""
    perm, flips = ras_permutation(geometry)
    m = np.zeros((4, 4))
    m[3, 3] = 1.0
    for a, (c, f) in enumerate(zip(perm, flips, strict=True)):
        m[c, a] = -1.0 if f else 1.0
        if f:
            m[c, 3] = geometry.shape[c] - 1
    shape = tuple(geometry.shape[c] for c in perm)
    return _geometry_from_affine(geometry.affine_lps @ m, shape), m


def reorient_to_ras(array: np.ndarray, geometry: Geometry) -> tuple[np.ndarray, Geometry]:
    """Transpose/flip an (X, Y, Z) array to RAS voxel order; return it with its new geometry."""
    perm, flips = ras_permutation(geometry)
    out = np.transpose(array, perm)
    flip_axes = tuple(a for a in range(3) if flips[a])
    if flip_axes:
        out = np.flip(out, axis=flip_axes)
    new_geometry, _ = reorient_geometry(geometry)
    return np.ascontiguousarray(out), new_geometry


def index_map(source: Geometry, target: Geometry, *, tol: float = 1e-3) -> np.ndarray | None:
    """The 4x4 signed-permutation map source index → target index when both grids hold the very
    same voxels in another order (within ``tol`` voxel); otherwise None."""
    m = np.linalg.inv(target.affine_lps) @ source.affine_lps
    lin = m[:3, :3]
    rounded = np.round(lin)
    if not np.allclose(lin, rounded, atol=tol) or not np.allclose(m[:3, 3], np.round(m[:3, 3]), atol=tol):
        return None
    if not np.allclose(np.abs(rounded).sum(axis=0), 1) or not np.allclose(np.abs(rounded).sum(axis=1), 1):
        return None
    m = np.round(m)
    s = np.asarray(source.shape) - 1
    corners = np.array([[i, j, k, 1.0] for i in (0, s[0]) for j in (0, s[1]) for k in (0, s[2])])
    mapped = (corners @ m.T)[:, :3]
    hi = np.asarray(target.shape) - 1
    if not (np.allclose(mapped.min(axis=0), 0) and np.allclose(mapped.max(axis=0), hi)):
        return None
    return m


def apply_index_map(array: np.ndarray, m: np.ndarray, target_shape: tuple[int, ...]) -> np.ndarray:
    """Move an (X, Y, Z) array by a signed-permutation index map (from :func:`index_map`)."""
    lin = m[:3, :3]
    # target axis t takes source axis src[t]; flipped when the entry is negative
    src = [int(np.argmax(np.abs(lin[t]))) for t in range(3)]
    out = np.transpose(array, src)
    flip_axes = tuple(t for t in range(3) if lin[t, src[t]] < 0)
    if flip_axes:
        out = np.flip(out, axis=flip_axes)
    out = np.ascontiguousarray(out)
    if tuple(out.shape) != tuple(target_shape):
        raise ValueError(f"index map gives shape {out.shape}, expected {target_shape}")
    return out
