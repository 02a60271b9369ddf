"""Volumes for the browser: header-free compact copies, window presets, lesion outlines, scripts.

Every image shown in a review page or a reader study is re-written through :mod:`gdsynth.io`
(``read_image`` then ``write_image``), so no header text (description, patient tags) of the
source file reaches the site. Arrays are (X, Y, Z); world coordinates are RAS mm (NiiVue's).

Review sites store each volume once, compactly: cropped to the head's bounding box
(:func:`head_box`, :func:`crop_to_box`) and quantized (:func:`quantize`: uint8 over each
image's own 0.01-99.99th percentile range, or int16, and uint8 overlays) with the scaling ``value = stored * scale + offset`` kept in the page's
configuration (the viewer converts windows and thresholds; the NIfTI header holds none).
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdsynth.io import Geometry, atomic_write_text, read_image, write_image

#: Window presets as intensity percentiles (low, high) of the head's voxels (see
#: :func:`window_presets`); ``default`` starts at 0 for non-negative images.
PRESET_PERCENTILES: dict[str, tuple[float, float]] = {
    "default": (0.5, 99.5),
    "narrow": (5.0, 98.0),
    "wide": (0.0, 100.0),
}

#: Voxels above this fraction of the 99.5th percentile of |intensity| are "head" (foreground).
FOREGROUND_FRACTION = 0.05


def foreground(array: np.ndarray) -> np.ndarray:
    """Boolean mask of the head: finite voxels above :data:`FOREGROUND_FRACTION` of the image's
    99.5th percentile of absolute intensity (the background of an MR image is near zero)."""
    finite = np.isfinite(array)
    values = np.abs(array[finite])
    if values.size == 0:
        return finite
    top = float(np.percentile(values, 99.5))
    return finite & (array > FOREGROUND_FRACTION * top) if top > 0 else finite & (array != 0)


def window_presets(array: np.ndarray) -> dict[str, list[float]]:
    """Window presets ``{name: [min, max]}`` from percentiles of the head's voxels
    (:func:`foreground`, else the non-zero ones). ``default`` starts at 0 when at least 99 %
    of the voxels are non-negative, so a noisy or negative background shows black."""
    fg = foreground(array)
    values = array[fg] if fg.any() else array[np.isfinite(array) & (array != 0)]
    if values.size == 0:
        values = np.asarray([0.0, 1.0])
    finite = array[np.isfinite(array)]
    non_negative = finite.size == 0 or float(np.mean(finite >= 0)) >= 0.99
    out = {}
    for name, (lo, hi) in PRESET_PERCENTILES.items():
        a, b = (float(v) for v in np.percentile(values, [lo, hi]))
        if name == "default" and non_negative:
            a = 0.0
        out[name] = [round(a, 4), round(b if b > a else a + 1.0, 4)]
    return out


def head_box(array: np.ndarray, geometry: Geometry, *, margin_mm: float = 4.0) -> np.ndarray | None:
    """World (LPS mm) corners, shape (8, 3), of the bounding box of :func:`foreground` grown by
    ``margin_mm``; None when the image has no foreground."""
    fg = foreground(array)
    if not fg.any():
        return None
    idx = np.nonzero(fg)
    margin = np.ceil(margin_mm / np.asarray(geometry.spacing, float))
    lo = np.array([i.min() for i in idx], float) - margin
    hi = np.array([i.max() for i in idx], float) + margin
    corners = np.array([[a, b, c] for a in (lo[0], hi[0]) for b in (lo[1], hi[1])
                        for c in (lo[2], hi[2])], float)
    return geometry.index_to_world(corners)


def crop_to_box(
    array: np.ndarray, geometry: Geometry, box: np.ndarray | None
) -> tuple[np.ndarray, Geometry]:
    """Crop ``array`` to the voxels of its grid covering the world ``box`` (from
    :func:`head_box`, possibly of another grid); unchanged when ``box`` is None or misses."""
    if box is None:
        return array, geometry
    ijk = geometry.world_to_index(box)
    shape = np.asarray(geometry.shape)
    lo = np.clip(np.floor(ijk.min(axis=0)), 0, shape - 1).astype(int)
    hi = np.clip(np.ceil(ijk.max(axis=0)), 0, shape - 1).astype(int)
    if np.any(hi < lo):
        return array, geometry
    sl = tuple(slice(int(a), int(b) + 1) for a, b in zip(lo, hi, strict=True))
    origin = tuple(float(v) for v in geometry.index_to_world(lo.astype(float)))
    cropped = np.ascontiguousarray(array[sl])
    return cropped, geometry.replace(shape=tuple(int(v) for v in cropped.shape), origin=origin)


@dataclass(frozen=True)
class Quantized:
    """A stored integer array and its scaling: ``value = stored * scale + offset``."""

    stored: np.ndarray
    scale: float
    offset: float

    def value(self, stored: float) -> float:
        return stored * self.scale + self.offset

    def stored_value(self, value: float) -> float:
        return (value - self.offset) / self.scale


def display_range(array: np.ndarray) -> tuple[float, float]:
    """The stored range of an image: from min(0, 0.01th percentile) to the 99.99th percentile of
    its finite voxels (a few hot voxels saturate instead of compressing every other grey)."""
    values = array[np.isfinite(array)]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = (float(v) for v in np.percentile(values, [0.01, 99.99]))
    lo = min(0.0, lo)
    return lo, hi if hi > lo else lo + 1.0


def quantize(array: np.ndarray, *, top: float | None = None, bits: int = 8) -> Quantized:
    """Quantize for display. ``top`` None: images, over :func:`display_range` on ``bits`` bits
    (uint8 or int16); ``top`` given: overlays, uint8 over [0, top] (negative values become 0).
    Values outside the range saturate; non-finite voxels become the lowest value."""
    if top is not None:
        lo, hi = 0.0, float(top) if top > 0 else 1.0
        bits = 8
    else:
        lo, hi = display_range(array)
    levels = 255 if bits == 8 else 65535
    scale = (hi - lo) / levels
    a = np.where(np.isfinite(array), array, lo).astype(np.float64)
    q = np.clip(np.rint((a - lo) / scale), 0, levels)
    if bits == 8:
        return Quantized(q.astype(np.uint8), scale, lo)
    return Quantized((q - 32768).astype(np.int16), scale, lo + 32768 * scale)


def write_compact(
    dst: Path, array: np.ndarray, geometry: Geometry, *, top: float | None = None
) -> Quantized:
    """Write :func:`quantize`'s stored array as NIfTI at ``dst``; return the quantization."""
    q = quantize(array, top=top)
    write_image(dst, q.stored, geometry, dtype=q.stored.dtype)
    return q


def copy_image(src: Path, dst: Path) -> tuple[np.ndarray, Geometry]:
    """Re-write an intensity image as float32 NIfTI at ``dst`` (no header text carried over)."""
    array, geometry = read_image(src, allow_constant=True)
    write_image(dst, array, geometry, dtype=np.float32)
    return array, geometry


def axial_axes(geometry: Geometry) -> tuple[int, int]:
    """The two array axes closest to world left-right and anterior-posterior (an axial plane)."""
    ras = np.abs(geometry.direction_matrix)
    x = int(np.argmax(ras[0]))
    y = int(np.argmax(np.where(np.arange(3) == x, -1.0, ras[1])))
    return x, y


def outline(labels: np.ndarray, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """Boundary of each labelled region within the planes spanned by ``axes`` (use
    :func:`axial_axes` for axial outlines), keeping the label value."""
    lab = np.asarray(labels)
    inner = lab.copy()
    for axis in axes:
        for shift in (1, -1):
            inner = np.where(np.roll(lab, shift, axis=axis) == lab, inner, 0)
    edge = np.where((lab > 0) & (inner == 0), lab, 0)
    return edge.astype(lab.dtype)


def resample_to(
    array: np.ndarray, source: Geometry, target: Geometry, *, order: int = 1
) -> np.ndarray:
    """``array`` (on ``source``) on ``target`` as float32, 0 outside: linear (``order=1``) or
    nearest (``order=0``) through :func:`gdsynth.preprocess.move_to_grid` (kept for the review
    modules' callers; new code calls ``move_to_grid`` itself)."""
    from gdsynth.preprocess.resample import move_to_grid

    interpolation = "nearest" if order == 0 else "linear"
    return move_to_grid(array, source, target, interpolation=interpolation).astype(np.float32)


def write_volume_script(path: Path, variable: str, key: str, nifti: Path) -> Path:
    """Write one volume as a JS file adding ``window[variable][key] = base64 NIfTI bytes``:
    a page loads it with a ``<script>`` tag only when the volume is shown, from file:// too."""
    b64 = base64.b64encode(Path(nifti).read_bytes()).decode("ascii")
    text = (f"window.{variable} = window.{variable} || {{}};\n"
            f"window.{variable}[{json.dumps(key)}] = \"{b64}\";\n")
    return atomic_write_text(path, text)


def write_js_config(path: Path, variable: str, config: dict) -> Path:
    """Write ``window[variable] = <JSON>`` as a JS file; JSON text is safe inside a .js file."""
    text = json.dumps(config, sort_keys=True, allow_nan=False)
    return atomic_write_text(path, f"window.{variable} = {text};\n")
