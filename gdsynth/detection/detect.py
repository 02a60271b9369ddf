"""The detection pipeline: enhancement map (+ pre-contrast images, heads) → labelled lesions.

Steps (arrays (X, Y, Z) on one grid, ``spacing`` in mm):

1. quality flags (:func:`gdsynth.detection.patient.quality_flags`);
2. candidates by ``params.detector``: ``difference`` = hysteresis (``high``/``low``, raised to
   ``high_sigmas``/``low_sigmas`` × the noise SD when the map is noisy) on the enhancement map
   smoothed with ``sigma_mm`` inside the brain, minus its slowly varying background; each region
   trimmed to ≥ ``peak_fraction`` × its peak; ``segmentation`` = hysteresis
   (``seg_high``/``seg_low``) on ``heads["enhancing"]``; ``combined`` = 26-connected components of
   the union of both candidate masks (each component then scored with both evidences);
3. components below ``min_volume_mm3`` dropped;
4. features and suppression of non-lesion enhancement (too large, surface, vessel, CSF/choroid
   plexus, not FLAIR-bright);
5. logistic score per lesion; labels renumbered 1..K by decreasing score;
6. patient summary (:func:`gdsynth.detection.patient.summarize_patient`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from gdsynth.detection.candidates import (
    difference_candidates,
    hysteresis_components,
    remove_small,
    trim_to_peak,
    union_components,
)
from gdsynth.detection.context import tissue_context
from gdsynth.detection.features import component_features
from gdsynth.detection.params import DetectionParams, Detector
from gdsynth.detection.patient import quality_flags, summarize_patient
from gdsynth.detection.scoring import design_matrix, score_matrix
from gdsynth.detection.suppression import REASONS, suppression_reason
from gdsynth.errors import ConfigError, GeometryError

if TYPE_CHECKING:
    from gdsynth.io import Geometry

HEAD_NAME = "enhancing"


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
    use_head = params.detector != Detector.difference.value
    x = design_matrix(list(feats), use_head=use_head)
    return score_matrix(x, params.score_coefficients)


def _candidates(
    enh: np.ndarray,
    head: np.ndarray | None,
    brain: np.ndarray,
    spacing: Sequence[float],
    params: DetectionParams,
    info: dict[str, Any],
) -> np.ndarray:
    detector = Detector(params.detector)
    diff = None
    seg = None
    if detector in (Detector.difference, Detector.combined):
        diff = difference_candidates(enh, brain, spacing, params, info)
    if detector in (Detector.segmentation, Detector.combined):
        assert head is not None
        seg = hysteresis_components(head, params.seg_high, params.seg_low, brain)
        seg = trim_to_peak(seg, head, params.peak_fraction)
    if diff is not None and seg is not None:
        return union_components(diff, seg)
    return diff if diff is not None else seg  # type: ignore[return-value]


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
) -> DetectionResult:
    """Detect enhancing lesions in a synthetic enhancement map (post − pre, normalized units).

    ``flair``/``t1w``/``t2w`` are the normalized pre-contrast images (NAWM ≈ 1) used for CSF
    estimation and FLAIR gating; ``uncertainty`` an MC-dropout std map; ``heads`` maps head name →
    probability map (``"enhancing"`` is needed by the segmentation/combined detectors).
    """
    params = params or DetectionParams()
    heads = dict(heads or {})
    head = heads.get(HEAD_NAME)
    _check_shapes(
        enhancement, brain_mask=brain_mask, flair=flair, t1w=t1w, t2w=t2w,
        uncertainty=uncertainty, head=head,
    )
    if params.detector != Detector.difference.value and head is None:
        raise ConfigError(
            None,
            f"detector {params.detector!r} needs heads[{HEAD_NAME!r}]; got heads {sorted(heads)}",
        )
    brain = brain_mask.astype(bool)
    enh = np.nan_to_num(np.asarray(enhancement, dtype=np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    quality = quality_flags(brain, spacing, params, enhancement=enhancement, t1w=t1w, flair=flair,
                            t2w=t2w)
    empty = np.zeros(enh.shape, np.int32)
    if not brain.any():
        summary = summarize_patient([], params, quality=quality)
        summary.update(n_candidates=0, suppressed=dict.fromkeys(REASONS, 0),
                       detector=params.detector, brain_volume_ml=0.0)
        return DetectionResult(empty, [], summary)

    info: dict[str, Any] = {}
    cand = _candidates(enh, head, brain, spacing, params, info)
    cand = remove_small(cand, params.min_volume_mm3, spacing)
    ctx = tissue_context(brain, spacing, params, t1w=t1w, t2w=t2w, flair=flair)
    feats = component_features(
        cand, enh, ctx, params, flair=flair, t2w=t2w, uncertainty=uncertainty, head=head
    )
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
    labels = lut[cand]
    summary = summarize_patient(lesions, params, quality=quality)
    summary.update(
        n_candidates=len(feats),
        suppressed={r: sum(s["reason"] == r for s in suppressed) for r in REASONS},
        detector=params.detector,
        brain_volume_ml=ctx.brain_volume_ml,
        **info,
    )
    return DetectionResult(labels, lesions, summary, suppressed)


def add_world_coordinates(lesions: Sequence[dict[str, Any]], geometry: Geometry) -> list[dict[str, Any]]:
    """Copies of ``lesions`` with ``x_mm, y_mm, z_mm`` (RAS world mm of the voxel centre i, j, k)."""
    out = []
    for les in lesions:
        xyz = geometry.index_to_world(np.array([les["i"], les["j"], les["k"]]), ras=True)
        out.append({**les, "x_mm": float(xyz[0]), "y_mm": float(xyz[1]), "z_mm": float(xyz[2])})
    return out
