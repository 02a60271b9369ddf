"""Rasterising lesions onto the anatomy grid: relaxation changes, gadolinium and truth labels.

Each lesion is evaluated only in a box around it. With ``rho`` the normalised ellipsoid radius and
``delta`` the (approximate) signed distance to its surface in mm, the lesion fraction is a linear
ramp (sharp, partial volume) or an erfc profile (ill-defined) of ``delta``; the oedema halo decays
as ``exp(-(delta / halo_mm)^2)`` outside it. Gadolinium is nodular (the lesion profile), a ring
(a Gaussian shell in ``rho``) or an open ring (a shell with a gap facing ``opening``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.special import erfc

from gdsynth.io import Geometry
from gdsynth.phantom.fields import grid_axes_world
from gdsynth.phantom.lesions import Kind, Lesion, Pattern, patchy


@dataclass
class LesionMaps:
    """Lesion effects and truth on the anatomy grid (X, Y, Z)."""

    dt1: np.ndarray  # float32 ms
    dt2: np.ndarray  # float32 ms
    dpd: np.ndarray  # float32
    gd: np.ndarray  # float32 mM
    all_mask: np.ndarray  # uint8 0/1: every lesion (fraction >= 0.5)
    enhancing: np.ndarray  # uint16 instance labels of active lesions
    voxels: list[int]  # per lesion: voxels in all_mask
    enhancing_voxels: list[int]  # per lesion: voxels with its label in ``enhancing`` (0 if none)


def box(geometry: Geometry, centre: np.ndarray, half_mm: float | np.ndarray):
    """Index slices of a canonical grid around ``centre`` (LPS mm) and the box's world axes.

    ``half_mm`` is the half-size of the box, one value or one per world axis. Returns
    ``(None, None)`` when the box misses the grid.
    """
    axes = grid_axes_world(geometry)
    half = np.broadcast_to(np.asarray(half_mm, dtype=float), (3,))
    sl, coords = [], []
    for a in range(3):
        inside = np.flatnonzero(np.abs(axes[a] - centre[a]) <= half[a])
        if inside.size == 0:
            return None, None
        s = slice(int(inside[0]), int(inside[-1]) + 1)
        sl.append(s)
        coords.append(axes[a][s])
    return tuple(sl), coords


def _profiles(lesion: Lesion, coords: list[np.ndarray]):
    """Lesion fraction, halo weight, gadolinium (mM) on a box (each (x, y, z) float64)."""
    dx = [c - lesion.centre[a] for a, c in enumerate(coords)]
    grid = np.stack(np.meshgrid(*dx, indexing="ij"), axis=-1)  # (x, y, z, 3)
    local = grid @ lesion.rotation  # components along the semi-axes
    rho = np.sqrt(np.sum((local / lesion.radii) ** 2, axis=-1))
    dist = np.linalg.norm(grid, axis=-1)
    r_dir = np.where(rho > 1e-6, dist / np.maximum(rho, 1e-6), lesion.radii.min())
    delta = (rho - 1.0) * r_dir
    if lesion.smooth:
        frac = 0.5 * erfc(delta / lesion.border_mm)
    else:
        frac = np.clip(0.5 - delta / lesion.border_mm, 0.0, 1.0)
    halo = np.zeros_like(frac)
    if lesion.halo_strength > 0:
        halo = lesion.halo_strength * np.exp(-((np.maximum(delta, 0) / lesion.halo_mm) ** 2))
        halo *= 1.0 - frac
    gd = np.zeros_like(frac)
    if lesion.pattern is Pattern.nodular:
        gd = lesion.gd_mm * 0.5 * erfc(delta / max(lesion.border_mm, 1.0))
    elif lesion.pattern in (Pattern.ring, Pattern.open_ring):
        gd = lesion.gd_mm * np.exp(-(((rho - lesion.ring_pos) / lesion.ring_width) ** 2))
        if lesion.pattern is Pattern.open_ring and lesion.opening is not None:
            cos = (grid @ lesion.opening) / np.maximum(dist, 1e-6)
            gd *= 1.0 / (1.0 + np.exp((cos - 0.5) * 12.0))  # gap of ~120 deg
    if lesion.heterogeneity > 0:
        h = lesion.heterogeneity
        gd *= (1.0 - h) + h * patchy(lesion.texture_seed, grid)
    return frac, halo, gd


def rasterise(
    lesions: list[Lesion], geometry: Geometry, parenchyma: np.ndarray | None = None
) -> LesionMaps:
    """Accumulate all lesions on a canonical grid; instance labels follow ``lesion.label``.

    Truth labels are restricted to ``parenchyma`` (bool, voxels mostly WM + GM) when given, since
    a lesion changes only the tissue part of a voxel, not its CSF.
    """
    shape = geometry.shape
    if parenchyma is None:
        parenchyma = np.ones(shape, bool)
    maps = LesionMaps(
        *(np.zeros(shape, np.float32) for _ in range(4)),
        all_mask=np.zeros(shape, np.uint8),
        enhancing=np.zeros(shape, np.uint16),
        voxels=[],
        enhancing_voxels=[],
    )
    for lesion in lesions:
        sl, coords = box(geometry, lesion.centre, lesion.extent_mm)
        if sl is None:
            maps.voxels.append(0)
            maps.enhancing_voxels.append(0)
            continue
        frac, halo, gd = _profiles(lesion, coords)
        maps.dt1[sl] += (frac * lesion.dt1_ms + halo * lesion.halo_dt1_ms).astype(np.float32)
        maps.dt2[sl] += (frac * lesion.dt2_ms + halo * lesion.halo_dt2_ms).astype(np.float32)
        maps.dpd[sl] += (frac * lesion.dpd).astype(np.float32)
        maps.gd[sl] += gd.astype(np.float32)
        par = parenchyma[sl]
        body = (frac >= 0.5) & par
        if not body.any():  # tiny lesion on a coarse grid: keep its most-covered voxel
            cover = frac * par
            body = (cover == cover.max()) & (cover > 0)
        maps.all_mask[sl] |= body.astype(np.uint8)
        maps.voxels.append(int(body.sum()))
        if lesion.kind is Kind.active and lesion.label > 0:
            region = body | ((gd >= 0.5 * lesion.gd_mm) & par)
            maps.enhancing[sl][region] = lesion.label
            maps.enhancing_voxels.append(int(region.sum()))
        else:
            maps.enhancing_voxels.append(0)
    return maps
