"""Lesion-wise detection scoring as in MSSEG 2016 / MSSEG-2: the functions of
:mod:`gdsynth.metrics.lesions` (the rule lives there, below training, detection and evaluation,
which all match lesions by it), importable from here as evaluation's public API."""

from gdsynth.metrics.lesions import (
    SIZE_CLASSES,
    DetectionCriteria,
    LesionMatch,
    components,
    detected_rows,
    dice,
    match_lesions,
    overlap_table,
    size_class,
)

__all__ = ["SIZE_CLASSES", "DetectionCriteria", "LesionMatch", "components", "detected_rows", "dice",
           "match_lesions", "overlap_table", "size_class"]
