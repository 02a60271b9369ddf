"""In-memory preparation of one exam: reorient, register, resample, mask, N4, normalize.

:func:`prepare_arrays` is the whole computation without disk writes (inference calls it
directly); :mod:`gdsynth.preprocess.exam` writes its result and caches it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gdsynth import __version__
from gdsynth.errors import ConstantImageError
from gdsynth.io import Geometry, read_image
from gdsynth.io.bids import Exam
from gdsynth.io.image import nifti_transform_note
from gdsynth.io.sequences import POST, REFERENCE, SEQUENCES
from gdsynth.preprocess.bias import n4_correct
from gdsynth.preprocess.config import PrepConfig
from gdsynth.preprocess.mask import brain_mask, head_mask
from gdsynth.preprocess.normalize import nawm_mask, nawm_median
from gdsynth.preprocess.orient import index_map, reorient_to_ras
from gdsynth.preprocess.provenance import input_records
from gdsynth.preprocess.quality import clipped_fraction, exam_quality
from gdsynth.preprocess.register import register_rigid
from gdsynth.preprocess.resample import (
    isotropic_geometry,
    move_to_grid,
    require_overlap,
    resample,
)


@dataclass
class PreparedVolumes:
    """Prepared images of one exam, all on ``geometry`` (the prepared grid).

    Attributes:
        images: float32 (X, Y, Z) arrays keyed T1w, T2w, FLAIR, T1w_gd (present ones), NAWM = 1.
        mask: bool (X, Y, Z) brain mask.
        geometry: prepared grid (T1w in RAS voxel order, optionally isotropic).
        native_geometry: the original T1w grid (see :func:`gdsynth.preprocess.move_to_grid`).
        provenance: parameters, transforms, metrics, NAWM medians, timings, input hashes.
    """

    images: dict[str, np.ndarray]
    mask: np.ndarray
    geometry: Geometry
    native_geometry: Geometry
    provenance: dict = field(default_factory=dict)


def prepared_geometry(native: Geometry, spacing: float | None) -> Geometry:
    """The prepared grid of a T1w grid: RAS voxel order, then optionally isotropic ``spacing``."""
    from gdsynth.preprocess.orient import reorient_geometry

    ras, _ = reorient_geometry(native)
    if spacing is None or np.allclose(ras.spacing, spacing, rtol=0, atol=1e-6):
        return ras
    return isotropic_geometry(ras, float(spacing))


def _coarse(array: np.ndarray, geometry: Geometry, target_mm: float = 2.0):
    """Strided copy (about ``target_mm`` voxels) and its grid: cheap masks for registration."""
    step = max(1, int(round(target_mm / min(geometry.spacing))))
    small = array[::step, ::step, ::step]
    return small, geometry.replace(shape=small.shape, spacing=tuple(s * step for s in geometry.spacing))


def _lesion_reference(images: dict[str, np.ndarray]) -> np.ndarray | None:
    return images.get("FLAIR", images.get("T2w"))


class _Timer:
    """Seconds spent per step (``tick(step)`` charges the time since the last tick to ``step``)."""

    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._clock = time.perf_counter()

    def tick(self, step: str) -> None:
        now = time.perf_counter()
        self.timings[step] = round(self.timings.get(step, 0.0) + now - self._clock, 3)
        self._clock = now


@dataclass
class _Reference:
    """The T1w that defines the prepared space: RAS array and grid, native grid, prepared grid,
    and a coarse copy (``small`` on ``small_geometry``) with its head mask for registration."""

    t1w: np.ndarray
    ras: Geometry
    native: Geometry
    target: Geometry
    small: np.ndarray
    small_geometry: Geometry
    head: tuple[np.ndarray, Geometry]
    clipping: tuple[float, float]


def _read_reference(exam: Exam, config: PrepConfig) -> _Reference:
    """Read the T1w, reorient it to RAS and derive the prepared grid and the registration mask."""
    t1_native, native = read_image(exam.t1w)  # type: ignore[arg-type]
    t1_ras, ras = reorient_to_ras(t1_native, native)
    target = prepared_geometry(native, config.spacing)
    small, small_geom = _coarse(t1_ras, ras)
    return _Reference(t1_ras, ras, native, target, small, small_geom,
                      (head_mask(small, small_geom.spacing), small_geom),
                      _clipping(t1_native))


def _clipping(image: np.ndarray) -> tuple[float, float]:
    """(:func:`clipped_fraction`, maximum) of an image as read."""
    return clipped_fraction(image), float(np.max(image))


def _moving_roles(exam: Exam, config: PrepConfig) -> list[str]:
    """The sequences registered to the T1w: the other pre-contrast ones, then the real post-Gd."""
    roles = [s for s in config.sequences if s != REFERENCE]
    if config.use_post and exam.t1w_gd is not None:
        roles.append(POST)
    return roles


def _align_moving(exam: Exam, config: PrepConfig, ref: _Reference, roles: list[str],
                  timer: _Timer) -> tuple[dict[str, np.ndarray], dict[str, dict],
                                          dict[str, Geometry], dict[str, tuple[float, float]]]:
    """Read each of ``roles``, register it rigidly to the T1w (unless ``config.register`` is off)
    and resample it onto the prepared grid. Returns the images, the registration records, the
    moving images' own grids and their clipping as read (:func:`_clipping`)."""
    images: dict[str, np.ndarray] = {}
    registration: dict[str, dict] = {}
    moving_grids: dict[str, Geometry] = {}
    clipping: dict[str, tuple[float, float]] = {}
    for role in roles:
        path = exam.path(role)
        moving, geom = read_image(path)  # type: ignore[arg-type]
        require_overlap(path, ref.native, geom)
        moving_grids[role] = geom
        clipping[role] = _clipping(moving)
        timer.tick("read_moving")
        matrix = np.eye(4)
        if config.register:
            result = register_rigid(ref.t1w, ref.ras, moving, geom, fixed_mask=ref.head,
                                    params=config.registration, name=path)
            matrix = result.matrix_lps
            registration[role] = result.to_dict()
            timer.tick("register")
        images[role] = resample(moving, geom, ref.target, matrix_lps=matrix,
                                interpolation=config.interpolation)
        timer.tick("resample")
    return images, registration, moving_grids, clipping


def _brain_mask(exam: Exam, config: PrepConfig, images: dict[str, np.ndarray],
                ref: _Reference) -> tuple[np.ndarray, str]:
    """The brain mask on the prepared grid and its source: the exam's own mask (``provided``) or
    one computed from the T1w and FLAIR/T2w (``computed``). An empty mask raises
    :class:`ConstantImageError`."""
    if exam.mask is not None:
        given, mgeom = read_image(exam.mask, allow_constant=True)
        require_overlap(exam.mask, ref.native, mgeom)
        mask = resample(given > 0.5, mgeom, ref.target, interpolation="nearest")
        source = "provided"
    else:
        others = [images[k] for k in ("FLAIR", "T2w") if k in images][:1]
        mask = brain_mask([images["T1w"], *others], ref.target.spacing,
                          erode=config.mask_erode_mm, close=config.mask_close_mm)
        source = "computed"
    if not mask.any():
        if exam.mask is not None:
            raise ConstantImageError(exam.mask, "brain mask is empty (no voxel inside the T1w "
                                                "field of view)")
        raise ConstantImageError(exam.t1w, "no brain found (the computed brain mask is empty)")
    return mask, source


def _normalize(exam: Exam, config: PrepConfig, images: dict[str, np.ndarray], mask: np.ndarray,
               spacing: tuple[float, ...]) -> tuple[dict[str, np.ndarray], np.ndarray, dict[str, float]]:
    """Divide every image by its NAWM median (NAWM = 1). Returns the images, the NAWM mask and
    the medians; no NAWM or a non-positive median raises :class:`ConstantImageError`."""
    nawm = nawm_mask(images["T1w"], mask, spacing, lesion_image=_lesion_reference(images),
                     erode_mm_=config.nawm_erode_mm, lesion_mads=config.lesion_mads)
    if not nawm.any():
        raise ConstantImageError(exam.t1w, "no normal-appearing white matter found in the brain "
                                           "mask: cannot normalize intensities")
    medians = {k: nawm_median(v, nawm) for k, v in images.items()}
    for k, m in medians.items():
        if not np.isfinite(m) or m <= 0:
            raise ConstantImageError(exam.path(k), f"NAWM median is {m}: cannot normalize")
    return {k: (v / medians[k]).astype(np.float32) for k, v in images.items()}, nawm, medians


def prepare_arrays(exam: Exam, config: PrepConfig = PrepConfig(), *,
                   hashes: dict | None = None) -> PreparedVolumes:
    """Prepare one exam in memory (see the package docstring for the steps).

    Raises :class:`MissingSequenceError` (naming the exam and sequence), :class:`GeometryError`
    (an image not overlapping the T1w, naming it), :class:`RegistrationError`, or any read error.
    ``hashes`` (from :func:`input_records`) avoids hashing the inputs twice.
    """
    timer = _Timer()
    exam.require(config.sequences)
    hashes = hashes if hashes is not None else input_records(exam, config)
    timer.tick("hash")
    ref = _read_reference(exam, config)
    timer.tick("read_t1w")

    roles = _moving_roles(exam, config)
    images, registration, moving_grids, clipping = _align_moving(exam, config, ref, roles, timer)
    images["T1w"] = move_to_grid(ref.t1w, ref.ras, ref.target, interpolation=config.interpolation)
    images = {k: images[k] for k in SEQUENCES if k in images}  # registry order
    timer.tick("resample")

    mask, mask_source = _brain_mask(exam, config, images, ref)
    timer.tick("mask")
    if config.n4:
        images = {k: n4_correct(v, ref.target, mask, config.n4_params)[0] for k, v in images.items()}
        timer.tick("n4")
    images, nawm, medians = _normalize(exam, config, images, mask, ref.target.spacing)
    timer.tick("normalize")

    t1w_brain = (brain_mask([ref.small], ref.small_geometry.spacing, erode=config.mask_erode_mm,
                            close=config.mask_close_mm), ref.small_geometry)
    quality, flags = exam_quality(
        exam, {k: v for k, v in images.items() if k != "T1w_gd"}, mask, ref.target,
        t1w_brain=t1w_brain, moving=moving_grids, registration=registration,
        clipping={"T1w": ref.clipping, **clipping})
    timer.tick("quality")

    provenance = {
        "gdsynth_version": __version__,
        "exam": exam.prefix,
        "inputs": hashes,
        "parameters": config.to_dict(),
        "native_geometry": ref.native.to_dict(),
        "native_orientation": ref.native.orientation,
        "prepared_geometry": ref.target.to_dict(),
        "exact_native_mapping": index_map(ref.target, ref.native) is not None,
        "registration": registration,
        "mask_source": mask_source,
        "mask_voxels": int(mask.sum()),
        "nawm_voxels": int(nawm.sum()),
        "nawm_median": medians,
        "header_transforms": {k: note for k in ("T1w", *roles)
                              if (note := nifti_transform_note(exam.path(k)))},
        "quality": quality,
        "quality_flags": flags,
        "timings_s": timer.timings,
    }
    provenance["timings_s"]["total"] = round(sum(timer.timings.values()), 3)
    return PreparedVolumes(images, mask.astype(bool), ref.target, ref.native, provenance)
