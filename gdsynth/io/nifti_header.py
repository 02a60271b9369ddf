"""NIfTI-1/2 header checks made before any reader is trusted with the file.

SimpleITK reads headers that nibabel refuses, and reads them wrongly without a word: a
``vox_offset`` below 352 makes ITK read voxels from byte 348 (every voxel shifted), ``pixdim`` 0 is
read as 1 mm, ``scl_slope`` 0 with an intercept has the intercept applied (the NIfTI rule: slope 0
means *no scaling*), and a qform and sform that disagree are resolved one way or the other
without saying which. :func:`inspect_nifti` reads only the header bytes (a few hundred, even for a
``.nii.gz``) and raises a named error for what cannot be read safely:

* ``vox_offset`` not finite, below the header size (352 for NIfTI-1, 544 for NIfTI-2, single
  file) or above :data:`MAX_VOX_OFFSET` → :class:`~gdsynth.errors.ImageReadError`;
* ``pixdim`` of a used axis 0, negative zero or not finite → :class:`~gdsynth.errors.GeometryError`.

And it tells the reader what to do where the file is readable but ITK's reading differs from the
NIfTI standard (and from nibabel):

* :attr:`NiftiHeader.no_scaling`: ``scl_slope`` is 0 or not finite, so the stored values are used
  as they are (any intercept ignored);
* :meth:`NiftiHeader.transform_choice`: when both the qform and the sform are set and they
  disagree by more than :data:`TRANSFORM_TOLERANCE_MM` / :data:`TRANSFORM_TOLERANCE_DEG`, the
  **sform** is used, as nibabel (and so FSL-, nilearn- and most Python tools) do; the caller
  says so in a warning and the exam's provenance.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdsynth.errors import GeometryError, ImageReadError

#: Largest ``vox_offset`` accepted (bytes): extensions beyond 64 MiB are not an MRI header.
MAX_VOX_OFFSET = 64 * 2**20
#: qform/sform disagreement tolerated (mm of voxel-centre displacement over the field of view).
TRANSFORM_TOLERANCE_MM = 0.5
#: qform/sform disagreement tolerated (degrees between the axes).
TRANSFORM_TOLERANCE_DEG = 0.5


def is_nifti_name(path: str | Path) -> bool:
    """True for ``.nii`` and ``.nii.gz`` names (single-file NIfTI)."""
    return str(path).lower().endswith((".nii", ".nii.gz"))


@dataclass(frozen=True)
class NiftiHeader:
    """The fields of a NIfTI header that decide how its voxels are read."""

    path: Path
    version: int  # 1 or 2
    shape: tuple[int, ...]
    pixdim: tuple[float, ...]
    vox_offset: float
    scl_slope: float
    scl_inter: float
    qform_code: int
    sform_code: int
    qform: np.ndarray  # 4x4 voxel -> RAS mm (from the quaternion and pixdim)
    sform: np.ndarray  # 4x4 voxel -> RAS mm (srow_x/y/z)

    @property
    def no_scaling(self) -> bool:
        """``scl_slope`` is 0 or not finite: by the NIfTI rule the data are not scaled."""
        return self.scl_slope == 0 or not np.isfinite(self.scl_slope)

    def transform_disagreement(self) -> tuple[float, float] | None:
        """(mm, degrees) by which the qform and sform disagree, when both are set; else None.

        mm: the largest displacement of a corner voxel centre between the two; degrees: the
        largest angle between corresponding axes."""
        if self.qform_code <= 0 or self.sform_code <= 0:
            return None
        n = np.asarray(self.shape[:3], dtype=float) - 1
        corners = np.array([[i, j, k, 1.0] for i in (0, n[0]) for j in (0, n[1]) for k in (0, n[2])])
        mm = float(np.abs(corners @ (self.qform - self.sform).T)[:, :3].max())
        axes_q = self.qform[:3, :3] / np.linalg.norm(self.qform[:3, :3], axis=0)
        axes_s = self.sform[:3, :3] / np.maximum(np.linalg.norm(self.sform[:3, :3], axis=0), 1e-12)
        cos = np.clip(np.sum(axes_q * axes_s, axis=0), -1.0, 1.0)
        return mm, float(np.degrees(np.arccos(cos)).max())

    def transform_choice(self) -> tuple[str, str]:
        """(``"sform"``/``"qform"``/``"header"``, why): the transform that places this image.

        ``"header"`` means the reader's own choice stands (only one transform is set, or both
        agree within tolerance). ``"sform"`` means both are set and disagree: the sform is used.
        """
        diff = self.transform_disagreement()
        if diff is None:
            return "header", ""
        mm, deg = diff
        if mm <= TRANSFORM_TOLERANCE_MM and deg <= TRANSFORM_TOLERANCE_DEG:
            return "header", ""
        return "sform", (f"qform and sform disagree by {mm:.1f} mm / {deg:.1f}°; using the sform "
                         "(as nibabel does)")


def _open(path: Path):
    return gzip.open(path, "rb") if path.name.lower().endswith(".gz") else open(path, "rb")


def read_nifti_header(path: str | Path) -> NiftiHeader | None:
    """Parse the header of a ``.nii``/``.nii.gz`` file (None for other names, or a header
    that is not NIfTI: the image reader then reports what it is). Reads only the header bytes."""
    import nibabel as nib

    p = Path(path)
    if not is_nifti_name(p) or not p.is_file():
        return None
    try:
        with _open(p) as fh:
            head = fh.read(540)
    except (EOFError, zlib.error, gzip.BadGzipFile, OSError):
        return None  # the reader's own check says "corrupt or truncated"
    if len(head) < 348:
        return None
    version = endian = None
    for e in "<>":
        size = struct.unpack(e + "i", head[:4])[0]
        if size in (348, 540):
            version, endian = (1 if size == 348 else 2), e
    if version is None or (version == 2 and len(head) < 540):
        return None
    klass = nib.Nifti1Header if version == 1 else nib.Nifti2Header
    block = head[: 348 if version == 1 else 540]
    try:
        hdr = klass(block, endianness=endian, check=False)
    except Exception:  # noqa: BLE001 - not a header nibabel can parse: leave it to the reader
        return None
    raw = hdr.structarr
    ndim = int(raw["dim"][0])
    shape = tuple(int(v) for v in raw["dim"][1:1 + max(0, min(ndim, 7))])
    pixdim = tuple(float(v) for v in raw["pixdim"][1:1 + max(0, min(ndim, 7))])
    with np.errstate(all="ignore"):
        try:
            qform = np.asarray(hdr.get_qform(), dtype=float)
        except Exception:  # noqa: BLE001 - an invalid quaternion: no usable qform
            qform = np.full((4, 4), np.nan)
        sform = np.vstack([raw["srow_x"], raw["srow_y"], raw["srow_z"], [0, 0, 0, 1]]).astype(float)
    return NiftiHeader(
        path=p, version=version, shape=shape, pixdim=pixdim,
        vox_offset=float(raw["vox_offset"]), scl_slope=float(raw["scl_slope"]),
        scl_inter=float(raw["scl_inter"]), qform_code=int(raw["qform_code"]),
        sform_code=int(raw["sform_code"]), qform=qform, sform=sform,
    )


def check_nifti_header(header: NiftiHeader) -> None:
    """Raise a named error (naming the file) for a header no reader can be trusted with."""
    p, v = header.path, header.vox_offset
    minimum = 352 if header.version == 1 else 544
    if not np.isfinite(v):
        raise ImageReadError(p, f"NIfTI header vox_offset is {v}: not a valid data offset")
    if v < minimum:
        raise ImageReadError(p, f"NIfTI header vox_offset {v:g} is below {minimum} (the data "
                                "would overlap the header; readers disagree on such files)")
    if v > MAX_VOX_OFFSET:
        raise ImageReadError(p, f"NIfTI header vox_offset {v:.4g} is above {MAX_VOX_OFFSET:,} "
                                "bytes: not a valid data offset")
    for axis, (n, d) in enumerate(zip(header.shape[:3], header.pixdim[:3], strict=False), start=1):
        if n > 1 and (not np.isfinite(d) or d == 0):
            raise GeometryError(p, f"NIfTI header pixdim[{axis}] = {d:g}: voxel size unknown "
                                   "(0 or not finite)")
    if header.sform_code > 0 and not np.all(np.isfinite(header.sform)):
        raise GeometryError(p, "NIfTI header sform holds NaN or infinite values")


def inspect_nifti(path: str | Path) -> NiftiHeader | None:
    """:func:`read_nifti_header` then :func:`check_nifti_header`; None for a non-NIfTI file."""
    header = read_nifti_header(path)
    if header is not None:
        check_nifti_header(header)
    return header


def sform_geometry_lps(header: NiftiHeader) -> tuple[tuple, tuple, tuple]:
    """(spacing, origin, direction) in ITK's LPS convention from the header's sform."""
    lps = np.diag([-1.0, -1.0, 1.0]) @ header.sform[:3, :]
    spacing = np.linalg.norm(lps[:, :3], axis=0)
    if np.any(spacing <= 0) or not np.all(np.isfinite(spacing)):
        raise GeometryError(header.path, "NIfTI sform has a zero axis: cannot place the image")
    direction = lps[:, :3] / spacing
    return tuple(spacing), tuple(lps[:, 3]), tuple(direction.ravel())
