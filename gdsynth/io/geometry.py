"""Voxel grid geometry: shape, spacing, origin and direction, in SimpleITK's LPS world convention."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import SimpleITK as sitk

_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0])


@dataclass(frozen=True)
class Geometry:
    """The grid an image lives on.

    Attributes:
        shape: voxels along (X, Y, Z) = (i, j, k), the file's index order.
        spacing: voxel size in mm along i, j, k.
        origin: world position (LPS, mm) of voxel (0, 0, 0).
        direction: 3x3 direction cosines, row-major, columns are the i, j, k axes in LPS.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    origin: tuple[float, float, float]
    direction: tuple[float, ...] = (1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shape", tuple(int(s) for s in self.shape))
        object.__setattr__(self, "spacing", tuple(float(s) for s in self.spacing))
        object.__setattr__(self, "origin", tuple(float(s) for s in self.origin))
        object.__setattr__(self, "direction", tuple(float(s) for s in self.direction))
        if len(self.shape) != 3 or len(self.spacing) != 3 or len(self.origin) != 3:
            raise ValueError("Geometry is 3D: shape, spacing and origin need 3 values")
        if len(self.direction) != 9:
            raise ValueError("Geometry.direction needs 9 values (3x3 row-major)")

    # --- matrices -------------------------------------------------------------------------
    @property
    def direction_matrix(self) -> np.ndarray:
        """3x3 direction matrix (LPS); column c is the world direction of index axis c."""
        return np.asarray(self.direction, dtype=float).reshape(3, 3)

    @property
    def affine_lps(self) -> np.ndarray:
        """4x4 voxel-index → LPS-mm matrix."""
        aff = np.eye(4)
        aff[:3, :3] = self.direction_matrix * np.asarray(self.spacing)[None, :]
        aff[:3, 3] = self.origin
        return aff

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-index → RAS-mm matrix (the NIfTI/nibabel convention)."""
        aff = self.affine_lps
        aff[:3, :] = _LPS_TO_RAS @ aff[:3, :]
        return aff

    @property
    def orientation(self) -> str:
        """Three-letter RAS-style axis code of the voxel order, e.g. ``"RAS"`` or ``"LPS"``."""
        ras = _LPS_TO_RAS @ self.direction_matrix
        letters = (("L", "R"), ("P", "A"), ("I", "S"))
        code = ""
        for c in range(3):
            axis = int(np.argmax(np.abs(ras[:, c])))
            code += letters[axis][int(ras[axis, c] > 0)]
        return code

    @property
    def is_oblique(self) -> bool:
        """True when an index axis is not aligned with a world axis (beyond 1e-3)."""
        d = np.abs(self.direction_matrix)
        return bool(np.any((d > 1e-3) & (d < 1 - 1e-3)))

    @property
    def voxel_volume(self) -> float:
        """Volume of one voxel in mm³."""
        return float(np.prod(self.spacing))

    # --- coordinates ----------------------------------------------------------------------
    def index_to_world(self, ijk: np.ndarray, *, ras: bool = False) -> np.ndarray:
        """Map voxel indices (N, 3) or (3,) to world mm (LPS by default, RAS if ``ras``)."""
        aff = self.affine if ras else self.affine_lps
        pts = np.atleast_2d(np.asarray(ijk, dtype=float))
        out = pts @ aff[:3, :3].T + aff[:3, 3]
        return out if np.ndim(ijk) > 1 else out[0]

    def world_to_index(self, xyz: np.ndarray, *, ras: bool = False) -> np.ndarray:
        """Map world mm (N, 3) or (3,) to continuous voxel indices."""
        aff = self.affine if ras else self.affine_lps
        pts = np.atleast_2d(np.asarray(xyz, dtype=float))
        out = (pts - aff[:3, 3]) @ np.linalg.inv(aff[:3, :3]).T
        return out if np.ndim(xyz) > 1 else out[0]

    def corners_world(self) -> np.ndarray:
        """The 8 corners of the field of view (voxel-edge to voxel-edge), LPS mm, shape (8, 3)."""
        s = np.asarray(self.shape, dtype=float)
        grid = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=float)
        return self.index_to_world(grid * s - 0.5)

    def same_grid(self, other: Geometry, *, atol: float = 1e-4) -> bool:
        """True when both grids have the same shape and (within ``atol`` mm) the same affine."""
        return self.shape == other.shape and bool(
            np.allclose(self.affine_lps, other.affine_lps, atol=atol)
        )

    def replace(self, **changes: object) -> Geometry:
        """Return a copy with some fields changed."""
        from dataclasses import replace

        return replace(self, **changes)  # type: ignore[arg-type]

    # --- SimpleITK bridge -----------------------------------------------------------------
    @classmethod
    def from_sitk(cls, image: sitk.Image) -> Geometry:
        """Geometry of a 3D SimpleITK image."""
        return cls(
            shape=tuple(image.GetSize()),  # type: ignore[arg-type]
            spacing=tuple(image.GetSpacing()),  # type: ignore[arg-type]
            origin=tuple(image.GetOrigin()),  # type: ignore[arg-type]
            direction=tuple(image.GetDirection()),
        )

    def apply_to(self, image: sitk.Image) -> sitk.Image:
        """Set this geometry's spacing, origin and direction on ``image`` (in place) and return it."""
        image.SetSpacing(self.spacing)
        image.SetOrigin(self.origin)
        image.SetDirection(self.direction)
        return image

    def to_sitk(self, array: np.ndarray) -> sitk.Image:
        """Wrap an (X, Y, Z) array as a SimpleITK image on this grid (pixels copied)."""
        import SimpleITK as sitk

        if tuple(array.shape) != self.shape:
            raise ValueError(f"array shape {array.shape} does not match geometry {self.shape}")
        image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array, (2, 1, 0))))
        return self.apply_to(image)

    def empty_sitk(self, pixel_type: int | None = None) -> sitk.Image:
        """A zero-filled SimpleITK image on this grid (a resampling reference)."""
        import SimpleITK as sitk

        image = sitk.Image(list(self.shape), pixel_type or sitk.sitkFloat32)
        return self.apply_to(image)

    def to_dict(self) -> dict[str, list[float] | list[int]]:
        """JSON-friendly form."""
        return {
            "shape": list(self.shape),
            "spacing": list(self.spacing),
            "origin": list(self.origin),
            "direction": list(self.direction),
        }

    @classmethod
    def from_dict(cls, data: dict) -> Geometry:
        """Inverse of :meth:`to_dict`."""
        return cls(
            shape=tuple(data["shape"]),
            spacing=tuple(data["spacing"]),
            origin=tuple(data["origin"]),
            direction=tuple(data["direction"]),
        )


def sitk_to_array(image: sitk.Image) -> np.ndarray:
    """Pixels of a 3D SimpleITK image as an (X, Y, Z) numpy array (a copy)."""
    import SimpleITK as sitk

    return np.ascontiguousarray(np.transpose(sitk.GetArrayFromImage(image), (2, 1, 0)))
