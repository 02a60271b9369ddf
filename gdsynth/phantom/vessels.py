"""Normally enhancing structures that are not lesions: dural sinus, cortical veins, choroid plexus.

All are built in the subject's space from its brain and ventricle masks: the superior sagittal
sinus follows the top of the brain along the midline, a few cortical veins run just under the brain
surface along great-circle arcs, and a choroid plexus glomus sits in the atrium of each lateral
ventricle. They enhance strongly after gadolinium and are labelled in ``_label-vessel_mask``, never
as lesions.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from scipy.spatial import cKDTree

from gdsynth.phantom.anatomy import Anatomy
from gdsynth.phantom.config import PhantomConfig
from gdsynth.phantom.raster import box


@dataclass(frozen=True)
class VesselMaps:
    """Fractions on the anatomy grid (float32, (X, Y, Z))."""

    vessel: np.ndarray  # blood fraction (sinus, veins)
    choroid: np.ndarray  # fraction of CSF replaced by choroid plexus

    @property
    def mask(self) -> np.ndarray:
        """Truth mask (uint8) of normally enhancing structures."""
        return ((self.vessel >= 0.3) | (self.choroid >= 0.3)).astype(np.uint8)


def densify(points: np.ndarray, step: float = 0.4) -> np.ndarray:
    """Resample a polyline (N, 3) so consecutive points are at most ``step`` mm apart."""
    out = [points[:1]]
    for a, b in zip(points[:-1], points[1:], strict=True):
        n = max(int(np.ceil(np.linalg.norm(b - a) / step)), 1)
        t = np.linspace(0, 1, n + 1)[1:, None]
        out.append(a + t * (b - a))
    return np.concatenate(out)


def draw_tube(target: np.ndarray, anatomy: Anatomy, path: np.ndarray, radius: float) -> None:
    """Max-accumulate a tube of ``radius`` mm along ``path`` (LPS mm) into ``target`` (fractions,
    linear partial-volume ramp one voxel wide)."""
    path = densify(path)
    g = anatomy.geometry
    reach = radius + max(g.spacing)
    for start in range(0, len(path), 40):  # piecewise, so each box stays small
        piece = path[max(start - 1, 0) : start + 40]
        lo, hi = piece.min(0) - reach, piece.max(0) + reach
        sl, coords = box(g, 0.5 * (lo + hi), 0.5 * (hi - lo))
        if sl is None:
            continue
        grid = np.stack(np.meshgrid(*coords, indexing="ij"), axis=-1).reshape(-1, 3)
        dist, _ = cKDTree(piece).query(grid, distance_upper_bound=reach)
        frac = np.clip((radius - dist) / min(g.spacing) + 0.5, 0, 1)
        frac = np.nan_to_num(frac, posinf=0.0, neginf=0.0).reshape(target[sl].shape)
        np.maximum(target[sl], frac.astype(np.float32), out=target[sl])


def _surface_radius(brain: np.ndarray, anatomy: Anatomy, centre: np.ndarray, u: np.ndarray):
    """Distance (mm) from ``centre`` to the brain surface along unit vectors ``u`` (N, 3)."""
    r = np.arange(0.0, 130.0, 1.0)
    pts = centre + u[:, None, :] * r[None, :, None]
    ijk = anatomy.geometry.world_to_index(pts.reshape(-1, 3)).T
    inside = ndi.map_coordinates(brain, ijk, order=0, mode="constant", cval=0)
    inside = inside.reshape(len(u), len(r)) > 0
    last = len(r) - 1 - np.argmax(inside[:, ::-1], axis=1)
    return np.where(inside.any(axis=1), r[last], 0.0)


def _sinus(rng: np.random.Generator, anatomy: Anatomy, brain: np.ndarray) -> np.ndarray:
    """Superior sagittal sinus path: along the top of the brain in the midline (LPS mm)."""
    c = anatomy.brain_centre
    # Directions in the mid-sagittal plane from anterior (-y LPS) over the top to posterior.
    ang = np.deg2rad(np.linspace(-75, 115, 60))
    u = np.stack([np.zeros_like(ang), np.sin(ang), np.cos(ang)], axis=1)
    r = ndi.uniform_filter1d(_surface_radius(brain, anatomy, c, u), 5, mode="nearest")
    return c + u * (r[:, None] + rng.uniform(0.0, 1.5))


def _cortical_vein(rng: np.random.Generator, anatomy: Anatomy, brain: np.ndarray):
    """A vein just below the brain surface along a random great-circle arc (LPS mm)."""
    c = anatomy.brain_centre
    u0 = rng.standard_normal(3)
    u0[2] = abs(u0[2]) + 0.3  # mostly over the convexity
    u0 /= np.linalg.norm(u0)
    axis = np.cross(u0, rng.standard_normal(3))
    axis /= np.linalg.norm(axis)
    length = rng.uniform(30, 60)
    ang = np.linspace(0, length / 65.0, 40)
    u = (np.cos(ang)[:, None] * u0 + np.sin(ang)[:, None] * np.cross(axis, u0))
    r = ndi.uniform_filter1d(_surface_radius(brain, anatomy, c, u), 5, mode="nearest")
    return c + u * (r[:, None] - rng.uniform(0.5, 2.0))


def _choroid(rng: np.random.Generator, anatomy: Anatomy) -> np.ndarray:
    """A soft glomus in the posterior (atrial) part of each lateral ventricle."""
    out = np.zeros(anatomy.geometry.shape, np.float32)
    idx = np.argwhere(anatomy.ventricles)
    if len(idx) == 0:
        return out
    world = anatomy.geometry.index_to_world(idx.astype(float))
    mid = anatomy.brain_centre[0]
    for side in (world[:, 0] < mid, world[:, 0] >= mid):
        pts = world[side]
        if len(pts) < 20:
            continue
        posterior = pts[pts[:, 1] >= np.quantile(pts[:, 1], 0.7)]  # LPS: +y is posterior
        mean = posterior.mean(0)
        centre = posterior[np.argmin(np.linalg.norm(posterior - mean, axis=1))]  # inside
        radius = rng.uniform(6.0, 8.0)
        sl, coords = box(anatomy.geometry, centre, radius + 3)
        if sl is None:
            continue
        grid = np.stack(np.meshgrid(*coords, indexing="ij"), axis=-1)
        d = np.linalg.norm(grid - centre, axis=-1)
        ball = np.clip((radius - d) / 2.0 + 0.5, 0, 1) * rng.uniform(0.6, 0.9)
        out[sl] = np.maximum(out[sl], (ball * anatomy.ventricles[sl]).astype(np.float32))
    return out


def make_vessels(rng: np.random.Generator, anatomy: Anatomy, config: PhantomConfig) -> VesselMaps:
    """Sinus, a few cortical veins and the choroid plexus of one subject."""
    brain = anatomy.brain.astype(np.uint8)
    vessel = np.zeros(anatomy.geometry.shape, np.float32)
    draw_tube(vessel, anatomy, _sinus(rng, anatomy, brain), rng.uniform(2.5, 3.5))
    lo, hi = config.cortical_vessels
    for _ in range(int(rng.integers(lo, hi + 1))):
        draw_tube(vessel, anatomy, _cortical_vein(rng, anatomy, brain), rng.uniform(0.8, 1.4))
    return VesselMaps(vessel, _choroid(rng, anatomy))
