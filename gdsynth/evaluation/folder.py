"""A whole prediction folder against a reference dataset: per-exam results, summary, report.

``evaluate_folder`` discovers exams in the reference BIDS dataset, scores each present prediction
(:func:`gdsynth.evaluation.files.evaluate_exam`), and, given ``output``, writes ``per_exam.tsv``,
``lesions.tsv``, ``predicted_lesions.tsv``, ``summary.json`` and the PNG figures there. Exams
without a prediction or reference are listed with their status, never a crash; one exam whose
files are unreadable is recorded as ``error`` with the message.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from gdsynth.errors import GdsynthError, OutputError
from gdsynth.evaluation.aggregate import summarize
from gdsynth.evaluation.exam import ExamResult
from gdsynth.evaluation.files import ReferenceSpec, evaluate_exam
from gdsynth.io.bids import discover
from gdsynth.metrics.lesions import DetectionCriteria

log = logging.getLogger(__name__)


@dataclass
class FolderReport:
    """What :func:`evaluate_folder` returns: per-exam results, the summary, the files written."""

    results: list[ExamResult]
    summary: dict
    files: dict[str, Path] = field(default_factory=dict)


def evaluate_folder(
    prediction_root: str | Path,
    spec: ReferenceSpec,
    output: str | Path | None = None,
    *,
    participant_labels: Sequence[str] | None = None,
    criteria: DetectionCriteria = DetectionCriteria(),
    plots: bool = True,
    progress: bool | None = None,
) -> FolderReport:
    """Score every exam of ``spec.root`` that ``prediction_root`` has predictions for."""
    from gdsynth.progress import track

    pred = Path(prediction_root)
    if output is not None and Path(output).resolve() in (pred.resolve(), Path(spec.root).resolve()):
        raise OutputError(output, "report folder must differ from the prediction and reference folders")
    exams = discover(spec.root, participant_labels)
    results = []
    for exam in track(exams, "evaluating", total=len(exams), enabled=progress):
        try:
            results.append(evaluate_exam(exam, pred, spec, criteria))
        except (GdsynthError, ValueError) as exc:
            log.warning("%s: %s", exam.prefix, exc)
            results.append(ExamResult(exam.prefix, "error", notes=[str(exc)]))
    summary = summarize(results, criteria)
    summary["prediction_root"] = str(pred)
    summary["reference_root"] = str(spec.root)
    report = FolderReport(results, summary)
    if output is not None:
        from gdsynth.evaluation.plots import write_plots
        from gdsynth.evaluation.report import write_report_tables

        report.files.update(write_report_tables(results, summary, output))
        if plots:
            report.files.update(write_plots(summary, output))
    return report
