"""Subject anatomy: the MNI152 2009 template warped into a distinct virtual subject.

The template (nilearn, offline) gives grey- and white-matter probability maps at 1 mm; CSF is the
rest of the brain mask, the lateral ventricles are its deep connected part. Each subject is the
template seen through a per-axis scaling (about the brain centre) and a smooth random displacement
field, placed at a random position in the scanner world. Arrays are (X, Y, Z) on a canonical
RAS-ordered grid; world coordinates are LPS mm (as :class:`gdsynth.io.Geometry`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy import ndimage as ndi

from gdsynth.io import Geometry
from gdsynth.phantom.config import PhantomConfig
from gdsynth.phantom.fields import SmoothField, random_field

_MARGIN_MM = 12
_RAS_DIRECTION = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)
# Box (RAS mm, MNI) through the bodies of the lateral ventricles, to pick their components.
_VENTRICLE_BOX = ((-25, 25), (-40, 20), (5, 25))


@dataclass(frozen=True)
class Template:
    """Tissue maps of the template on its (cropped) grid in template world coordinates."""

    geometry: Geometry
    wm: np.ndarray
    gm: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray  # float32 0/1, interpolated like the probability maps


@dataclass(frozen=True)
class Landmarks:
    """Distance maps (mm) on a 2 mm template grid, to bias where lesions are placed."""

    geometry: Geometry
    d_ventricle: np.ndarray  # distance to the lateral ventricles
    d_cortex: np.ndarray  # distance to grey matter (probability > 0.5)
    depth: np.ndarray  # distance to the outside of the brain


def _block_mean(a: np.ndarray, f: int) -> np.ndarray:
    s = [n - n % f for n in a.shape]
    a = a[: s[0], : s[1], : s[2]]
    return a.reshape(s[0] // f, f, s[1] // f, f, s[2] // f, f).mean(axis=(1, 3, 5))


def _ras_grid(shape: tuple[int, ...], corner_ras: np.ndarray, spacing: float) -> Geometry:
    origin = (-corner_ras[0], -corner_ras[1], corner_ras[2])
    return Geometry(shape, (spacing,) * 3, origin, _RAS_DIRECTION)  # type: ignore[arg-type]


@lru_cache(maxsize=1)
def _mni_1mm() -> tuple[dict[str, np.ndarray], np.ndarray, Geometry]:
    """Cropped 1 mm template arrays (wm, gm, csf, brain, ventricles, depth) and their grid."""
    from nilearn import datasets

    images = {
        "gm": datasets.load_mni152_gm_template(resolution=1),
        "wm": datasets.load_mni152_wm_template(resolution=1),
        "brain": datasets.load_mni152_brain_mask(resolution=1),
    }
    affine = np.asarray(images["brain"].affine, dtype=float)
    if not np.allclose(affine[:3, :3], np.eye(3)):
        raise RuntimeError("unexpected MNI152 template affine (expected 1 mm RAS)")
    brain = np.asarray(images["brain"].get_fdata()) > 0
    idx = np.argwhere(brain)
    lo = np.maximum(idx.min(0) - _MARGIN_MM, 0)
    hi = np.minimum(idx.max(0) + _MARGIN_MM + 1, brain.shape)
    crop = tuple(slice(int(a), int(b)) for a, b in zip(lo, hi, strict=True))
    arr = {k: np.asarray(v.get_fdata(), dtype=np.float32)[crop] for k, v in images.items()}
    brain = arr["brain"] > 0
    gm = np.where(brain, arr["gm"], 0).astype(np.float32)
    wm = np.where(brain, arr["wm"], 0).astype(np.float32)
    csf = np.clip(brain - gm - wm, 0, 1).astype(np.float32)
    depth = ndi.distance_transform_edt(brain).astype(np.float32)
    corner_ras = affine[:3, :3] @ lo + affine[:3, 3]
    geometry = _ras_grid(brain.shape, corner_ras, 1.0)
    # Lateral ventricles: deep CSF components crossing the ventricle box.
    lab, _ = ndi.label((csf > 0.5) & (depth > 8))
    ras = geometry.index_to_world(np.argwhere(lab > 0), ras=True)
    inside = np.all([(ras[:, a] > b[0]) & (ras[:, a] < b[1]) for a, b in enumerate(_VENTRICLE_BOX)],
                    axis=0)
    hits = np.bincount(lab[lab > 0][inside], minlength=lab.max() + 1)
    keep = np.flatnonzero(hits >= 200)
    ventricles = np.isin(lab, keep[keep > 0])
    out = {"wm": wm, "gm": gm, "csf": csf, "brain": brain, "ventricles": ventricles,
           "depth": depth}
    return out, corner_ras, geometry


@lru_cache(maxsize=2)
def load_template(resolution: float = 1.0) -> Template:
    """Template tissue maps at ``resolution`` mm (1, or 2 by 2x2x2 block averaging); cached."""
    arrays, corner_ras, geometry = _mni_1mm()
    f = int(round(resolution))
    keys = ("wm", "gm", "csf", "ventricles")
    if f == 1:
        maps = {k: arrays[k].astype(np.float32) for k in keys}
    else:
        maps = {k: _block_mean(arrays[k].astype(np.float32), f).astype(np.float32) for k in keys}
        shape = maps["wm"].shape
        geometry = _ras_grid(shape, corner_ras + 0.5 * (f - 1), float(f))
    return Template(geometry, maps["wm"], maps["gm"], maps["csf"], maps["ventricles"])


@lru_cache(maxsize=1)
def load_landmarks() -> Landmarks:
    """Distance maps for lesion placement on a 2 mm template grid; cached."""
    arrays, corner_ras, _ = _mni_1mm()
    vent = _block_mean(arrays["ventricles"].astype(np.float32), 2) > 0.25
    gm = _block_mean(arrays["gm"], 2) > 0.5
    brain = _block_mean(arrays["brain"].astype(np.float32), 2) > 0.5
    geometry = _ras_grid(vent.shape, corner_ras + 0.5, 2.0)
    edt = ndi.distance_transform_edt
    return Landmarks(
        geometry,
        edt(~vent, sampling=2.0).astype(np.float32),
        edt(~gm, sampling=2.0).astype(np.float32),
        edt(brain, sampling=2.0).astype(np.float32),
    )


@dataclass(frozen=True)
class Anatomy:
    """One subject's tissue maps on its T1w grid (canonical RAS order, scanner world LPS mm).

    A scanner-world point ``p`` corresponds to the template point
    ``centre + (p - offset - centre) / scale + warp(p - offset)``.
    """

    geometry: Geometry
    wm: np.ndarray  # float32 fractions, (X, Y, Z)
    gm: np.ndarray
    csf: np.ndarray
    ventricles: np.ndarray  # bool
    offset: np.ndarray  # mm
    centre: np.ndarray  # template brain centre, template world mm
    scale: np.ndarray
    warp: SmoothField

    @property
    def brain(self) -> np.ndarray:
        """Brain mask (bool): tissue fractions summing to at least one half."""
        return (self.wm + self.gm + self.csf) >= 0.5

    @property
    def brain_centre(self) -> np.ndarray:
        """Approximate brain centre in scanner world (LPS mm)."""
        return self.centre + self.offset

    def to_template(self, points: np.ndarray) -> np.ndarray:
        """Template-world positions (N, 3) of scanner-world points (N, 3), LPS mm."""
        u = np.atleast_2d(points) - self.offset
        return self.centre + (u - self.centre) / self.scale + self.warp.at_points(u)


def make_anatomy(rng: np.random.Generator, config: PhantomConfig) -> Anatomy:
    """Draw one subject: scaling, smooth deformation and head position; warp the tissue maps."""
    tpl = load_template(config.resolution)
    g = tpl.geometry
    corners = g.corners_world()
    lo, hi = corners.min(0), corners.max(0)
    centre = 0.5 * (lo + hi)
    scale = 1.0 + rng.uniform(-config.scale_jitter, config.scale_jitter, 3)
    warp = random_field(rng, lo, hi, spacing_mm=config.deform_spacing_mm,
                        rms=config.deform_rms_mm, components=3)
    offset = rng.uniform(-config.position_jitter_mm, config.position_jitter_mm, 3)
    # Template index of each subject voxel: a per-axis linear term plus the displacement field.
    coords = warp.on_grid(g)
    d = g.direction_matrix
    for a in range(3):
        step = d[a, a] * g.spacing[a]
        i = np.arange(g.shape[a], dtype=np.float64)
        world = g.origin[a] + step * i
        lin = ((centre[a] + (world - centre[a]) / scale[a]) - g.origin[a]) / step
        shape = [1, 1, 1]
        shape[a] = -1
        coords[a] /= step
        coords[a] += lin.reshape(shape).astype(np.float32)
    coords = coords.astype(np.float64)  # once, rather than inside every map_coordinates call
    warped = {
        k: ndi.map_coordinates(getattr(tpl, k), coords, order=0 if k == "ventricles" else 1,
                               mode="constant", cval=0.0, output=np.float32)
        for k in ("wm", "gm", "csf", "ventricles")
    }
    geometry = g.replace(origin=tuple(np.asarray(g.origin) + offset))
    return Anatomy(geometry, warped["wm"], warped["gm"], warped["csf"],
                   warped["ventricles"] > 0.5, offset, centre, scale, warp)
