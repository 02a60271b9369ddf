"""The difference module on a real post-Gd: registered real post − pre → enhancing lesions.

Used where no annotation exists: ``gdsynth label`` (annotate a Gd cohort) and ``gdsynth train``
(enhancing labels derived from the real post-Gd). Inputs are the prepared, NAWM-normalized pre- and
post-contrast T1w (same grid, registered), so the difference is in the units of the synthetic
enhancement map and goes through the same :func:`gdsynth.detection.detect_lesions` (``difference``
detector) with :func:`real_post_params`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from gdsynth.detection.detect import DetectionResult, detect_lesions
from gdsynth.detection.params import DetectionParams, Detector

#: Parameters of the difference module on a real post − pre that differ from the defaults (set on
#: phantom sites A+B, 16 exams at 2 mm; see docs/detection.md). A real post − pre is noisy (voxel
#: SD ≈ 0.07 NAWM units) and weakly active lesions enhance by 0.1–0.3, as much as normal grey
#: matter (≈ 0.1): seeds at 3 noise SD (not 4) and regions grown to 2 SD find them, and the grey
#: matter's noise peaks that this lets through are removed by the ``not-brighter-than-tissue``
#: rule (FLAIR vs the exam's brightest normal tissue), waived for strong enhancement away from
#: the ventricles; ``surface`` only removes candidates lying along the surface; each region is
#: trimmed against its peak within 4 mm, so a lesion joined to a stronger neighbour survives.
REAL_POST_DEFAULTS: dict[str, Any] = {
    "high": 0.12,
    "low": 0.06,
    "high_sigmas": 3.0,
    "low_sigmas": 2.0,
    "min_tissue_ratio": 1.07,
    "tissue_waiver_enhancement": 0.45,
    "surface_fraction_min": 0.3,
    "peak_radius_mm": 4.0,
}


def real_post_params(**overrides: Any) -> DetectionParams:
    """:class:`DetectionParams` of the difference module on a real post − pre (``difference``
    detector, :data:`REAL_POST_DEFAULTS`), with ``overrides``."""
    data = {**REAL_POST_DEFAULTS, **overrides, "detector": Detector.difference.value}
    return DetectionParams().replace(**data)


def detect_real_post(
    pre: np.ndarray,
    post: np.ndarray,
    *,
    brain_mask: np.ndarray,
    spacing: Sequence[float],
    params: DetectionParams | None = None,
    flair: np.ndarray | None = None,
    t2w: np.ndarray | None = None,
) -> DetectionResult:
    """Enhancing lesions of a registered real post-Gd: :func:`detect_lesions` on ``post − pre``
    (normalized T1w, NAWM = 1) with ``params`` (default :func:`real_post_params`)."""
    params = params or real_post_params()
    if params.detector != Detector.difference.value:
        params = params.replace(detector=Detector.difference.value)
    enhancement = np.asarray(post, np.float32) - np.asarray(pre, np.float32)
    return detect_lesions(enhancement, brain_mask=brain_mask, spacing=spacing, params=params,
                          flair=flair, t1w=pre, t2w=t2w)
