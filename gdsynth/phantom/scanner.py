"""Scanner effects: acquisition grids, voxel orders, rigid motion, bias field, Rician noise, storage.

Acquired images are first produced on a *canonical* grid (RAS voxel order, axis-aligned, so smooth
fields are separable) and only at the end reoriented to the subject's voxel order by a pure
permutation/flip (:func:`reorient`), which keeps every voxel's world position.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi

from gdsynth.errors import ConfigError
from gdsynth.io import Geometry
from gdsynth.phantom.fields import random_field

_LETTER_LPS = {
    "L": (1.0, 0.0, 0.0), "R": (-1.0, 0.0, 0.0),
    "P": (0.0, 1.0, 0.0), "A": (0.0, -1.0, 0.0),
    "S": (0.0, 0.0, 1.0), "I": (0.0, 0.0, -1.0),
}
_PAIRS = ("LR", "PA", "SI")


def direction_for(code: str) -> tuple[float, ...]:
    """Direction tuple (LPS, row-major, columns = index axes) of a voxel order like ``"LPS"``."""
    code = str(code).upper()
    ok = len(code) == 3 and all(c in _LETTER_LPS for c in code) and all(
        sum(c in pair for c in code) == 1 for pair in _PAIRS
    )
    if not ok:
        raise ConfigError(None, f"invalid voxel order {code!r}: use one letter of each of "
                          "L/R, P/A, S/I, e.g. RAS, LPS, PIR")
    cols = np.array([_LETTER_LPS[c] for c in code]).T
    return tuple(float(v) for v in cols.ravel())


def reorient(array: np.ndarray, geometry: Geometry, code: str) -> tuple[np.ndarray, Geometry]:
    """Permute/flip an axis-aligned image into voxel order ``code``; world positions unchanged."""
    src = geometry.direction_matrix
    dst = np.asarray(direction_for(code)).reshape(3, 3)
    perm, flips = [], []
    for n in range(3):
        dots = src.T @ dst[:, n]
        m = int(np.argmax(np.abs(dots)))
        if abs(dots[m]) < 0.99:
            raise ValueError("reorient needs an axis-aligned (non-oblique) geometry")
        perm.append(m)
        flips.append(bool(dots[m] < 0))
    out = np.transpose(array, perm)
    flip_axes = tuple(n for n in range(3) if flips[n])
    if flip_axes:
        out = np.flip(out, axis=flip_axes)
    corner = [geometry.shape[m] - 1 if f else 0 for m, f in zip(perm, flips, strict=True)]
    src_index = np.zeros(3)
    for n, m in enumerate(perm):
        src_index[m] = corner[n]
    new = Geometry(
        shape=tuple(geometry.shape[m] for m in perm),  # type: ignore[arg-type]
        spacing=tuple(geometry.spacing[m] for m in perm),  # type: ignore[arg-type]
        origin=tuple(geometry.index_to_world(src_index)),  # type: ignore[arg-type]
        direction=tuple(dst.ravel()),
    )
    return np.ascontiguousarray(out), new


def thick_slice_grid(reference: Geometry, slice_mm: float) -> Geometry:
    """Canonical axial grid with slices every ``slice_mm`` along world S-I, covering ``reference``.

    ``reference`` is a canonical grid (diagonal direction); in-plane spacing is kept. (A slice
    gap is a spacing larger than the slice thickness: pass thickness + gap.)
    """
    sp = np.asarray(reference.spacing, dtype=float)
    extent = sp[2] * reference.shape[2]
    nz = int(np.ceil(extent / slice_mm))
    first = reference.index_to_world(np.zeros(3))
    centre_z = first[2] + reference.direction_matrix[2, 2] * sp[2] * (reference.shape[2] - 1) / 2
    z0 = centre_z - reference.direction_matrix[2, 2] * slice_mm * (nz - 1) / 2
    return Geometry(
        (reference.shape[0], reference.shape[1], nz),
        (sp[0], sp[1], float(slice_mm)),
        (first[0], first[1], z0),
        reference.direction,
    )


@dataclass(frozen=True)
class Motion:
    """Rigid head motion relative to the T1w: ``p -> R (p - centre) + centre + translation``."""

    rotation_deg: float
    axis: np.ndarray  # unit rotation axis (LPS)
    translation_mm: np.ndarray  # (3,) LPS
    centre: np.ndarray  # (3,) LPS mm

    @property
    def matrix_lps(self) -> np.ndarray:
        """4x4 map from T1w world (LPS mm) to the world position of the same point in this image."""
        a = np.deg2rad(self.rotation_deg)
        k = np.array([[0, -self.axis[2], self.axis[1]], [self.axis[2], 0, -self.axis[0]],
                      [-self.axis[1], self.axis[0], 0]])
        r = np.eye(3) + np.sin(a) * k + (1 - np.cos(a)) * (k @ k)
        m = np.eye(4)
        m[:3, :3] = r
        m[:3, 3] = self.centre - r @ self.centre + self.translation_mm
        return m

    def to_dict(self) -> dict:
        return {
            "matrix_lps": self.matrix_lps.tolist(),
            "rotation_deg": float(self.rotation_deg),
            "rotation_axis_lps": self.axis.tolist(),
            "translation_mm": self.translation_mm.tolist(),
            "rotation_centre_lps": self.centre.tolist(),
        }


def random_motion(
    rng: np.random.Generator, centre: np.ndarray, max_deg: float, max_mm: float
) -> Motion:
    """Rotation up to ``max_deg`` about a random axis through ``centre``; shift up to ``max_mm``."""
    axis = rng.standard_normal(3)
    axis /= np.linalg.norm(axis)
    shift = rng.standard_normal(3)
    shift *= rng.uniform(0, max_mm) / np.linalg.norm(shift)
    return Motion(float(rng.uniform(0, max_deg)), axis, shift, np.asarray(centre, dtype=float))


def boxcar_profile(signal: np.ndarray, slice_mm: float, res: float, axis: int = 2) -> np.ndarray:
    """Average over a ``slice_mm`` wide box along ``axis`` (voxels of ``res`` mm; fractional end
    weights), the idealised rectangular slice profile of a 2D acquisition."""
    half = 0.5 * slice_mm / res
    n = int(np.ceil(half - 0.5))
    offsets = np.arange(-n, n + 1, dtype=float)
    weights = np.clip(half + 0.5 - np.abs(offsets), 0.0, 1.0)
    return ndi.correlate1d(signal, (weights / weights.sum()).astype(np.float32), axis=axis,
                           mode="constant")


def blur_to_resolution(signal: np.ndarray, spacing: tuple[float, ...], acquired_mm: float
                       ) -> np.ndarray:
    """Gaussian point spread making an image on ``spacing`` look acquired at ``acquired_mm``
    isotropic (FWHM ``sqrt(acquired^2 - spacing^2)`` per axis); unchanged when not coarser."""
    sigma = [np.sqrt(max(acquired_mm**2 - s**2, 0.0)) / 2.355 / s for s in spacing]
    if max(sigma) <= 0:
        return signal
    return ndi.gaussian_filter(signal, sigma, mode="constant").astype(np.float32)


def acquire(
    signal: np.ndarray,
    source: Geometry,
    target: Geometry,
    motion: Motion | None = None,
    slice_mm: float | None = None,
    profile: str = "gaussian",
) -> np.ndarray:
    """Resample a noise-free signal (on ``source``) onto an acquisition grid ``target``.

    The patient moved by ``motion`` (the image sees the anatomy at ``M^-1 q`` for a world point
    ``q``). ``slice_mm`` blurs along world S-I first: a Gaussian slice profile of that FWHM minus
    the source voxel's own width (``profile="gaussian"``), or a rectangular one of that width
    (``"boxcar"``). Trilinear interpolation; float32 (X, Y, Z) on ``target``.
    """
    if slice_mm is not None and profile == "boxcar":
        if slice_mm > source.spacing[2]:
            signal = boxcar_profile(signal, slice_mm, source.spacing[2])
    elif slice_mm is not None:
        res = source.spacing[2]
        fwhm = np.sqrt(max(slice_mm**2 - res**2, 0.0))
        if fwhm > 0:
            signal = ndi.gaussian_filter1d(signal, fwhm / 2.355 / res, axis=2, mode="constant")
    m_inv = np.linalg.inv(motion.matrix_lps) if motion is not None else np.eye(4)
    t = np.linalg.inv(source.affine_lps) @ m_inv @ target.affine_lps
    return ndi.affine_transform(signal, t[:3, :3], offset=t[:3, 3], output_shape=target.shape,
                                order=1, mode="constant", cval=0.0, output=np.float32)


def bias_field(rng: np.random.Generator, geometry: Geometry, strength: float) -> np.ndarray:
    """Smooth multiplicative field ``exp(f)``, f with RMS ``strength`` and ~80 mm features."""
    corners = geometry.corners_world()
    field = random_field(rng, corners.min(0), corners.max(0), spacing_mm=80.0, rms=strength)
    out = field.on_grid(geometry)[0]
    return np.exp(out, out=out)


def add_rician_noise(rng: np.random.Generator, signal: np.ndarray, sigma: float) -> np.ndarray:
    """Magnitude of (signal + complex Gaussian noise of SD ``sigma`` per channel), float32."""
    real = rng.standard_normal(signal.shape, dtype=np.float32)
    real *= sigma
    real += signal
    imag = rng.standard_normal(signal.shape, dtype=np.float32)
    imag *= sigma
    np.square(real, out=real)
    np.square(imag, out=imag)
    real += imag
    return np.sqrt(real, out=real)


def to_storage(image: np.ndarray, wm_level: float, target_wm: float, *, gamma: float = 1.0,
               max_value: int = 32767, clip_fraction: float | None = None) -> np.ndarray:
    """Scale so white matter sits near ``target_wm`` and round to int16 (clipped to 0..max_value).

    ``gamma`` != 1 first maps ``x -> wm (x / wm) ** gamma`` (a vendor-like non-linear intensity
    scaling that keeps white matter in place); ``max_value`` < 32767 windows the bright end (e.g.
    12-bit storage saturates vessels). ``clip_fraction`` (e.g. 0.005): the scale is lowered where
    needed so that at most this fraction of the head's voxels (signal above a quarter of white
    matter's) exceeds ``max_value`` — a scanner scales a series down rather than clip its tissue,
    so a 12-bit T2w saturates its brightest vessels and CSF voxels, not its ventricles. ``None``:
    the white-matter target holds whatever clips.
    """
    if gamma != 1.0:
        wm = np.float32(max(wm_level, 1e-12))
        image = (np.maximum(image, 0) / wm) ** np.float32(gamma) * wm
    factor = target_wm / max(wm_level, 1e-12)
    if clip_fraction is not None and float(image.max()) * factor > max_value:
        head = image[image > 0.25 * wm_level]
        if head.size:
            bright = float(np.quantile(head, 1.0 - clip_fraction))
            if bright * factor > max_value:
                factor = max_value / bright
    scaled = image * np.float32(factor)
    return np.clip(np.rint(scaled), 0, max_value).astype(np.int16)
