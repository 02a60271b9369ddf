"""Smooth random fields (deformations, bias fields) as separable Gaussian radial basis functions.

A field is a weighted sum of normalised Gaussian bumps on a regular lattice of control points in
world space (LPS mm). Because the basis is separable, evaluating it on an axis-aligned grid is three
small matrix products (fast, no per-voxel interpolation), and it can also be evaluated at arbitrary
points (lesion centres, landmarks) with the same values.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from gdsynth.io import Geometry


def _basis(x: np.ndarray, knots: np.ndarray, width: float) -> np.ndarray:
    """(N, K) Gaussian weights of positions ``x`` (mm) on ``knots`` (mm), rows summing to 1."""
    w = np.exp(-0.5 * ((x[:, None] - knots[None, :]) / width) ** 2)
    return w / np.maximum(w.sum(axis=1, keepdims=True), 1e-12)


def grid_axes_world(geometry: Geometry) -> list[np.ndarray]:
    """World coordinate (LPS mm) along each index axis of an axis-aligned, unpermuted grid.

    Index axis ``a`` must run along world axis ``a`` (direction matrix diagonal, signs free); then
    the world coordinate ``a`` of voxel (i, j, k) depends on index ``a`` only.
    """
    d = geometry.direction_matrix
    if not np.allclose(np.abs(d), np.eye(3), atol=1e-6):
        raise ValueError(f"grid must be axis-aligned and unpermuted, got direction {d.tolist()}")
    return [
        geometry.origin[a] + d[a, a] * geometry.spacing[a] * np.arange(geometry.shape[a])
        for a in range(3)
    ]


@dataclass(frozen=True)
class SmoothField:
    """A vector field of ``C`` components: ``coef`` (C, Kx, Ky, Kz) on per-axis ``knots`` (mm)."""

    knots: tuple[np.ndarray, np.ndarray, np.ndarray]
    width: float
    coef: np.ndarray

    def on_grid(self, geometry: Geometry) -> np.ndarray:
        """Values on every voxel of an axis-aligned grid: float32 (C, X, Y, Z)."""
        axes = grid_axes_world(geometry)
        bx, by, bz = (_basis(x, k, self.width) for x, k in zip(axes, self.knots, strict=True))
        c = self.coef.shape[0]
        t = self.coef @ bz.T  # (C, Kx, Ky, Z)
        t = np.einsum("cayz,ny->canz", t, by)  # (C, Kx, Y, Z)
        kx = t.shape[1]
        out = bx @ t.reshape(c, kx, -1)  # (C, X, Y*Z)
        return out.reshape(c, *geometry.shape).astype(np.float32)

    def at_points(self, points: np.ndarray) -> np.ndarray:
        """Values at world points (N, 3) in LPS mm: (N, C)."""
        p = np.atleast_2d(np.asarray(points, dtype=float))
        bx, by, bz = (_basis(p[:, a], self.knots[a], self.width) for a in range(3))
        return np.einsum("cabd,na,nb,nd->nc", self.coef, bx, by, bz)


def random_field(
    rng: np.random.Generator,
    lo: np.ndarray,
    hi: np.ndarray,
    *,
    spacing_mm: float,
    rms: float,
    components: int = 1,
) -> SmoothField:
    """A random smooth field over the box ``lo``..``hi`` (LPS mm) whose RMS over the box is ``rms``.

    Control points every ``spacing_mm`` (one beyond each face); the basis width equals the spacing,
    so features are about ``spacing_mm`` in size.
    """
    lo, hi = np.minimum(lo, hi), np.maximum(lo, hi)
    knots = tuple(
        np.arange(lo[a] - spacing_mm, hi[a] + 1.5 * spacing_mm, spacing_mm) for a in range(3)
    )
    shape = (components, *(len(k) for k in knots))
    coef = rng.standard_normal(shape)
    field = SmoothField(knots, float(spacing_mm), coef)  # type: ignore[arg-type]
    # Normalise the RMS (per component) on a coarse 12x12x12 sample of the box.
    probe = np.stack(
        np.meshgrid(*[np.linspace(lo[a], hi[a], 12) for a in range(3)], indexing="ij"), axis=-1
    ).reshape(-1, 3)
    values = field.at_points(probe)
    current = float(np.sqrt(np.mean(values**2))) or 1.0
    return SmoothField(knots, float(spacing_mm), coef * (rms / current))  # type: ignore[arg-type]
