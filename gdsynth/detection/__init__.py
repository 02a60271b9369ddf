"""Enhancing-lesion detection from a synthetic enhancement map: pure functions on (X, Y, Z) arrays.

``detect_lesions`` (candidates → suppression → score → labels), ``summarize_patient`` (exam-level
probability and refer decision), ``fit_calibration`` (fit score, Platt scaling and operating point
on validation cases). Parameters travel in :class:`DetectionParams` (model card ``detection``).
See docs/detection.md.
"""

from __future__ import annotations

import importlib
from typing import Any

# imported lazily, so that the light modules (``detectors``: the Enum the CLI lists) stay light
_EXPORTS = {
    "DETECTORS": "gdsynth.detection.detectors",
    "DetectionParams": "gdsynth.detection.params",
    "DetectionResult": "gdsynth.detection.detect",
    "Detector": "gdsynth.detection.detectors",
    "add_world_coordinates": "gdsynth.detection.detect",
    "detect_lesions": "gdsynth.detection.detect",
    "detect_real_post": "gdsynth.detection.real_post",
    "fit_calibration": "gdsynth.detection.calibration",
    "parse_detector": "gdsynth.detection.detectors",
    "quality_flags": "gdsynth.detection.patient",
    "real_post_params": "gdsynth.detection.real_post",
    "score_lesions": "gdsynth.detection.detect",
    "summarize_patient": "gdsynth.detection.patient",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gdsynth.detection' has no attribute {name!r}")
