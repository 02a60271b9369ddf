"""Gather, per exam, what a review shows: raw sequences, prediction derivatives, metrics.

Only exam ids and values written by gdsynth are used (never header text). Exams of the raw
dataset without a synthetic post-Gd in the prediction folder are skipped with a warning.
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

import numpy as np

from gdsynth.errors import BidsError, InputFileMissingError
from gdsynth.io import Geometry, read_image, read_tsv
from gdsynth.io.bids import Exam, discover, find_derivative
from gdsynth.io.sequences import input_names

log = logging.getLogger(__name__)

#: Prediction derivatives: role -> (suffix, ext, entities).
PRED_FILES: dict[str, tuple[str, str, dict[str, str]]] = {
    "synthetic": ("T1w", ".nii.gz", {"ce": "gadolinium", "desc": "synthetic"}),
    "enhancement": ("T1w", ".nii.gz", {"desc": "enhancement"}),
    "uncertainty": ("T1w", ".nii.gz", {"desc": "uncertainty"}),
    "lesions": ("dseg", ".nii.gz", {"desc": "enhancing"}),
    "table": ("lesions", ".tsv", {"desc": "enhancing"}),
    "summary": ("summary", ".json", {"desc": "activity"}),
}

#: Labels of the post-Gd roles shown as greyscale volumes after the pre-contrast inputs.
POST_LABELS = {"synthetic": "Synthetic post-Gd", "real": "Real post-Gd"}


def sequence_labels() -> dict[str, str]:
    """Roles shown as greyscale volumes, in display order, with their labels: the inputs of the
    sequence registry (:mod:`gdsynth.io.sequences`), then the synthetic and real post-Gd."""
    return {**{name: name for name in input_names()}, **POST_LABELS}


@dataclass
class ReviewExam:
    """One exam to review: files by role, lesion rows, activity summary, metric values."""

    exam: Exam
    files: dict[str, Path]
    lesions: list[dict] = field(default_factory=list)
    summary: dict = field(default_factory=dict)
    metrics: dict[str, str] = field(default_factory=dict)

    @property
    def id(self) -> str:
        return self.exam.id


def _float(value: object) -> float | None:
    try:
        out = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return out if math.isfinite(out) else None


#: Names of the lesion centre columns (world RAS mm), in the order tried.
CENTRE_COLUMNS = (("centre_x", "centre_y", "centre_z"), ("x_mm", "y_mm", "z_mm"))


#: Lesion-table columns kept as text (``in_dseg``: "true"/"false", whether the learned stage put
#: the candidate in the label map).
TEXT_COLUMNS = ("location", "in_dseg")


def read_lesions(path: Path | None, geometry: Callable[[], Geometry] | None = None) -> list[dict]:
    """Lesion rows with numeric values and a centre ``centre_x/y/z`` in world RAS mm.

    The centre comes from ``centre_x/y/z`` or ``x_mm/y_mm/z_mm`` (what ``gdsynth predict``
    writes), else from the voxel indices ``i, j, k`` on ``geometry()`` (the T1w grid); rows
    without any are dropped.
    """
    if path is None or not path.exists():
        return []
    rows = []
    for raw in read_tsv(path):
        row = {k: (v if k in TEXT_COLUMNS else _float(v)) for k, v in raw.items()}
        centre = next((tuple(row.get(c) for c in cols) for cols in CENTRE_COLUMNS
                       if None not in (row.get(c) for c in cols)), None)
        if centre is None and geometry is not None and None not in (row.get(c) for c in "ijk"):
            ijk = np.array([row["i"], row["j"], row["k"]], float)
            centre = tuple(float(v) for v in geometry().index_to_world(ijk, ras=True))
        if centre is None:
            continue
        row["centre_x"], row["centre_y"], row["centre_z"] = centre
        rows.append(row)
    return rows


def read_summary(path: Path | None) -> dict:
    if path is None or not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BidsError(path, f"invalid JSON: {exc}") from None
    return data if isinstance(data, dict) else {}


def read_metrics(report: Path | None) -> dict[str, dict[str, str]]:
    """``per_exam.tsv`` rows by exam id (a report folder or the TSV itself); {} when absent."""
    if report is None:
        return {}
    tsv = report / "per_exam.tsv" if report.is_dir() else report
    if not tsv.exists():
        raise InputFileMissingError(tsv, "metrics table per_exam.tsv not found")
    out: dict[str, dict[str, str]] = {}
    for row in read_tsv(tsv):
        key = row.get("exam") or row.get("exam_id") or row.get("participant_id") or ""
        if not key and row.get("subject"):
            sub = row["subject"].removeprefix("sub-")
            ses = (row.get("session") or "").removeprefix("ses-")
            key = f"sub-{sub}" + (f"_ses-{ses}" if ses and ses != "n/a" else "")
        if key:
            out[key] = row
    return out


#: ``gdsynth evaluate`` columns shown first on the cohort page, when present.
PREFERRED_METRICS = ("mae", "psnr", "ssim", "lesion_sensitivity", "lesion_ppv", "lesion_f1",
                     "voxel_dice", "n_false_positive")


def metric_columns(metrics: dict[str, dict[str, str]], limit: int = 8) -> list[str]:
    """Numeric metric columns to show on the cohort page: the usual evaluation metrics first,
    then other numeric columns (ids and values already shown are excluded)."""
    skip = {"exam", "exam_id", "participant_id", "subject", "session", "probability_active"}
    numeric: list[str] = []
    for row in metrics.values():
        for k, v in row.items():
            if k not in skip and k not in numeric and _float(v) is not None:
                numeric.append(k)
    cols = [c for c in PREFERRED_METRICS if c in numeric]
    return (cols + [c for c in numeric if c not in cols])[:limit]


def _geometry_of(path: Path) -> Callable[[], Geometry]:
    """A getter reading ``path``'s geometry once, only if a lesion row needs it."""
    return cache(lambda: read_image(path, allow_constant=True)[1])


def collect(pred: Path, bids: Path, metrics: Path | None = None) -> list[ReviewExam]:
    """Review inputs for every exam of ``bids`` that has a synthetic post-Gd in ``pred``."""
    if not pred.is_dir():
        raise InputFileMissingError(pred, "prediction folder not found")
    table = read_metrics(metrics)
    out = []
    for exam in discover(bids):
        files: dict[str, Path] = {}
        for role in input_names():
            if exam.path(role) is not None:
                files[role] = exam.path(role)  # type: ignore[assignment]
        if exam.t1w_gd is not None:
            files["real"] = exam.t1w_gd
        for role, (suffix, ext, ents) in PRED_FILES.items():
            p = find_derivative(pred, exam, suffix, ext, **ents)
            if p.exists():
                files[role] = p
        if "synthetic" not in files:
            log.warning("%s: no synthetic post-Gd in %s; exam skipped", exam.id, pred)
            continue
        out.append(
            ReviewExam(
                exam=exam,
                files=files,
                lesions=read_lesions(files.get("table"), _geometry_of(files["synthetic"])),
                summary=read_summary(files.get("summary")),
                metrics=table.get(exam.id, {}),
            )
        )
    if not out:
        raise BidsError(pred, f"no exam of {bids} has a synthetic post-Gd image here")
    return out
