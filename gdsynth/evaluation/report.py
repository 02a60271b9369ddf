"""Report files and tables: ``per_exam.tsv``, ``lesions.tsv``, ``predicted_lesions.tsv``,
``summary.json`` and the Markdown comparison table used in the README.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from gdsynth.evaluation.exam import ExamResult
from gdsynth.io import write_json, write_tsv

LESION_COLUMNS = ("exam", "label", "source_label", "n_voxels", "volume_mm3", "size_class",
                  "coverage", "detected", "score")
PREDICTED_COLUMNS = ("exam", "label", "source_label", "n_voxels", "volume_mm3", "size_class",
                     "coverage", "true_positive", "score")


def jsonable(obj: Any) -> Any:
    """Replace NaN and ±inf by None (JSON has neither), recursively; tuples become lists."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, Mapping):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item):  # numpy scalar
        return jsonable(obj.item())
    return obj


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    cols: list[str] = []
    for row in rows:
        cols += [k for k in row if k not in cols]
    if "notes" in cols:  # free text last
        cols.remove("notes")
        cols.append("notes")
    return cols


def write_report_tables(results: Sequence[ExamResult], summary: Mapping[str, Any],
                        out: str | Path) -> dict[str, Path]:
    """Write the tables and ``summary.json`` into ``out``; return their paths by name."""
    out = Path(out)
    rows = [r.row() for r in results]
    lesions = [{"exam": r.exam, **row} for r in results if r.match for row in r.match.reference]
    preds = [{"exam": r.exam, **row} for r in results if r.match for row in r.match.predicted]
    return {
        "per_exam": write_tsv(out / "per_exam.tsv", rows, _columns(rows)),
        "lesions": write_tsv(out / "lesions.tsv", lesions, LESION_COLUMNS),
        "predicted_lesions": write_tsv(out / "predicted_lesions.tsv", preds, PREDICTED_COLUMNS),
        "summary": write_json(out / "summary.json", jsonable(summary)),
    }


def _fmt(value: Any, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "n/a"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def summary_value(summary: Mapping[str, Any], path: str) -> Any:
    """Value at a dotted ``path`` of a nested summary (``"lesions.f1"``), None when absent."""
    node: Any = summary
    for key in path.split("."):
        if not isinstance(node, Mapping) or key not in node:
            return None
        node = node[key]
    return node


#: Columns of :func:`compare_methods`: header → (path in summary.json, digits).
COMPARE_COLUMNS = {
    "exams": ("n_evaluated", 0),
    "SSIM": ("synthesis.ssim.mean", 3),
    "PSNR (dB)": ("synthesis.psnr.mean", 2),
    "MAE": ("synthesis.mae.mean", 3),
    "MAE enh.": ("synthesis.mae_enhancing.mean", 3),
    "lesion sens.": ("lesions.sensitivity", 3),
    "lesion PPV": ("lesions.ppv", 3),
    "lesion F1": ("lesions.f1", 3),
    "FP/scan": ("lesions.fp_per_scan", 2),
    "Dice": ("lesions.dice_pooled", 3),
    "sens. small": ("lesions.by_size.small.sensitivity", 3),
    "FROC CPM": ("froc.cpm", 3),
    "AUC": ("patient.auc", 3),
    "sens.": ("patient.operating_point.sensitivity.value", 3),
    "spec.": ("patient.operating_point.specificity.value", 3),
    "NPV": ("patient.operating_point.npv.value", 3),
    "ECE": ("patient.calibration.ece", 3),
}


def compare_methods(reports: Mapping[str, Mapping[str, Any]],
                    columns: Sequence[str] | None = None) -> str:
    """A Markdown table, one row per method (``{name: summary}``, summaries as in
    ``summary.json``); missing values print ``n/a``."""
    cols = list(columns or COMPARE_COLUMNS)
    unknown = [c for c in cols if c not in COMPARE_COLUMNS]
    if unknown:
        raise ValueError(f"unknown column(s) {unknown}; valid: {', '.join(COMPARE_COLUMNS)}")
    lines = ["| method | " + " | ".join(cols) + " |", "|---|" + "---:|" * len(cols)]
    for name, summary in reports.items():
        cells = [_fmt(summary_value(summary, COMPARE_COLUMNS[c][0]), COMPARE_COLUMNS[c][1]) for c in cols]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _count(prop: Mapping[str, Any]) -> str:
    value = prop.get("value")
    shown = "n/a" if value is None or (isinstance(value, float) and math.isnan(value)) \
        else f"{value:.2f}"
    return f"{shown} ({prop.get('k', 0)}/{prop.get('n', 0)})"


def exam_summary_lines(patient: Mapping[str, Any]) -> list[str]:
    """Exam-level results in plain words, for the CLI: how many exams were truly active, AUC,
    then sensitivity, specificity and NPV at the stored operating point (each exam's
    ``refer_for_gadolinium``), with the missed active exams by id. [] without exams."""
    n = int(patient.get("n_exams") or 0)
    if not n:
        return []
    op = patient.get("operating_point") or {}
    lines = [f"{n} exams, {patient.get('n_active', 0)} truly active; AUC {patient['auc']:.2f} "
             "(ranking by P(active))"]
    if op.get("sensitivity"):
        lines.append(f"at the stored operating point: sensitivity {_count(op['sensitivity'])}, "
                     f"specificity {_count(op['specificity'])}, NPV {_count(op['npv'])}")
    missed = patient.get("missed_active") or []
    lines.append("missed active exams: " + (", ".join(missed) if missed else "none"))
    if patient.get("false_referrals"):
        lines.append("inactive exams referred: " + ", ".join(patient["false_referrals"]))
    if patient.get("n_missing_refer"):
        lines.append(f"{patient['n_missing_refer']} exam(s) record no operating-point decision")
    return lines


def exam_table_lines(results: Sequence[ExamResult]) -> list[str]:
    """One line per scored exam: truth (reference lesions), P(active), the decision and whether it
    is right, so a summary can be checked against the truth it rests on."""
    lines = [f"{'exam':<16} {'truth':<18} {'P(active)':>9}  decision"]
    for r in results:
        if not r.ok or r.match is None:
            continue
        n_ref = r.match.n_reference
        truth = f"active ({n_ref} lesion{'s' if n_ref != 1 else ''})" if n_ref else "inactive"
        p = "n/a" if r.probability_active is None else f"{r.probability_active:.2f}"
        if r.refer is None:
            decision = "n/a"
        else:
            called = "refer (active)" if r.refer else "no referral"
            right = bool(r.refer) == bool(n_ref)
            decision = f"{called}: {'correct' if right else 'MISSED' if n_ref else 'false alarm'}"
        lines.append(f"{r.exam:<16} {truth:<18} {p:>9}  {decision}")
    return lines
