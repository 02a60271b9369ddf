"""Patient (exam) level: probability that the exam has an active lesion, and the refer decision.

* ``p_any = 1 − Π_i (1 − score_i)`` over the detected lesions (0 without lesions);
* ``probability_active = sigmoid(platt_a · logit(p_any) + platt_b)`` (Platt scaling fitted on
  validation exams; logit clips p to [1e-4, 1 − 1e-4]);
* ``refer_for_gadolinium`` = ``probability_active ≥ refer_threshold``: the tool is not confident
  enough that the exam is inactive, so contrast should be given. The threshold is chosen on
  validation to keep patient-level sensitivity ≥ ``target_sensitivity`` (see calibration).
* Quality: when the input does not look like a usable brain (:func:`quality_flags`) the exam is
  always referred with reason ``"quality: ..."`` — never "no active lesion" on a bad image.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gdsynth.detection.params import DetectionParams
from gdsynth.detection.scoring import logit, sigmoid


def quality_flags(
    brain: np.ndarray,
    spacing: Sequence[float],
    params: DetectionParams,
    *,
    enhancement: np.ndarray | None = None,
    t1w: np.ndarray | None = None,
    flair: np.ndarray | None = None,
    t2w: np.ndarray | None = None,
) -> list[str]:
    """Reasons the exam is not a usable brain (empty list when it looks fine).

    Checks: empty brain mask; brain volume outside [``min_brain_ml``, ``max_brain_ml``] mL;
    non-finite enhancement inside the brain; no white matter (fewer than ``min_wm_fraction`` of
    brain voxels with T1w — or FLAIR when T1w is absent — within 0.8–1.2 of the NAWM level);
    no brain contrast: in a brain, T1w and T2w are anti-correlated (CSF dark on T1w and bright on
    T2w, white matter the reverse, lesions T1-dark and T2-bright), so a Pearson correlation inside
    the mask above ``max_t1w_t2w_correlation`` means the images are not brain MRI (a blob, noise)
    or a sequence was mixed up.
    """
    brain = brain.astype(bool)
    n = int(brain.sum())
    if n == 0:
        return ["empty brain mask"]
    flags = []
    volume_ml = n * float(np.prod(spacing)) / 1000.0
    if volume_ml < params.min_brain_ml:
        flags.append(f"brain volume {volume_ml:.0f} mL below {params.min_brain_ml:.0f} mL")
    if volume_ml > params.max_brain_ml:
        flags.append(f"brain volume {volume_ml:.0f} mL above {params.max_brain_ml:.0f} mL")
    if enhancement is not None and not np.all(np.isfinite(enhancement[brain])):
        flags.append("non-finite values in the enhancement map")
    ref = t1w if t1w is not None else flair
    if ref is not None:
        v = ref[brain]
        wm_fraction = float(np.mean((v > 0.8) & (v < 1.2)))
        if wm_fraction < params.min_wm_fraction:
            flags.append(f"no white matter found (NAWM-like fraction {wm_fraction:.3f})")
    if t1w is not None and t2w is not None and n > 1:
        a, b = t1w[brain].astype(np.float64), t2w[brain].astype(np.float64)
        if a.std() > 0 and b.std() > 0 and np.all(np.isfinite(a)) and np.all(np.isfinite(b)):
            r = float(np.corrcoef(a, b)[0, 1])
            if r > params.max_t1w_t2w_correlation:
                flags.append(f"no brain contrast: T1w and T2w correlation {r:+.2f} in the brain "
                             f"(a brain is below {params.max_t1w_t2w_correlation:+.2f}); not "
                             "brain MRI, or sequences mixed up")
    return flags


def add_quality_flags(summary: dict[str, Any], lesions: Sequence[dict[str, Any]],
                      params: DetectionParams, flags: Sequence[str]) -> dict[str, Any]:
    """``summary`` decided again with extra quality ``flags`` (e.g. the out-of-domain flag of
    :func:`gdsynth.preprocess.domain.domain_flags`): any flag forces a referral."""
    if not flags:
        return summary
    quality = [*summary.get("quality_flags", []), *flags]
    return {**summary, **summarize_patient(lesions, params, quality=quality)}


def probability_any(scores: Sequence[float]) -> float:
    """1 − Π(1 − s_i): probability that at least one lesion is real (independent scores)."""
    s = np.clip(np.asarray(list(scores), dtype=float), 0.0, 1.0)
    return float(1.0 - np.prod(1.0 - s)) if s.size else 0.0


def calibrated_probability(p_any: float | np.ndarray, params: DetectionParams) -> np.ndarray:
    """Platt-scaled ``probability_active`` from ``p_any`` (scalar or array)."""
    return sigmoid(params.platt_a * logit(p_any) + params.platt_b)


def summarize_patient(
    lesions: Sequence[dict[str, Any]],
    params: DetectionParams,
    *,
    quality: Sequence[str] = (),
) -> dict[str, Any]:
    """Exam-level summary: ``probability_active``, ``n_lesions``, ``refer_for_gadolinium``, ``reason``.

    ``lesions`` are the dicts of :func:`gdsynth.detection.detect_lesions` (each with ``score``);
    ``quality`` are :func:`quality_flags` (any flag forces a referral).
    """
    scores = [float(les["score"]) for les in lesions]
    p_any = probability_any(scores)
    prob = float(calibrated_probability(p_any, params))
    refer = prob >= params.refer_threshold
    if quality:
        refer = True
        reason = "quality: " + "; ".join(quality)
    elif refer and scores:
        reason = (
            f"{len(scores)} candidate enhancing lesion(s), top score {max(scores):.2f}; "
            f"probability_active {prob:.2f} ≥ threshold {params.refer_threshold:.2f}"
        )
    elif refer:
        reason = (
            f"no lesion detected but probability_active {prob:.2f} ≥ threshold "
            f"{params.refer_threshold:.2f}"
        )
    else:
        reason = (
            f"no active lesion expected: probability_active {prob:.3f} < threshold "
            f"{params.refer_threshold:.2f} ({len(scores)} low-score candidate(s))"
        )
    return {
        "probability_active": prob,
        "p_any_lesion": p_any,
        "n_lesions": len(scores),
        "refer_for_gadolinium": bool(refer),
        "operating_threshold": params.refer_threshold,
        "target_sensitivity": params.target_sensitivity,
        "reason": reason,
        "quality_flags": list(quality),
    }
