"""The detection pipeline: enhancement map (+ pre-contrast images, heads) → labelled lesions.

Steps (arrays (X, Y, Z) on one grid, ``spacing`` in mm):

1. quality flags (:func:`gdsynth.detection.patient.quality_flags`);
2. candidates by ``params.detector``: ``difference`` = hysteresis (``high``/``low``, raised to
   ``high_sigmas``/``low_sigmas`` × the noise SD when the map is noisy) on the enhancement map
   smoothed with ``sigma_mm`` inside the brain, minus its slowly varying background; each region
   trimmed to ≥ ``peak_fraction`` × its peak; ``segmentation`` = hysteresis
   (``seg_high``/``seg_low``) on ``heads["enhancing"]``; ``combined`` = 26-connected components of
   the union of both candidate masks (each component then scored with both evidences); the
   registry of detectors is :data:`gdsynth.detection.detectors.DETECTORS`;
3. components below ``min_volume_mm3`` dropped;
4. features and suppression of non-lesion enhancement (too large, surface, vessel, CSF/choroid
   plexus, not FLAIR-bright);
5. logistic score per lesion; labels renumbered 1..K by decreasing score;
6. patient summary (:func:`gdsynth.detection.patient.summarize_patient`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gdsynth.detection.candidates import remove_small
from gdsynth.detection.context import DIST_CAP_MM, TissueContext, tissue_context
from gdsynth.detection.detectors import DETECTORS, HEAD_NAME, Detector
from gdsynth.detection.features import component_features
from gdsynth.detection.params import DetectionParams
from gdsynth.detection.patient import quality_flags, summarize_patient
from gdsynth.detection.scoring import design_matrix, score_matrix
from gdsynth.detection.stage import LesionStage, stage_summary
from gdsynth.detection.stage_features import (
    CandidateSettings,
    precontrast_candidates,
    stage_features,
    union_candidates,
)
from gdsynth.detection.suppression import REASONS, suppression_reason
from gdsynth.errors import ConfigError, GeometryError

if TYPE_CHECKING:
    from gdsynth.io import Geometry


@dataclass
class DetectionResult:
    """``labels`` int32 (X, Y, Z), 0 = background, 1..K by decreasing score; ``lesions`` one dict
    per label (in label order); ``summary`` the exam-level dict; ``suppressed`` the rejected
    candidates' feature dicts, each with its ``reason``."""

    labels: np.ndarray
    lesions: list[dict[str, Any]]
    summary: dict[str, Any]
    suppressed: list[dict[str, Any]] = field(default_factory=list)


def _check_shapes(enhancement: np.ndarray, **arrays: np.ndarray | None) -> None:
    if enhancement.ndim != 3:
        raise GeometryError(None, f"enhancement must be a 3D (X, Y, Z) array, got {enhancement.shape}")
    for name, arr in arrays.items():
        if arr is not None and arr.shape != enhancement.shape:
            raise GeometryError(
                None, f"{name} shape {arr.shape} differs from enhancement {enhancement.shape}"
            )


def score_lesions(feats: Sequence[dict[str, Any]], params: DetectionParams) -> np.ndarray:
    """Scores (N,) in 0..1 of candidate feature dicts under ``params.score_coefficients``."""
    x = design_matrix(list(feats), use_head=params.detector.needs_head)
    return score_matrix(x, params.score_coefficients)


def enhancement_candidates(
    enh: np.ndarray,
    head: np.ndarray | None,
    brain: np.ndarray,
    spacing: Sequence[float],
    params: DetectionParams,
    info: dict[str, Any],
) -> np.ndarray:
    """int32 candidate labels of the enhancement map by ``params.detector`` (step 2 above, the
    detector's function in :data:`gdsynth.detection.detectors.DETECTORS`); ``info`` receives the
    thresholds used."""
    return DETECTORS[params.detector](enh, head, brain, spacing, params, info)


def detect_lesions(
    enhancement: np.ndarray,
    *,
    brain_mask: np.ndarray,
    spacing: Sequence[float],
    params: DetectionParams | None = None,
    flair: np.ndarray | None = None,
    t1w: np.ndarray | None = None,
    t2w: np.ndarray | None = None,
    uncertainty: np.ndarray | None = None,
    heads: Mapping[str, np.ndarray] | None = None,
    stage: LesionStage | None = None,
    missing: Collection[str] = (),
) -> DetectionResult:
    """Detect enhancing lesions in a synthetic enhancement map (post − pre, normalized units).

    ``flair``/``t1w``/``t2w`` are the normalized pre-contrast images (NAWM ≈ 1) used for CSF
    estimation and FLAIR gating; ``uncertainty`` an MC-dropout std map; ``heads`` maps head name →
    probability map (``"enhancing"`` is needed by the detectors whose ``needs_head`` is set).
    With a fitted ``stage`` (:mod:`gdsynth.detection.stage`) the learned lesion stage replaces
    steps 4–6: ``labels`` holds the candidates at or above its lesion threshold, ``lesions``
    every candidate with its score (``in_dseg`` says which are labelled).

    ``missing``: model inputs this exam lacks (the card's ``optional_inputs``); pass None for
    their images. Candidates then come only from the sequences present (pre-contrast candidates
    from FLAIR, else T2w, else none), the hand-set detector's FLAIR gating falls back the same way
    (``flair_source``; neither: no gating, ``flair_excess`` 0 = no evidence), and the learned
    stage's features of a missing sequence are NaN, which its classifier scores as unknown
    (:func:`gdsynth.detection.classifier.raw_score`).
    """
    params = params or DetectionParams()
    heads = dict(heads or {})
    # a missing sequence is absent, whatever array came with it (never zeros taken as real)
    flair, t2w, t1w = (None if name in missing else image for name, image in
                       (("FLAIR", flair), ("T2w", t2w), ("T1w", t1w)))
    head = _checked_head(enhancement, params, heads, brain_mask=brain_mask, flair=flair, t1w=t1w,
                         t2w=t2w, uncertainty=uncertainty)
    brain = brain_mask.astype(bool)
    enh = np.nan_to_num(np.asarray(enhancement, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    quality = quality_flags(brain, spacing, params, enhancement=enhancement, t1w=t1w, flair=flair,
                            t2w=t2w)
    if not brain.any():
        return _empty_result(enh.shape, params, quality)
    info: dict[str, Any] = {}
    if stage is not None:
        return _detect_with_stage(enh, brain, spacing, params, stage, quality, info,
                                  images={"FLAIR": flair, "T2w": t2w, "T1w": t1w},
                                  uncertainty=uncertainty, heads=heads, missing=missing)
    cand = enhancement_candidates(enh, head, brain, spacing, params, info)
    cand = remove_small(cand, params.min_volume_mm3, spacing)
    ctx = tissue_context(brain, spacing, params, t1w=t1w, t2w=t2w, flair=flair)
    feats = component_features(
        cand, enh, ctx, params, flair=flair, t2w=t2w, uncertainty=uncertainty, head=head
    )
    return _scored_result(cand, feats, ctx, params, quality, info)


def _checked_head(enhancement: np.ndarray, params: DetectionParams, heads: dict[str, np.ndarray],
                  **arrays: np.ndarray | None) -> np.ndarray | None:
    """The ``"enhancing"`` head map (None when absent) after checking every array's shape and
    that a detector which needs the head has it (steps before 1)."""
    head = heads.get(HEAD_NAME)
    _check_shapes(enhancement, **arrays, head=head)
    if params.detector.needs_head and head is None:
        raise ConfigError(
            None,
            f"detector {params.detector.value!r} needs heads[{HEAD_NAME!r}]; got heads {sorted(heads)}",
        )
    return head


def _empty_result(shape: tuple[int, ...], params: DetectionParams, quality: list[str]) -> DetectionResult:
    """The result of an exam without brain voxels: no lesion, every count 0."""
    summary = summarize_patient([], params, quality=quality)
    summary.update(n_candidates=0, suppressed=dict.fromkeys(REASONS, 0),
                   detector=params.detector.value, brain_volume_ml=0.0)
    return DetectionResult(np.zeros(shape, np.int32), [], summary)


def _scored_result(cand: np.ndarray, feats: list[dict[str, Any]], ctx: TissueContext,
                   params: DetectionParams, quality: list[str], info: dict[str, Any]) -> DetectionResult:
    """Steps 4–6 on the candidates ``cand`` and their features: suppression, score, labels
    renumbered 1..K by decreasing score, patient summary."""
    kept, suppressed = [], []
    for f in feats:
        reason = suppression_reason(f, params)
        if reason is None:
            kept.append(f)
        else:
            suppressed.append({**f, "reason": reason})
    scores = score_lesions(kept, params)
    order = np.argsort(-scores, kind="stable")
    lut = np.zeros(int(cand.max()) + 1, np.int32)
    lesions = []
    for new, idx in enumerate(order, start=1):
        f = kept[idx]
        lut[f["label"]] = new
        lesions.append({**f, "label": new, "candidate_label": f["label"], "score": float(scores[idx])})
    summary = summarize_patient(lesions, params, quality=quality)
    summary.update(
        n_candidates=len(feats),
        suppressed={r: sum(s["reason"] == r for s in suppressed) for r in REASONS},
        detector=params.detector.value,
        brain_volume_ml=ctx.brain_volume_ml,
        **info,
    )
    return DetectionResult(lut[cand], lesions, summary, suppressed)


def _detect_with_stage(
    enh: np.ndarray, brain: np.ndarray, spacing: Sequence[float], params: DetectionParams,
    stage: LesionStage, quality: list[str], info: dict[str, Any], *,
    images: dict[str, np.ndarray | None], uncertainty: np.ndarray | None,
    heads: dict[str, np.ndarray], missing: Collection[str] = (),
) -> DetectionResult:
    """Steps of :mod:`gdsynth.detection.stage` on one exam (see :func:`detect_lesions`)."""
    if uncertainty is None and any(f.startswith("unc_") for f in stage.features):
        raise ConfigError(None, "this model's lesion classifier uses the MC-dropout uncertainty: "
                                "synthesize with --mc-samples 2 or more (as when it was fitted)")
    found = stage_candidates(enh, brain, spacing, params, stage.candidates, images=images,
                             uncertainty=uncertainty, heads=heads, info=info, missing=missing)
    scores = stage.lesion_scores(found.features)
    order = np.argsort(-scores, kind="stable")
    lut = np.zeros(int(found.labels.max()) + 1, np.int32)
    dseg_lut = np.zeros_like(lut)
    lesions = []
    for new, idx in enumerate(order, start=1):
        f = found.features[idx]
        score = float(scores[idx])
        lut[f["label"]] = new
        if score >= stage.lesion_threshold:
            dseg_lut[f["label"]] = new
        lesions.append({**f, "label": new, "candidate_label": f["label"], "score": score,
                        "in_dseg": score >= stage.lesion_threshold,
                        "mean_enhancement": f["enh_mean"], "max_enhancement": f["enh_max"],
                        "mean_uncertainty": None if uncertainty is None else f["unc_mean"],
                        "location": _location(f, spacing, params)})
    summary = stage_summary(lesions, stage, quality=quality)
    summary.update(detector=params.detector.value, brain_volume_ml=found.brain_volume_ml,
                   n_enhancement_candidates=found.n_enhancement,
                   n_precontrast_candidates=found.n_precontrast, **info)
    return DetectionResult(dseg_lut[found.labels], lesions, summary, [])


def _location(f: dict[str, Any], spacing: Sequence[float], params: DetectionParams) -> str:
    """:func:`gdsynth.detection.features.location_class` rules on stage features."""
    if f["k_fraction"] < params.infratentorial_fraction:
        return "infratentorial-unknown"
    if f["surface_term"] * DIST_CAP_MM <= params.juxtacortical_mm:
        return "juxtacortical"
    if f["csf_term"] * DIST_CAP_MM <= params.periventricular_mm:
        return "periventricular"
    return "deep-white-matter"


@dataclass
class StageCandidates:
    """Union candidates of one exam: ``labels`` (int32 1..K) and one feature dict per label."""

    labels: np.ndarray
    features: list[dict[str, Any]]
    n_enhancement: int
    n_precontrast: int
    brain_volume_ml: float


def stage_candidates(
    enh: np.ndarray, brain: np.ndarray, spacing: Sequence[float], params: DetectionParams,
    settings: CandidateSettings, *, images: Mapping[str, np.ndarray | None],
    uncertainty: np.ndarray | None = None, heads: Mapping[str, np.ndarray] | None = None,
    info: dict[str, Any] | None = None, enhancement_labels: np.ndarray | None = None,
    missing: Collection[str] = (),
) -> StageCandidates:
    """Union of enhancement-map and pre-contrast candidates, with their stage features.

    ``enhancement_labels`` replaces the enhancement-map candidates of ``params.detector`` (any
    candidate generator plugs in here); a detector that needs the ``"enhancing"`` head falls
    back to ``difference`` when the model has none. ``missing``: sequences the exam lacks
    (their features are NaN, :func:`gdsynth.detection.stage_features.stage_features`).
    """
    heads = dict(heads or {})
    info = {} if info is None else info
    images = {k: None if k in missing else v for k, v in images.items()}
    brain = brain.astype(bool)
    ctx = tissue_context(brain, spacing, params, t1w=images.get("T1w"), t2w=images.get("T2w"),
                         flair=images.get("FLAIR"))
    if enhancement_labels is None:
        p = params if HEAD_NAME in heads else params.replace(detector=Detector.difference)
        enhancement_labels = remove_small(
            enhancement_candidates(enh, heads.get(HEAD_NAME), brain, spacing, p, info),
            params.min_volume_mm3, spacing)
    pre = precontrast_candidates(brain, spacing, settings, flair=images.get("FLAIR"),
                                 t2w=images.get("T2w"), csf=ctx.csf, heads=heads)
    pre = remove_small(pre, settings.min_volume_mm3, spacing)
    labels = union_candidates(enhancement_labels, pre, spacing, settings)
    feats = stage_features(labels, enh, ctx, enhancement_labels=enhancement_labels,
                           precontrast_labels=pre, images=images, uncertainty=uncertainty,
                           heads=heads, missing=missing)
    return StageCandidates(labels, feats, int(enhancement_labels.max()), int(pre.max()),
                           ctx.brain_volume_ml)


def add_world_coordinates(lesions: Sequence[dict[str, Any]], geometry: Geometry) -> list[dict[str, Any]]:
    """Copies of ``lesions`` with ``x_mm, y_mm, z_mm`` (RAS world mm of the voxel centre i, j, k)."""
    out = []
    for les in lesions:
        xyz = geometry.index_to_world(np.array([les["i"], les["j"], les["k"]]), ras=True)
        out.append({**les, "x_mm": float(xyz[0]), "y_mm": float(xyz[1]), "z_mm": float(xyz[2])})
    return out
