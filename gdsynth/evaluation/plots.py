"""Report figures (PNG, matplotlib Agg backend): FROC, ROC, reliability diagram, sensitivity by
lesion size. Each function takes the matching part of ``summary.json`` and a path; none shows a
window. A figure whose data are missing is skipped (returns None).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from gdsynth.io import atomic_path


def _figure():
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.0), dpi=120)
    return plt, fig, ax


def _save(plt, fig, path: Path) -> Path:
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path


def _finite(v: Any) -> bool:
    return isinstance(v, int | float) and math.isfinite(v)


def plot_froc(froc: Mapping[str, Any], path: str | Path) -> Path | None:
    """Lesion sensitivity against false positives per scan."""
    pts = [p for p in froc.get("points", []) if _finite(p["sensitivity"]) and _finite(p["fp_per_scan"])]
    if len(pts) < 2:
        return None
    plt, fig, ax = _figure()
    ax.step([p["fp_per_scan"] for p in pts], [p["sensitivity"] for p in pts], where="post")
    ax.set(xlabel="false positives per scan", ylabel="lesion sensitivity", ylim=(0, 1.02),
           title="FROC")
    ax.grid(alpha=0.3)
    return _save(plt, fig, Path(path))


def plot_roc(patient: Mapping[str, Any], path: str | Path) -> Path | None:
    """Patient-level ROC with the AUC and the stored operating point."""
    pts = [p for p in patient.get("roc", []) if _finite(p["fpr"]) and _finite(p["tpr"])]
    if len(pts) < 2:
        return None
    plt, fig, ax = _figure()
    auc = patient.get("auc")
    ax.plot([p["fpr"] for p in pts], [p["tpr"] for p in pts], marker=".",
            label=f"AUC {auc:.3f}" if _finite(auc) else "AUC n/a")
    op = patient.get("operating_point", {})
    sens, spec = op.get("sensitivity", {}).get("value"), op.get("specificity", {}).get("value")
    if _finite(sens) and _finite(spec):
        ax.plot([1 - spec], [sens], "o", color="C3", label="refer_for_gadolinium")
    ax.plot([0, 1], [0, 1], ":", color="grey")
    ax.set(xlabel="1 − specificity", ylabel="sensitivity", title="Exam-level ROC (any active lesion)")
    ax.legend(loc="lower right")
    return _save(plt, fig, Path(path))


def plot_calibration(calibration: Mapping[str, Any], path: str | Path) -> Path | None:
    """Reliability diagram of ``probability_active`` with bin counts and the ECE."""
    bins = [b for b in calibration.get("bins", []) if b["count"]]
    if not bins:
        return None
    plt, fig, ax = _figure()
    ax.plot([0, 1], [0, 1], ":", color="grey", label="perfect calibration")
    ece = calibration.get("ece")
    ax.plot([b["mean_predicted"] for b in bins], [b["observed"] for b in bins], "o-",
            label=f"ECE {ece:.3f}" if _finite(ece) else "ECE n/a")
    for b in bins:
        ax.annotate(str(b["count"]), (b["mean_predicted"], b["observed"]), fontsize=7,
                    textcoords="offset points", xytext=(3, 3))
    ax.set(xlabel="predicted probability_active", ylabel="observed fraction active",
           xlim=(0, 1), ylim=(0, 1.02), title="Calibration (n per bin)")
    ax.legend(loc="upper left")
    return _save(plt, fig, Path(path))


def plot_by_size(lesions: Mapping[str, Any], path: str | Path) -> Path | None:
    """Lesion sensitivity per size class, with the number of reference lesions."""
    by = lesions.get("by_size", {})
    names = [n for n in by if by[n]["n_reference"]]
    if not names:
        return None
    plt, fig, ax = _figure()
    vals = [by[n]["sensitivity"] for n in names]
    bars = ax.bar(names, vals, color="C0")
    for bar, n in zip(bars, names, strict=True):
        ax.annotate(f"{by[n]['n_detected']}/{by[n]['n_reference']}",
                    (bar.get_x() + bar.get_width() / 2, bar.get_height()), ha="center",
                    textcoords="offset points", xytext=(0, 3), fontsize=8)
    ax.set(ylabel="lesion sensitivity", ylim=(0, 1.1), title="Detection by lesion size (mm³)")
    return _save(plt, fig, Path(path))


def write_plots(summary: Mapping[str, Any], out: str | Path) -> dict[str, Path]:
    """All figures of a summary into ``out``; returns those written by name."""
    out = Path(out)
    made = {
        "froc": plot_froc(summary.get("froc", {}), out / "froc.png"),
        "roc": plot_roc(summary.get("patient", {}), out / "roc.png"),
        "calibration": plot_calibration(summary.get("patient", {}).get("calibration", {}),
                                        out / "calibration.png"),
        "by_size": plot_by_size(summary.get("lesions", {}), out / "sensitivity_by_size.png"),
    }
    return {k: v for k, v in made.items() if v is not None}
