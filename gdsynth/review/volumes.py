"""Volumes for the browser: header-free copies, window presets, lesion outlines, base64 bundles.

Every image shown in a review page or a reader study is re-written through :mod:`gdsynth.io`
(``read_image`` then ``write_image``), so no header text (description, patient tags) of the
source file reaches the site. Arrays are (X, Y, Z); world coordinates are RAS mm (NiiVue's).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np

from gdsynth.io import Geometry, atomic_write_text, read_image, write_image, write_labels

#: Window presets as intensity percentiles (low, high) of the non-zero voxels.
PRESET_PERCENTILES: dict[str, tuple[float, float]] = {
    "default": (0.5, 99.5),
    "narrow": (5.0, 98.0),
    "wide": (0.0, 100.0),
}


def window_presets(array: np.ndarray) -> dict[str, list[float]]:
    """Window presets ``{name: [min, max]}`` from percentiles of the non-zero voxels."""
    values = array[np.isfinite(array) & (array != 0)]
    if values.size == 0:
        values = np.asarray([0.0, 1.0])
    out = {}
    for name, (lo, hi) in PRESET_PERCENTILES.items():
        a, b = (float(v) for v in np.percentile(values, [lo, hi]))
        out[name] = [round(a, 4), round(b if b > a else a + 1.0, 4)]
    return out


def copy_image(src: Path, dst: Path) -> tuple[np.ndarray, Geometry]:
    """Re-write an intensity image as float32 NIfTI at ``dst`` (no header text carried over)."""
    array, geometry = read_image(src, allow_constant=True)
    write_image(dst, array, geometry, dtype=np.float32)
    return array, geometry


def copy_labels(src: Path, dst: Path) -> tuple[np.ndarray, Geometry]:
    """Re-write an integer label map at ``dst``."""
    array, geometry = read_image(src, allow_constant=True)
    labels = np.rint(np.clip(array, 0, None)).astype(np.int64)
    write_labels(dst, labels, geometry)
    return labels, geometry


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
    """Resample ``array`` (on ``source``) onto ``target`` by world coordinates (0 outside)."""
    from scipy.ndimage import map_coordinates

    if source.same_grid(target):
        return np.asarray(array, dtype=np.float32)
    nx, ny, nz = target.shape
    out = np.zeros(target.shape, np.float32)
    ii, jj = np.meshgrid(np.arange(nx), np.arange(ny), indexing="ij")
    for k0 in range(0, nz, 16):  # slabs of 16 slices keep memory small on 1 mm grids
        ks = np.arange(k0, min(nz, k0 + 16))
        grid = np.stack([np.repeat(ii[..., None], len(ks), -1), np.repeat(jj[..., None], len(ks), -1),
                         np.broadcast_to(ks, (nx, ny, len(ks)))], -1).reshape(-1, 3)
        ijk = source.world_to_index(target.index_to_world(grid.astype(np.float64)))
        slab = map_coordinates(array, ijk.T, order=order, mode="constant", cval=0.0)
        out[:, :, ks] = slab.reshape(nx, ny, len(ks))
    return out


def write_volume_bundle(path: Path, files: dict[str, Path], variable: str) -> Path:
    """Write ``window[variable] = {key: base64 NIfTI bytes}`` as a JS file (file:// viewing)."""
    payload = {k: base64.b64encode(Path(p).read_bytes()).decode("ascii") for k, p in files.items()}
    text = f"window.{variable} = {json.dumps(payload)};\n"
    return atomic_write_text(path, text)


def write_js_config(path: Path, variable: str, config: dict) -> Path:
    """Write ``window[variable] = <JSON>`` as a JS file; JSON text is safe inside a .js file."""
    text = json.dumps(config, sort_keys=True, allow_nan=False)
    return atomic_write_text(path, f"window.{variable} = {text};\n")
