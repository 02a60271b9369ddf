"""Rigid co-registration of one sequence to the T1w (SimpleITK, Mattes mutual information).

Settings: Mattes MI (``bins`` histogram bins), regular sampling of ``sampling`` of the fixed
voxels inside the head mask (at most ``max_samples`` points per level) with a fixed seed and
one ITK thread (Mattes MI adds the threads' histogram contributions in arbitrary order, so a
multi-threaded run differs between processes in the last bits and, through the optimizer, in
the result; one thread makes it reproducible), 3-level pyramid (:func:`pyramid`: 4x, 2x, 1x the
finest working resolution), regular-step gradient descent with scales from physical shift, linear interpolation.

Initialisation is centred: the rotation centre is the centre of the fixed head mask, and the
translation is the better (by the masked metric) of the scanner's own alignment (identity: same
session, same world) and the moments-centred one (different fields of view). Safeguards: when the
pyramid result does not improve the masked finest-level metric, it is retried with on-the-fly
moving-image gradients, then at the finest level only; the start is kept if nothing improves;
a result beyond ``max_rotation_deg`` / ``max_translation_mm`` raises :class:`RegistrationError`.

The result is a 4x4 LPS matrix mapping a T1w-world point to the moving image's world (ITK's
fixed → moving convention), the same convention as the phantom's ``_motion.json``.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

import numpy as np

from gdsynth.errors import RegistrationError
from gdsynth.io import Geometry

T = TypeVar("T")


@dataclass(frozen=True)
class RegistrationParams:
    """Rigid registration settings (mm, degrees, fractions)."""

    levels: tuple[float, ...] = (4.0, 2.0, 1.0)
    sigmas: tuple[float, ...] = (1.0, 0.5, 0.0)
    sampling: float = 0.15
    max_samples: int = 100_000
    bins: int = 50
    iterations: int = 100
    learning_rate: float = 1.0
    min_step: float = 1e-4
    seed: int = 20240601
    max_translation_mm: float = 60.0
    max_rotation_deg: float = 30.0


@dataclass
class RigidResult:
    """Outcome of :func:`register_rigid`."""

    matrix_lps: np.ndarray
    metric: float
    initial_metric: float
    iterations: int
    stop: str
    initialisation: str
    extra: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-friendly form for provenance."""
        return {
            "matrix_lps": np.asarray(self.matrix_lps).tolist(),
            "metric": float(self.metric),
            "initial_metric": float(self.initial_metric),
            "iterations": int(self.iterations),
            "stop": self.stop,
            "initialisation": self.initialisation,
            **self.extra,
            "convention": "LPS mm, T1w (fixed) world -> moving world (ITK)",
        }


def transform_to_matrix(transform) -> np.ndarray:  # transform: sitk.Transform (matrix + offset)
    """4x4 LPS matrix of a SimpleITK Euler/affine transform."""
    m = np.eye(4)
    a = np.asarray(transform.GetMatrix()).reshape(3, 3)
    c = np.asarray(transform.GetCenter())
    t = np.asarray(transform.GetTranslation())
    m[:3, :3] = a
    m[:3, 3] = c + t - a @ c
    return m


def rotation_angle_deg(matrix: np.ndarray) -> float:
    """Rotation angle (degrees) of the linear part of a rigid 4x4 matrix."""
    r = np.asarray(matrix)[:3, :3]
    return float(np.degrees(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0))))


def mean_displacement(a: np.ndarray, b: np.ndarray, points: np.ndarray) -> float:
    """Mean distance (mm) between where two 4x4 matrices send ``points`` (N, 3, LPS mm)."""
    pa = points @ np.asarray(a)[:3, :3].T + np.asarray(a)[:3, 3]
    pb = points @ np.asarray(b)[:3, :3].T + np.asarray(b)[:3, 3]
    return float(np.linalg.norm(pa - pb, axis=1).mean())


def working_resolution(fixed: Geometry, moving: Geometry) -> float:
    """Finest resolution (mm) worth matching: max(finest fixed spacing, half the moving image's
    coarsest spacing). Matching 1 mm voxels against 4-5 mm slices only adds aliasing noise."""
    return max(min(fixed.spacing), max(moving.spacing) / 2)


def pyramid(geometry: Geometry, fine: float, params: RegistrationParams) -> tuple[list[int], list[float]]:
    """Shrink factors (of the fixed grid) and smoothing sigmas (mm) of each pyramid level:
    level ``n`` works at ``levels[n] * fine`` mm, smoothed by ``sigmas[n] * fine`` mm."""
    shrink = [max(1, int(round(f * fine / min(geometry.spacing)))) for f in params.levels]
    return shrink, [s * fine for s in params.sigmas]


def _bin_shrink(image, fine: float):  # sitk.Image -> sitk.Image
    """Average blocks of voxels so no axis is finer than about ``fine`` mm (anti-aliased)."""
    import SimpleITK as sitk

    factors = [max(1, int(np.floor(fine / s + 1e-3))) for s in image.GetSpacing()]
    return sitk.BinShrink(image, factors) if max(factors) > 1 else image


def sampling_per_level(voxels: int, shrink: list[int], params: RegistrationParams) -> list[float]:
    """Sampling fraction per level: ``sampling``, capped so a level draws at most ``max_samples``
    points from ``voxels`` (fixed voxels inside the mask at full working resolution)."""
    return [float(min(params.sampling, params.max_samples / max(1.0, voxels / f**3))) for f in shrink]


def _method(params: RegistrationParams, fixed_mask, shrink, sigmas, *,
            gradient_filter: bool = True, voxels: int = 0):  # -> sitk.ImageRegistrationMethod
    import SimpleITK as sitk

    reg = sitk.ImageRegistrationMethod()
    reg.SetMetricUseMovingImageGradientFilter(gradient_filter)
    reg.SetMetricAsMattesMutualInformation(numberOfHistogramBins=params.bins)
    reg.SetMetricSamplingStrategy(reg.REGULAR)
    reg.SetMetricSamplingPercentagePerLevel(sampling_per_level(voxels, shrink, params), params.seed)
    if fixed_mask is not None:
        reg.SetMetricFixedMask(fixed_mask)
    reg.SetInterpolator(sitk.sitkLinear)
    reg.SetOptimizerAsRegularStepGradientDescent(
        learningRate=params.learning_rate,
        minStep=params.min_step,
        numberOfIterations=params.iterations,
        relaxationFactor=0.5,
        gradientMagnitudeTolerance=1e-8,
    )
    reg.SetOptimizerScalesFromPhysicalShift()
    reg.SetShrinkFactorsPerLevel(shrink)
    reg.SetSmoothingSigmasPerLevel(sigmas)
    reg.SmoothingSigmasAreSpecifiedInPhysicalUnitsOn()
    return reg


def _initial_candidates(f_img, m_img, centre: np.ndarray) -> dict:
    """Starting rigid transforms rotating about ``centre``: identity and moments-centred."""
    import SimpleITK as sitk

    identity = sitk.Euler3DTransform()
    identity.SetCenter(tuple(float(c) for c in centre))
    candidates = {"identity": identity}
    try:
        moments = sitk.CenteredTransformInitializer(
            f_img, m_img, sitk.Euler3DTransform(), sitk.CenteredTransformInitializerFilter.MOMENTS)
        shift = np.asarray(sitk.Euler3DTransform(moments).GetTranslation())
    except RuntimeError:  # e.g. an empty image: the identity start remains
        return candidates
    moved = sitk.Euler3DTransform()
    moved.SetCenter(tuple(float(c) for c in centre))
    moved.SetTranslation(tuple(float(t) for t in shift))
    candidates["moments"] = moved
    return candidates


_ITK_THREADS = threading.Lock()


@contextmanager
def _one_itk_thread() -> Iterator[None]:
    """ITK filters created inside run on one thread (restored after; one registration at a time)."""
    import SimpleITK as sitk

    with _ITK_THREADS:
        previous = sitk.ProcessObject.GetGlobalDefaultNumberOfThreads()
        sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(1)
        try:
            yield
        finally:
            sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(previous)


def _single_threaded(fn: Callable[..., T]) -> Callable[..., T]:
    """Run ``fn`` on one ITK thread: identical results in every process."""
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> T:
        with _one_itk_thread():
            return fn(*args, **kwargs)
    return wrapper


def _sitk_inputs(fixed: np.ndarray, fixed_geometry: Geometry, moving: np.ndarray,
                 moving_geometry: Geometry, fixed_mask: tuple[np.ndarray, Geometry] | None):
    """The fixed and moving SimpleITK images at the working resolution, the fixed mask image (or
    None) and the rotation centre (LPS mm): the centre of the mask, else of the fixed grid."""
    fine = working_resolution(fixed_geometry, moving_geometry)
    f_img = _bin_shrink(fixed_geometry.to_sitk(np.asarray(fixed, np.float32)), fine)
    m_img = _bin_shrink(moving_geometry.to_sitk(np.asarray(moving, np.float32)), fine)
    mask_img = None
    if fixed_mask is not None:
        mask_img = fixed_mask[1].to_sitk(np.asarray(fixed_mask[0], np.uint8))
        idx = np.argwhere(fixed_mask[0])
        centre = fixed_mask[1].index_to_world(idx.mean(axis=0)) if len(idx) else None
    else:
        centre = None
    if centre is None:
        centre = fixed_geometry.index_to_world((np.asarray(fixed_geometry.shape) - 1) / 2)
    return fine, f_img, m_img, mask_img, centre


def _metric_judge(params: RegistrationParams, mask_img, f_img, m_img, centre: np.ndarray,
                  voxels: int) -> Callable[[np.ndarray], float]:
    """A function giving the masked metric at the finest level of a rigid 4x4 matrix (lower is
    better; inf when ITK cannot evaluate it).

    MetricEvaluate ignores the fixed mask, so matrices are judged by a one-step run with a
    negligible step: the masked metric at the finest level, the same samples for all.
    """
    import SimpleITK as sitk

    judge = _method(replace(params, iterations=1, learning_rate=1e-9, min_step=1e-12),
                    mask_img, [1], [0.0], voxels=voxels)

    def evaluate(matrix: np.ndarray) -> float:
        tx = sitk.Euler3DTransform()
        tx.SetCenter(tuple(float(c) for c in centre))
        tx.SetMatrix(tuple(np.asarray(matrix)[:3, :3].ravel()))
        tx.SetTranslation(tuple(np.asarray(matrix)[:3, 3] + np.asarray(matrix)[:3, :3] @ centre
                                - centre))
        judge.SetInitialTransform(tx, inPlace=False)
        try:
            judge.Execute(f_img, m_img)
            return float(judge.GetMetricValue())
        except RuntimeError:
            return float("inf")

    return evaluate


def _optimize(params: RegistrationParams, mask_img, f_img, m_img, start, voxels: int,
              shrink: list[int], sigmas: list[float], evaluate: Callable[[np.ndarray], float],
              start_score: float) -> tuple[list[tuple[float, np.ndarray, int, str]], str]:
    """Run the optimizer from the ``start`` transform until an attempt improves on
    ``start_score``: 1) the pyramid with the precomputed moving-gradient image (fast); 2) when
    the metric did not improve (it can mislead the optimizer on very anisotropic voxels),
    on-the-fly gradients; 3) still no improvement: the finest level only. Returns each finished
    attempt as (metric, matrix, iterations, stop condition) and the last ITK failure message."""
    import SimpleITK as sitk

    runs, failure = [], ""
    attempts = [(shrink, sigmas, True), (shrink, sigmas, False), ([1], [0.0], False)]
    for level_shrink, level_sigmas, gradient_filter in attempts:
        reg = _method(params, mask_img, level_shrink, level_sigmas,
                      gradient_filter=gradient_filter, voxels=voxels)
        reg.SetInitialTransform(sitk.Euler3DTransform(start), inPlace=False)
        try:
            out = reg.Execute(f_img, m_img)
        except RuntimeError as exc:
            failure = str(exc).strip().splitlines()[-1][:160]
            continue
        if out.GetName() == "CompositeTransform":
            out = sitk.CompositeTransform(out).GetNthTransform(0)
        matrix = transform_to_matrix(sitk.Euler3DTransform(out))
        runs.append((evaluate(matrix), matrix, int(reg.GetOptimizerIteration()),
                     reg.GetOptimizerStopConditionDescription()))
        if runs[-1][0] < start_score - 1e-3:
            break
    return runs, failure


def _check_plausible(name: object, metric: float, matrix: np.ndarray, centre: np.ndarray,
                     params: RegistrationParams) -> None:
    """Raise :class:`RegistrationError` naming ``name`` for a non-finite result or one beyond
    ``max_rotation_deg`` / ``max_translation_mm`` (head-centre shift)."""
    if not np.isfinite(metric) or not np.all(np.isfinite(matrix)):
        raise RegistrationError(name, "registration diverged (non-finite metric or transform)")
    angle = rotation_angle_deg(matrix)
    shift = float(np.linalg.norm(matrix[:3, :3] @ centre + matrix[:3, 3] - centre))
    if angle > params.max_rotation_deg or shift > params.max_translation_mm:
        raise RegistrationError(
            name, f"registration diverged: rotation {angle:.1f} deg, head-centre shift {shift:.1f} mm "
            f"(limits {params.max_rotation_deg} deg, {params.max_translation_mm} mm)")


@_single_threaded
def register_rigid(
    fixed: np.ndarray,
    fixed_geometry: Geometry,
    moving: np.ndarray,
    moving_geometry: Geometry,
    *,
    fixed_mask: tuple[np.ndarray, Geometry] | None = None,
    params: RegistrationParams = RegistrationParams(),
    name: object = "moving image",
) -> RigidResult:
    """Rigidly register ``moving`` to ``fixed`` (both (X, Y, Z) arrays with their geometry).

    ``fixed_mask`` (bool array and its grid, may be coarser) restricts the metric to the head.
    Raises :class:`RegistrationError` naming ``name`` when ITK fails, the metric is not finite or
    the result is implausible (beyond ``max_rotation_deg`` / ``max_translation_mm``).
    """
    fine, f_img, m_img, mask_img, centre = _sitk_inputs(fixed, fixed_geometry, moving,
                                                        moving_geometry, fixed_mask)
    candidates = _initial_candidates(f_img, m_img, centre)
    shrink, sigmas = pyramid(Geometry.from_sitk(f_img), fine, params)
    fraction = float(np.mean(fixed_mask[0])) if fixed_mask is not None else 1.0
    voxels = int(np.prod(f_img.GetSize()) * fraction)  # fixed voxels inside the mask
    evaluate = _metric_judge(params, mask_img, f_img, m_img, centre, voxels)

    scores = {k: evaluate(transform_to_matrix(tx)) for k, tx in candidates.items()}
    init = min(scores, key=lambda k: scores[k])
    if not np.isfinite(scores[init]):
        raise RegistrationError(name, "cannot evaluate the similarity metric: images do not overlap")
    runs, failure = _optimize(params, mask_img, f_img, m_img, candidates[init], voxels, shrink,
                              sigmas, evaluate, scores[init])
    if not runs:
        raise RegistrationError(name, f"registration to T1w failed ({failure})")
    metric, matrix, iterations, stop = min(runs, key=lambda r: r[0])
    _check_plausible(name, metric, matrix, centre, params)
    if metric > scores[init]:  # never return an alignment worse (by the metric) than the start
        metric, iterations = float(scores[init]), 0
        matrix = transform_to_matrix(candidates[init])
        stop = "no attempt improved the metric: initial alignment kept"
    return RigidResult(matrix, metric, float(scores[init]), iterations, stop, init,
                       {"attempts": len(runs)})
