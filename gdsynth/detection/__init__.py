"""Enhancing-lesion detection from a synthetic enhancement map: pure functions on (X, Y, Z) arrays.

``detect_lesions`` (candidates → suppression → score → labels), ``summarize_patient`` (exam-level
probability and refer decision), ``fit_calibration`` (fit score, Platt scaling and operating point
on validation cases). Parameters travel in :class:`DetectionParams` (model card ``detection``).
See docs/detection.md.
"""

from gdsynth.detection.calibration import fit_calibration
from gdsynth.detection.detect import (
    DetectionResult,
    add_world_coordinates,
    detect_lesions,
    score_lesions,
)
from gdsynth.detection.params import DetectionParams, Detector, parse_detector
from gdsynth.detection.patient import quality_flags, summarize_patient
from gdsynth.detection.real_post import detect_real_post, real_post_params

__all__ = [
    "DetectionParams",
    "DetectionResult",
    "Detector",
    "add_world_coordinates",
    "detect_lesions",
    "detect_real_post",
    "fit_calibration",
    "parse_detector",
    "quality_flags",
    "real_post_params",
    "score_lesions",
    "summarize_patient",
]
