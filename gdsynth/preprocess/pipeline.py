"""In-memory preparation of one exam: reorient, register, resample, mask, N4, normalize.

:func:`prepare_arrays` is the whole computation without disk writes (inference calls it
directly); :mod:`gdsynth.preprocess.exam` writes its result and caches it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from gdsynth import __version__
from gdsynth.io import Geometry, read_image
from gdsynth.io.bids import Exam
from gdsynth.io.image import nifti_transform_note
from gdsynth.preprocess.bias import n4_correct
from gdsynth.preprocess.config import PrepConfig
from gdsynth.preprocess.mask import brain_mask, head_mask
from gdsynth.preprocess.normalize import nawm_mask, nawm_median
from gdsynth.preprocess.orient import index_map, reorient_to_ras
from gdsynth.preprocess.provenance import input_hashes
from gdsynth.preprocess.quality import exam_quality
from gdsynth.preprocess.register import register_rigid
from gdsynth.preprocess.resample import isotropic_geometry, require_overlap, resample


@dataclass
class PreparedVolumes:
    """Prepared images of one exam, all on ``geometry`` (the prepared grid).

    Attributes:
        images: float32 (X, Y, Z) arrays keyed T1w, T2w, FLAIR, T1w_gd (present ones), NAWM = 1.
        mask: bool (X, Y, Z) brain mask.
        geometry: prepared grid (T1w in RAS voxel order, optionally isotropic).
        native_geometry: the original T1w grid (see :func:`gdsynth.preprocess.to_native`).
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


def prepare_arrays(exam: Exam, config: PrepConfig = PrepConfig(), *,
                   hashes: dict | None = None) -> PreparedVolumes:
    """Prepare one exam in memory (see the package docstring for the steps).

    Raises :class:`MissingSequenceError` (naming the exam and sequence), :class:`GeometryError`
    (an image not overlapping the T1w, naming it), :class:`RegistrationError`, or any read error.
    ``hashes`` (from :func:`input_hashes`) avoids hashing the inputs twice.
    """
    timings: dict[str, float] = {}
    clock = time.perf_counter()

    def tick(step: str) -> None:
        nonlocal clock
        now = time.perf_counter()
        timings[step] = round(timings.get(step, 0.0) + now - clock, 3)
        clock = now

    exam.require(config.sequences)
    hashes = hashes if hashes is not None else input_hashes(exam, config)
    tick("hash")
    t1_native, native = read_image(exam.t1w)  # type: ignore[arg-type]
    t1_ras, ras = reorient_to_ras(t1_native, native)
    target = prepared_geometry(native, config.spacing)
    small, small_geom = _coarse(t1_ras, ras)
    reg_mask = (head_mask(small, small_geom.spacing), small_geom)
    tick("read_t1w")

    roles = [s for s in config.sequences if s != "T1w"]
    if config.use_post and exam.t1w_gd is not None:
        roles.append("T1w_gd")
    images: dict[str, np.ndarray] = {}
    registration: dict[str, dict] = {}
    moving_grids: dict[str, Geometry] = {}
    for role in roles:
        path = exam.path(role)
        moving, geom = read_image(path)  # type: ignore[arg-type]
        require_overlap(path, native, geom)
        moving_grids[role] = geom
        tick("read_moving")
        matrix = np.eye(4)
        if config.register:
            result = register_rigid(t1_ras, ras, moving, geom, fixed_mask=reg_mask,
                                    params=config.registration, name=path)
            matrix = result.matrix_lps
            registration[role] = result.to_dict()
            tick("register")
        images[role] = resample(moving, geom, target, matrix_lps=matrix,
                                interpolation=config.interpolation)
        tick("resample")
    images["T1w"] = t1_ras if target.same_grid(ras) else resample(t1_ras, ras, target,
                                                                   interpolation=config.interpolation)
    images = {k: images[k] for k in ("T1w", "T2w", "FLAIR", "T1w_gd") if k in images}
    tick("resample")

    if exam.mask is not None:
        given, mgeom = read_image(exam.mask, allow_constant=True)
        require_overlap(exam.mask, native, mgeom)
        mask = resample(given > 0.5, mgeom, target, interpolation="nearest")
        mask_source = "provided"
    else:
        others = [images[k] for k in ("FLAIR", "T2w") if k in images][:1]
        mask = brain_mask([images["T1w"], *others], target.spacing,
                          erode=config.mask_erode_mm, close=config.mask_close_mm)
        mask_source = "computed"
    tick("mask")
    if not mask.any():
        from gdsynth.errors import ConstantImageError

        if exam.mask is not None:
            raise ConstantImageError(exam.mask, "brain mask is empty (no voxel inside the T1w "
                                                "field of view)")
        raise ConstantImageError(exam.t1w, "no brain found (the computed brain mask is empty)")

    if config.n4 and mask.any():
        images = {k: n4_correct(v, target, mask, config.n4_params)[0] for k, v in images.items()}
        tick("n4")

    nawm = nawm_mask(images["T1w"], mask, target.spacing, lesion_image=_lesion_reference(images),
                     erode_mm_=config.nawm_erode_mm, lesion_mads=config.lesion_mads)
    if not nawm.any():
        from gdsynth.errors import ConstantImageError

        raise ConstantImageError(exam.t1w, "no normal-appearing white matter found in the brain "
                                           "mask: cannot normalize intensities")
    medians = {k: nawm_median(v, nawm) for k, v in images.items()}
    for k, m in medians.items():
        if not np.isfinite(m) or m <= 0:
            from gdsynth.errors import ConstantImageError

            raise ConstantImageError(exam.path(k), f"NAWM median is {m}: cannot normalize")
    images = {k: (v / medians[k]).astype(np.float32) for k, v in images.items()}
    tick("normalize")

    t1w_brain = (brain_mask([small], small_geom.spacing, erode=config.mask_erode_mm,
                            close=config.mask_close_mm), small_geom)
    quality, flags = exam_quality(
        exam, {k: v for k, v in images.items() if k != "T1w_gd"}, mask, target,
        t1w_brain=t1w_brain, moving=moving_grids, registration=registration)
    tick("quality")

    provenance = {
        "gdsynth_version": __version__,
        "exam": exam.prefix,
        "inputs": hashes,
        "parameters": config.to_dict(),
        "native_geometry": native.to_dict(),
        "native_orientation": native.orientation,
        "prepared_geometry": target.to_dict(),
        "exact_native_mapping": index_map(target, native) is not None,
        "registration": registration,
        "mask_source": mask_source,
        "mask_voxels": int(mask.sum()),
        "nawm_voxels": int(nawm.sum()),
        "nawm_median": medians,
        "header_transforms": {k: note for k in ("T1w", *roles)
                              if (note := nifti_transform_note(exam.path(k)))},
        "quality": quality,
        "quality_flags": flags,
        "timings_s": timings,
    }
    provenance["timings_s"]["total"] = round(sum(timings.values()), 3)
    return PreparedVolumes(images, mask.astype(bool), target, native, provenance)
