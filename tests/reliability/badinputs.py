"""Builders of bad inputs for the bad-input battery, each from one good phantom exam.

A builder takes the good exam's three paths (``{"T1w": ..., "T2w": ..., "FLAIR": ...}``) and a
fresh folder, writes what it needs there and returns the three paths to give to ``--t1w/--t2w/
--flair`` (strings, so a builder may return paths spelled with ``../`` or that do not exist).
Files are written with nibabel/SimpleITK directly where gdsynth's writer would refuse the data.
"""

from __future__ import annotations

import gzip
from collections.abc import Callable
from pathlib import Path

import nibabel as nib
import numpy as np

from gdsynth.io import Geometry, read_image, write_image
from gdsynth.preprocess.orient import reorient_to_ras
from gdsynth.preprocess.resample import resample

Paths = dict[str, str]
Builder = Callable[[dict[str, Path], Path], Paths]

# (index axis, flipped) of each target axis relative to RAS voxel order
_ORDER = {"RAS": ((0, False), (1, False), (2, False)), "LPS": ((0, True), (1, True), (2, False)),
          "LAS": ((0, True), (1, False), (2, False)), "PIR": ((1, True), (2, True), (0, False))}


def restore(array: np.ndarray, geometry: Geometry, code: str) -> tuple[np.ndarray, Geometry]:
    """The same voxels stored in voxel order ``code`` (RAS, LPS, LAS, PIR): a pure
    permutation/flip, world positions unchanged."""
    ras_array, ras = reorient_to_ras(array, geometry)
    perm = [a for a, _ in _ORDER[code]]
    out = np.transpose(ras_array, perm)
    flips = tuple(i for i, (_, f) in enumerate(_ORDER[code]) if f)
    out = np.flip(out, flips) if flips else out
    # new index n maps to RAS index r: r[perm[i]] = n[i], or shape-1-n[i] when flipped
    m = np.zeros((4, 4))
    m[3, 3] = 1
    for i, (a, f) in enumerate(_ORDER[code]):
        m[a, i] = -1.0 if f else 1.0
        m[a, 3] = ras.shape[a] - 1 if f else 0.0
    aff = ras.affine_lps @ m
    spacing = np.linalg.norm(aff[:3, :3], axis=0)
    direction = aff[:3, :3] / spacing
    geom = Geometry(out.shape, tuple(spacing), tuple(aff[:3, 3]), tuple(direction.ravel()))
    return np.ascontiguousarray(out), geom


def oblique_grid(geometry: Geometry, degrees: float = 17.0) -> Geometry:
    """A grid of the same spacing rotated by ``degrees`` about z then half that about x, centred
    on ``geometry``'s field of view and large enough to cover it."""
    a = np.deg2rad(degrees)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]])
    d = rz @ rx @ geometry.direction_matrix
    corners = geometry.corners_world()
    centre = corners.mean(axis=0)
    extent = np.abs((corners - centre) @ d).max(axis=0) * 2
    spacing = np.asarray(geometry.spacing)
    shape = np.ceil(extent / spacing).astype(int) + 1
    origin = centre - d @ ((shape - 1) * spacing / 2)
    return Geometry(tuple(shape), tuple(spacing), tuple(origin), tuple(d.ravel()))


def _copy(good: dict[str, Path], folder: Path, **replace: tuple[np.ndarray, Geometry]) -> Paths:
    """Write the good exam into ``folder``, with some sequences replaced by (array, geometry)."""
    out = {}
    for seq, path in good.items():
        target = folder / f"{seq}.nii.gz"
        if seq in replace:
            write_image(target, *replace[seq])
        else:
            target.write_bytes(path.read_bytes())
        out[seq] = str(target)
    return out


def _nifti(path: Path, array: np.ndarray, geometry: Geometry, *, dtype: object = np.float32,
           slope: float | None = None, inter: float | None = None) -> str:
    """Write with nibabel (any dtype, raw scaling, no checks)."""
    img = nib.Nifti1Image(np.asarray(array), geometry.affine)
    img.set_data_dtype(dtype)
    if slope is not None:
        img.header.set_slope_inter(slope, inter)
    nib.save(img, path)
    return str(path)


def _t1(good: dict[str, Path]) -> tuple[np.ndarray, Geometry]:
    return read_image(good["T1w"])


def _with_t1w(good: dict[str, Path], folder: Path, writer: Callable[[Path], str]) -> Paths:
    paths = _copy(good, folder)
    paths["T1w"] = writer(folder / "T1w_bad.nii.gz")
    return paths


# --- orientations, grids and storage: processed, on the input T1w grid -----------------------
def voxel_order(code: str) -> Builder:
    """Every sequence re-stored in voxel order ``code`` (same voxels, same world)."""
    def build(good: dict[str, Path], folder: Path) -> Paths:
        return _copy(good, folder, **{s: restore(*read_image(p), code) for s, p in good.items()})
    return build


def oblique(good: dict[str, Path], folder: Path) -> Paths:
    """T1w resampled onto an oblique grid (17° about z, 8.5° about x); T2w/FLAIR unchanged."""
    array, geometry = _t1(good)
    target = oblique_grid(geometry)
    return _copy(good, folder, T1w=(resample(array, geometry, target), target))


def other_fov_and_spacing(good: dict[str, Path], folder: Path) -> Paths:
    """T2w on a 3 mm × 3 mm × 5 mm grid; FLAIR cropped to the central 70 % of its field of view."""
    t2, g2 = read_image(good["T2w"])
    box = np.asarray(g2.shape) * np.asarray(g2.spacing)
    shape = np.maximum(1, np.round(box / np.array([3.0, 3.0, 5.0]))).astype(int)
    target = g2.replace(shape=tuple(shape), spacing=(3.0, 3.0, 5.0))
    fl, gf = read_image(good["FLAIR"])
    lo = (np.asarray(fl.shape) * 0.15).astype(int)
    hi = np.asarray(fl.shape) - lo
    crop = fl[lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]]
    origin = gf.index_to_world(lo.astype(float))
    cropped = gf.replace(shape=crop.shape, origin=tuple(float(v) for v in origin))
    return _copy(good, folder, T2w=(resample(t2, g2, target), target), FLAIR=(crop, cropped))


def int16_scaled(good: dict[str, Path], folder: Path) -> Paths:
    """T1w stored as int16 with scl_slope 0.25 and scl_inter 10 (the values must be applied)."""
    array, geometry = _t1(good)
    q = np.round((array - 10.0) / 0.25).astype(np.int16)
    return _with_t1w(good, folder, lambda p: _nifti(p, q, geometry, dtype=np.int16, slope=0.25,
                                                    inter=10.0))


def singleton_4d(good: dict[str, Path], folder: Path) -> Paths:
    """T1w stored as (X, Y, Z, 1): squeezed with a warning."""
    array, geometry = _t1(good)
    return _with_t1w(good, folder, lambda p: _nifti(p, array[..., None], geometry))


def odd_names(good: dict[str, Path], folder: Path) -> Paths:
    """Files in a folder with spaces, unicode and markup, given through a ``../`` path."""
    weird = folder / "dossier é ü 日本 <script>alert(1)<"
    weird.mkdir()
    (folder / "other").mkdir()
    paths = {}
    for seq, path in good.items():
        name = f"{seq} <script>alert('x')< & \"q\" é.nii.gz"
        (weird / name).write_bytes(path.read_bytes())
        paths[seq] = str(folder / "other" / ".." / weird.name / name)
    return paths


# --- refused with one line naming the file ----------------------------------------------------
def image_2d(good: dict[str, Path], folder: Path) -> Paths:
    """T1w is a single 2D slice (X, Y)."""
    array, geometry = _t1(good)
    return _with_t1w(good, folder, lambda p: _nifti(p, array[..., array.shape[2] // 2], geometry))


def slab_2d(good: dict[str, Path], folder: Path) -> Paths:
    """T1w is one slice stored as (X, Y, 1)."""
    array, geometry = _t1(good)
    return _with_t1w(good, folder, lambda p: _nifti(p, array[..., 20:21], geometry))


def image_4d(good: dict[str, Path], folder: Path) -> Paths:
    """T1w is 4D with 3 volumes (a time series)."""
    array, geometry = _t1(good)
    return _with_t1w(good, folder, lambda p: _nifti(p, np.stack([array] * 3, -1), geometry))


def non_finite(value: float) -> Builder:
    """T1w with a few NaN or infinite voxels."""
    def build(good: dict[str, Path], folder: Path) -> Paths:
        array, geometry = _t1(good)
        array = array.copy()
        array[10:12, 20, 20] = value
        return _with_t1w(good, folder, lambda p: _nifti(p, array, geometry))
    return build


def constant(value: float) -> Builder:
    """T1w where every voxel equals ``value``."""
    def build(good: dict[str, Path], folder: Path) -> Paths:
        array, geometry = _t1(good)
        return _with_t1w(good, folder,
                         lambda p: _nifti(p, np.full(array.shape, value, np.float32), geometry))
    return build


def truncated(good: dict[str, Path], folder: Path) -> Paths:
    """T1w .nii.gz cut to 60 % of its bytes (a copy interrupted mid-way)."""
    def write(p: Path) -> str:
        data = good["T1w"].read_bytes()
        p.write_bytes(data[: int(len(data) * 0.6)])
        return str(p)
    return _with_t1w(good, folder, write)


def truncated_inside_gzip(good: dict[str, Path], folder: Path) -> Paths:
    """A complete gzip stream whose NIfTI content lacks its last 20 % of voxels."""
    def write(p: Path) -> str:
        raw = gzip.decompress(good["T1w"].read_bytes())
        p.write_bytes(gzip.compress(raw[: int(len(raw) * 0.8)]))
        return str(p)
    return _with_t1w(good, folder, write)


def zero_bytes(good: dict[str, Path], folder: Path) -> Paths:
    """T1w is an empty file."""
    def write(p: Path) -> str:
        p.write_bytes(b"")
        return str(p)
    return _with_t1w(good, folder, write)


def png_named_nii(good: dict[str, Path], folder: Path) -> Paths:
    """T1w is a PNG picture named ``.nii``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png = folder / "picture.png"
    plt.imsave(png, np.random.default_rng(0).random((16, 16)))
    paths = _copy(good, folder)
    fake = folder / "T1w_picture.nii"
    fake.write_bytes(png.read_bytes())
    paths["T1w"] = str(fake)
    return paths


def garbage_gz(good: dict[str, Path], folder: Path) -> Paths:
    """T1w is text bytes named ``.nii.gz``."""
    def write(p: Path) -> str:
        p.write_bytes(b"this is not an image\n" * 50)
        return str(p)
    return _with_t1w(good, folder, write)


def folder_as_file(good: dict[str, Path], folder: Path) -> Paths:
    """T1w is a folder (named like an image) holding no DICOM series."""
    def write(p: Path) -> str:
        p.mkdir()
        (p / "notes.txt").write_text("not an image")
        return str(p)
    return _with_t1w(good, folder, write)


def missing_file(good: dict[str, Path], folder: Path) -> Paths:
    """FLAIR path does not exist."""
    paths = _copy(good, folder)
    paths["FLAIR"] = str(folder / "no_such_FLAIR.nii.gz")
    return paths


def absurd_header(good: dict[str, Path], folder: Path) -> Paths:
    """T1w header claims 30000³ float32 voxels (108 TB) over a few bytes of data."""
    def write(p: Path) -> str:
        header = nib.Nifti1Header()
        header.set_data_dtype(np.float32)
        header.set_data_shape((30000, 30000, 30000))
        header.set_data_offset(352)
        p = p.with_name("T1w_huge.nii")
        with open(p, "wb") as fh:
            fh.write(header.binaryblock + b"\x00" * 4 + np.zeros(64, np.float32).tobytes())
        return str(p)
    return _with_t1w(good, folder, write)


def rgb_image(good: dict[str, Path], folder: Path) -> Paths:
    """T1w is a colour (3 components per voxel) image."""
    import SimpleITK as sitk

    def write(p: Path) -> str:
        array, geometry = _t1(good)
        rgb = np.stack([array.T] * 3, -1).astype(np.uint8)
        image = sitk.GetImageFromArray(rgb, isVector=True)
        image.SetSpacing(geometry.spacing)
        sitk.WriteImage(image, str(p))
        return str(p)
    return _with_t1w(good, folder, write)


def no_overlap(good: dict[str, Path], folder: Path) -> Paths:
    """FLAIR's origin moved 600 mm away: it does not overlap the T1w."""
    fl, g = read_image(good["FLAIR"])
    moved = g.replace(origin=tuple(o + 600.0 for o in g.origin))
    return _copy(good, folder, FLAIR=(fl, moved))


# --- not a usable brain: processed, always referred with a quality reason ---------------------
def smooth_blob(good: dict[str, Path], folder: Path) -> Paths:
    """Every sequence is a smooth random positive blob on its own grid (no brain at all)."""
    from scipy import ndimage as ndi

    replaced = {}
    for i, (seq, path) in enumerate(good.items()):
        _, geometry = read_image(path)
        rng = np.random.default_rng(100 + i)
        noise = ndi.gaussian_filter(rng.normal(size=geometry.shape), 3.0)
        x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in geometry.shape], indexing="ij")
        envelope = np.exp(-2 * (x**2 + y**2 + z**2))
        replaced[seq] = ((500 + 4000 * noise) * envelope + 20).clip(0).astype(np.float32), geometry
    return _copy(good, folder, **replaced)


def shuffled(good: dict[str, Path], folder: Path) -> Paths:
    """Every sequence's voxels randomly permuted (same histogram, no anatomy)."""
    replaced = {}
    for i, (seq, path) in enumerate(good.items()):
        array, geometry = read_image(path)
        flat = array.ravel().copy()
        np.random.default_rng(200 + i).shuffle(flat)
        replaced[seq] = flat.reshape(array.shape), geometry
    return _copy(good, folder, **replaced)


def bright_shell(good: dict[str, Path], folder: Path) -> Paths:
    """Not skull-stripped: a bright 6 mm scalp shell 8 mm outside the brain on every sequence."""
    from scipy import ndimage as ndi

    replaced = {}
    for seq, path in good.items():
        array, geometry = read_image(path)
        inside = ndi.binary_fill_holes(ndi.gaussian_filter(array, 1.0) > 0.3 * np.percentile(array, 99))
        dist = ndi.distance_transform_edt(~inside, sampling=geometry.spacing)
        shell = (dist > 8.0) & (dist <= 14.0)
        out = array.copy()
        out[shell] = 1.4 * np.percentile(array[inside], 90)
        replaced[seq] = out.astype(np.float32), geometry
    return _copy(good, folder, **replaced)


# --- NIfTI headers that readers disagree on (issue #17.2) --------------------------------------
def _patched_header(good: dict[str, Path], folder: Path, name: str, offset: int, fmt: str,
                    *values: float) -> Paths:
    """T1w as an uncompressed ``.nii`` with header bytes ``offset..`` overwritten (``fmt``)."""
    import struct

    def write(p: Path) -> str:
        raw = bytearray(gzip.decompress(good["T1w"].read_bytes()))
        endian = "<" if struct.unpack("<i", raw[:4])[0] == 348 else ">"
        raw[offset:offset + struct.calcsize(endian + fmt)] = struct.pack(endian + fmt, *values)
        target = p.with_name(name)
        target.write_bytes(bytes(raw))
        return str(target)
    return _with_t1w(good, folder, write)


def vox_offset(value: float) -> Builder:
    """T1w whose header ``vox_offset`` is ``value`` (348: ITK reads every voxel 4 bytes early)."""
    def build(good: dict[str, Path], folder: Path) -> Paths:
        return _patched_header(good, folder, "T1w_voxoffset.nii", 108, "f", value)
    return build


def pixdim_zero(good: dict[str, Path], folder: Path) -> Paths:
    """T1w whose header ``pixdim[1]`` is 0 (ITK reads 1 mm with only a console warning)."""
    return _patched_header(good, folder, "T1w_pixdim0.nii", 80, "f", 0.0)


def slope_zero_with_intercept(good: dict[str, Path], folder: Path) -> Paths:
    """T1w with ``scl_slope`` 0 and ``scl_inter`` 500: by the NIfTI rule the stored values are
    used unscaled (ITK adds the intercept)."""
    return _patched_header(good, folder, "T1w_slope0.nii", 112, "ff", 0.0, 500.0)


def trailing_gzip_data(good: dict[str, Path], folder: Path) -> Paths:
    """T1w .nii.gz whose stream holds 64 MiB of zeros after the image (warned, not read)."""
    def write(p: Path) -> str:
        raw = gzip.decompress(good["T1w"].read_bytes())
        p.write_bytes(gzip.compress(raw + b"\0" * (64 << 20), compresslevel=1))
        return str(p)
    return _with_t1w(good, folder, write)


# --- mismatched exams: processed, always referred with a quality reason (issue #17.3) ---------
def _other_subject(good: dict[str, Path], seq: str) -> Path:
    anat = good["T1w"].parent
    subject = anat.parent.name
    others = sorted(p for p in anat.parent.parent.glob("sub-*") if p.name != subject)
    return others[0] / "anat" / f"{others[0].name}_{seq}.nii.gz"


def other_subject(good: dict[str, Path], folder: Path) -> Paths:
    """T2w and FLAIR of another subject (renamed: nothing in the names tells)."""
    return _copy(good, folder, **{s: read_image(_other_subject(good, s)) for s in ("T2w", "FLAIR")})


def flair_is_t1w(good: dict[str, Path], folder: Path) -> Paths:
    """The FLAIR file is a copy of the T1w."""
    return _copy(good, folder, FLAIR=_t1(good))


def t2w_clipped(good: dict[str, Path], folder: Path) -> Paths:
    """The T2w stored through a window that cuts its bright end: every voxel above the head's
    75th percentile (CSF, lesions) saturates at one value, as a 12-bit export set too high does."""
    t2, g = read_image(good["T2w"])
    top = float(np.percentile(t2[t2 > 0.1 * t2.max()], 75))
    return _copy(good, folder, T2w=(np.minimum(t2, top).astype(np.float32), g))


def flair_slab(good: dict[str, Path], folder: Path) -> Paths:
    """FLAIR covering 12 of 42 slices (the same fraction of its own slices) mid-brain."""
    fl, g = read_image(good["FLAIR"])
    start = int(g.shape[2] * 0.35)
    keep = fl[:, :, start:start + max(1, round(g.shape[2] * 12 / 42))]
    origin = g.index_to_world(np.array([0.0, 0.0, float(start)]))
    return _copy(good, folder, FLAIR=(keep, g.replace(shape=keep.shape,
                                                      origin=tuple(float(v) for v in origin))))
