"""Evaluation of gdsynth outputs, layered like nnU-Net's: pure array metrics
(:mod:`synthesis`, :mod:`lesions`, :mod:`froc`, :mod:`patient`) → one exam in memory
(:func:`evaluate_arrays`) → one exam from files (:func:`evaluate_exam`) → a folder
(:func:`evaluate_folder`) → the ``gdsynth evaluate`` command. See docs/architecture.md.
"""

from gdsynth.evaluation.aggregate import summarize
from gdsynth.evaluation.exam import ExamResult, evaluate_arrays
from gdsynth.evaluation.files import ReferenceSpec, evaluate_exam
from gdsynth.evaluation.folder import FolderReport, evaluate_folder
from gdsynth.evaluation.report import compare_methods
from gdsynth.metrics.lesions import DetectionCriteria, LesionMatch, match_lesions

__all__ = [
    "DetectionCriteria",
    "ExamResult",
    "FolderReport",
    "LesionMatch",
    "ReferenceSpec",
    "compare_methods",
    "evaluate_arrays",
    "evaluate_exam",
    "evaluate_folder",
    "match_lesions",
    "summarize",
]
