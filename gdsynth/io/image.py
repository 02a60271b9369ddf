"""Reading and writing 3D images with their geometry.

``read_image`` accepts anything SimpleITK reads (NIfTI first, NRRD, MHA, a DICOM series folder) and
returns a float32 (X, Y, Z) array plus its :class:`Geometry`, after checks that raise named errors
(:mod:`gdsynth.errors`). ``write_image`` writes atomically on a given geometry, copying no header
text, so every output lies exactly on its reference grid and carries no personal data.
"""

from __future__ import annotations

import hashlib
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdsynth.errors import (
    ConstantImageError,
    GeometryError,
    ImageDimensionError,
    ImageReadError,
    ImageTooLargeError,
    InputFileMissingError,
    NonFiniteImageError,
)
from gdsynth.io.atomic import atomic_path
from gdsynth.io.geometry import Geometry, sitk_to_array
from gdsynth.io.nifti_header import NiftiHeader, inspect_nifti, sform_geometry_lps

log = logging.getLogger(__name__)

#: Largest image accepted by default (voxels): 512³, about 0.5 GB as float32.
DEFAULT_MAX_VOXELS = 512**3


@dataclass(frozen=True)
class ImageInfo:
    """What a header says, read without loading pixels."""

    path: Path
    size: tuple[int, ...]
    components: int
    pixel_type: str


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """SHA-256 of a file's bytes (a folder: of its sorted files' names and bytes)."""
    p = Path(path)
    if not p.exists():
        raise InputFileMissingError(p, "file not found")
    h = hashlib.sha256()
    files = sorted(q for q in p.rglob("*") if q.is_file()) if p.is_dir() else [p]
    for f in files:
        if p.is_dir():
            h.update(str(f.relative_to(p)).encode())
        with open(f, "rb") as fh:
            while block := fh.read(chunk):
                h.update(block)
    return h.hexdigest()


def _dicom_series_files(folder: Path) -> list[str]:
    import SimpleITK as sitk

    shown = sitk.ProcessObject.GetGlobalWarningDisplay()
    sitk.ProcessObject.SetGlobalWarningDisplay(False)  # ITK's multi-line "No Series" warning
    try:
        ids = sitk.ImageSeriesReader.GetGDCMSeriesIDs(str(folder))
    finally:
        sitk.ProcessObject.SetGlobalWarningDisplay(shown)
    if not ids:
        raise ImageReadError(folder, "is a folder with no DICOM series (expected an image file)")
    series = [sitk.ImageSeriesReader.GetGDCMSeriesFileNames(str(folder), i) for i in ids]
    series.sort(key=len, reverse=True)
    if len(series) > 1:
        warnings.warn(
            f"{folder}: {len(series)} DICOM series found; reading the largest "
            f"({len(series[0])} files)",
            stacklevel=3,
        )
    return list(series[0])


def _reader(path: Path):  # -> sitk.ImageFileReader | sitk.ImageSeriesReader
    import SimpleITK as sitk

    if not path.exists():
        raise InputFileMissingError(path, "file not found")
    if path.is_dir():
        reader = sitk.ImageSeriesReader()
        reader.SetFileNames(_dicom_series_files(path))
        return reader
    if path.stat().st_size == 0:
        raise ImageReadError(path, "file is empty (0 bytes)")
    reader = sitk.ImageFileReader()
    reader.SetFileName(str(path))
    return reader


def read_image_info(path: str | Path) -> ImageInfo:
    """Read only the header: size, components and pixel type. Raises named errors."""
    import SimpleITK as sitk

    p = Path(path)
    reader = _reader(p)
    inspect_nifti(p)  # a header ITK would misread is refused before ITK sees it
    if isinstance(reader, sitk.ImageSeriesReader):
        first = sitk.ImageFileReader()
        first.SetFileName(reader.GetFileNames()[0])
        _read_information(first, p)
        size = (*first.GetSize()[:2], len(reader.GetFileNames()))
        return ImageInfo(p, size, first.GetNumberOfComponents(), str(first.GetPixelID()))
    _read_information(reader, p)
    return ImageInfo(
        p, tuple(reader.GetSize()), reader.GetNumberOfComponents(), str(reader.GetPixelID())
    )


def _read_information(reader, path: Path) -> None:
    try:
        reader.ReadImageInformation()
    except RuntimeError as exc:
        raise ImageReadError(path, f"not a readable image ({_short(exc)})") from None


def _short(exc: Exception) -> str:
    lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
    for ln in reversed(lines):
        if "description" in ln.lower() or "error" in ln.lower():
            return ln.split(":", 1)[-1].strip()[:160]
    return (lines[-1] if lines else type(exc).__name__)[:160]


_NIFTI_FLOAT = {16: "f4", 64: "f8"}


def _scan_nifti(path: Path, size: tuple[int, ...]) -> int:
    """Stream a NIfTI file's image bytes once: refuse truncation (ITK silently zero-fills missing
    voxels) and return the number of NaN/Inf float voxels (ITK turns them into zeros on read).

    Only the bytes the header describes are decompressed; data after the image (a ``.nii.gz``
    padded with gigabytes of zeros, say) is noticed from one more block and warned about, not
    decompressed in full."""
    import gzip
    import struct
    import zlib

    name = path.name.lower()
    if not name.endswith((".nii", ".nii.gz")):
        return 0
    opener = gzip.open if name.endswith(".gz") else open
    nonfinite = 0
    trailing = False
    try:
        with opener(path, "rb") as fh:
            head = fh.read(348)
            if len(head) < 348:
                raise ImageReadError(path, "file truncated inside the NIfTI header")
            endian = "<" if struct.unpack("<i", head[:4])[0] == 348 else ">"
            datatype, bitpix = struct.unpack(endian + "hh", head[70:74])
            vox_offset = int(struct.unpack(endian + "f", head[108:112])[0])
            need = vox_offset + int(np.prod(size, dtype=np.int64)) * max(bitpix, 8) // 8
            fh.read(max(vox_offset - 348, 0))
            got = max(vox_offset, 348)
            float_dtype = _NIFTI_FLOAT.get(datatype)
            item = max(bitpix, 8) // 8
            carry = b""
            while got < need and (block := fh.read(min(1 << 22, need - got))):
                got += len(block)
                if float_dtype:
                    data = carry + block
                    usable = len(data) - len(data) % item
                    values = np.frombuffer(data[:usable], dtype=endian + float_dtype)
                    nonfinite += int(np.count_nonzero(~np.isfinite(values)))
                    carry = data[usable:]
            if got >= need:
                trailing = bool(fh.read(1 << 16))
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError) as exc:
        raise ImageReadError(path, f"file corrupt or truncated ({exc})") from None
    if got < need:
        raise ImageReadError(path, f"file truncated: {got:,} bytes of {need:,} expected")
    if trailing:
        warnings.warn(f"{path}: data after the image ({need:,} bytes expected) ignored",
                      stacklevel=3)
    return nonfinite


def _check_size(info: ImageInfo, max_voxels: int) -> tuple[int, ...]:
    size = tuple(int(s) for s in info.size)
    if info.components != 1:
        raise ImageDimensionError(
            info.path, f"has {info.components} components per voxel (colour/vector image), "
            "expected a scalar MRI volume"
        )
    if len(size) == 4 and size[3] == 1:
        size = size[:3]
    if len(size) == 4:
        raise ImageDimensionError(
            info.path, f"is 4D with {size[3]} volumes {size}; give a single 3D volume"
        )
    if len(size) == 3 and size[2] == 1 or len(size) == 2:
        raise ImageDimensionError(info.path, f"is 2D (size {size}); a 3D volume is required")
    if len(size) != 3:
        raise ImageDimensionError(info.path, f"has {len(size)} dimensions; expected 3")
    if any(s <= 0 for s in size):
        raise ImageDimensionError(info.path, f"has an empty dimension (size {size})")
    n = int(np.prod(np.asarray(size, dtype=np.float64)))
    if n > max_voxels:
        raise ImageTooLargeError(
            info.path, f"header claims {size} = {n:,} voxels, above the limit of {max_voxels:,}"
        )
    return size


def _check_direction(path: Path, geometry: Geometry) -> None:
    d = geometry.direction_matrix
    if not np.allclose(d.T @ d, np.eye(3), atol=1e-3):
        raise GeometryError(path, "direction matrix is not orthonormal (sheared or scaled axes)")
    if any(s <= 0 or not np.isfinite(s) for s in geometry.spacing):
        raise GeometryError(path, f"invalid voxel spacing {geometry.spacing}")


def read_image(
    path: str | Path,
    *,
    max_voxels: int = DEFAULT_MAX_VOXELS,
    allow_constant: bool = False,
    dtype: type = np.float32,
) -> tuple[np.ndarray, Geometry]:
    """Read a 3D image as an (X, Y, Z) array of ``dtype`` and its :class:`Geometry`.

    NIfTI scaling (``scl_slope``/``scl_inter``) is applied. A singleton 4th dimension is squeezed
    with a warning. Raises :class:`InputFileMissingError`, :class:`ImageReadError`,
    :class:`ImageDimensionError`, :class:`ImageTooLargeError`, :class:`NonFiniteImageError`,
    :class:`ConstantImageError` (unless ``allow_constant``) or :class:`GeometryError`, each
    naming the file. The size is checked from the header before any pixel is allocated.
    """
    import SimpleITK as sitk

    p = Path(path)
    header = inspect_nifti(p)
    info = read_image_info(p)
    size = _check_size(info, max_voxels)
    nonfinite = _scan_nifti(p, info.size)
    if nonfinite:
        raise NonFiniteImageError(p, f"{nonfinite} voxels are NaN or infinite")
    reader = _reader(p)
    try:
        image = reader.Execute()
    except RuntimeError as exc:
        raise ImageReadError(p, f"cannot read pixel data, file corrupt or truncated ({_short(exc)})") from None
    if image.GetDimension() == 4:
        warnings.warn(f"{p}: singleton 4th dimension squeezed to 3D", stacklevel=2)
        image = sitk.Extract(image, [*size, 0], [0, 0, 0, 0])
    elif image.GetDimension() != 3:
        raise ImageDimensionError(p, f"has {image.GetDimension()} dimensions; expected 3")
    geometry = _nifti_geometry(header, Geometry.from_sitk(image))
    _check_direction(p, geometry)
    array = _unscaled(header, size) if header is not None and header.no_scaling else sitk_to_array(image)
    array = array.astype(dtype, copy=False)
    if np.issubdtype(array.dtype, np.floating) and not np.all(np.isfinite(array)):
        bad = int(np.count_nonzero(~np.isfinite(array)))
        raise NonFiniteImageError(p, f"{bad} voxels are NaN or infinite")
    if not allow_constant and array.size and array.max() == array.min():
        raise ConstantImageError(p, f"every voxel equals {float(array.flat[0]):g}")
    return array, geometry


def _nifti_geometry(header: NiftiHeader | None, geometry: Geometry) -> Geometry:
    """``geometry`` as ITK read it, or the sform's when the qform and sform disagree (logged and
    warned: which transform was used, and by how much they differ)."""
    if header is None:
        return geometry
    choice, why = header.transform_choice()
    if choice != "sform":
        return geometry
    log.warning("%s: %s", header.path, why)
    warnings.warn(f"{header.path}: {why}", stacklevel=3)
    spacing, origin, direction = sform_geometry_lps(header)
    return Geometry(geometry.shape, spacing, origin, direction)


def _unscaled(header: NiftiHeader, size: tuple[int, ...]) -> np.ndarray:
    """The stored values, unscaled: ``scl_slope`` 0 or not finite means no scaling (NIfTI rule),
    where ITK would still add ``scl_inter``."""
    import nibabel as nib

    try:
        raw = np.asanyarray(nib.load(header.path).dataobj)
    except Exception as exc:  # noqa: BLE001 - one line naming the file
        raise ImageReadError(header.path, f"cannot read pixel data ({exc})") from None
    return np.asarray(raw).reshape(size)


def nifti_transform_note(path: str | Path) -> str:
    """For provenance: ``"sform: <why>"`` when the file's qform and sform disagree and the sform
    was used, else ``""`` (one transform, or both agree)."""
    header = inspect_nifti(path)
    if header is None:
        return ""
    choice, why = header.transform_choice()
    return f"{choice}: {why}" if choice == "sform" else ""


def _storage_array(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        src = np.asarray(array)
        if np.issubdtype(src.dtype, np.floating):
            src = np.rint(src)
        return np.clip(src, info.min, info.max).astype(dtype)
    return np.asarray(array, dtype=dtype)


def write_image(
    path: str | Path,
    array: np.ndarray,
    geometry: Geometry,
    *,
    dtype: np.dtype | type | str | None = None,
    compress: bool = True,
) -> Path:
    """Write an (X, Y, Z) array on ``geometry`` to ``path``, atomically.

    ``dtype`` is the storage type (default: float32 for floating arrays, the array's own type
    otherwise); integer storage rounds and clips. No header text (description, patient tags) is
    ever written. The format follows the extension (``.nii.gz`` recommended).
    """
    import SimpleITK as sitk

    arr = np.asarray(array)
    if arr.ndim != 3:
        raise ValueError(f"write_image expects a 3D array, got shape {arr.shape}")
    if tuple(arr.shape) != geometry.shape:
        raise ValueError(f"array shape {arr.shape} does not match geometry shape {geometry.shape}")
    if dtype is None:
        dt = np.dtype(np.float32) if np.issubdtype(arr.dtype, np.floating) else arr.dtype
        if dt == np.bool_:
            dt = np.dtype(np.uint8)
    else:
        dt = np.dtype(dtype)
    image = geometry.to_sitk(_storage_array(arr, dt))
    with atomic_path(path) as tmp:
        writer = sitk.ImageFileWriter()
        writer.SetFileName(str(tmp))
        writer.SetUseCompression(compress)
        writer.Execute(image)
    return Path(path)


def write_labels(path: str | Path, labels: np.ndarray, geometry: Geometry) -> Path:
    """Write an integer label map (uint8 when it fits, else uint16/uint32) atomically."""
    lab = np.asarray(labels)
    top = int(lab.max()) if lab.size else 0
    if lab.size and int(lab.min()) < 0:
        raise ValueError("label maps must be non-negative")
    dt = np.uint8 if top < 256 else np.uint16 if top < 65536 else np.uint32
    return write_image(path, lab.astype(dt), geometry, dtype=dt)
