"""One exam, arrays in memory: every metric gdsynth reports, from arrays already on one grid.

:func:`evaluate_arrays` is what experiments call directly; :mod:`gdsynth.evaluation.files`
reads an exam's files into these arrays. All arrays are (X, Y, Z) on the same grid, ``spacing``
in mm; images in normalized intensity units (NAWM = 1.0).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from gdsynth.evaluation.synthesis import DATA_RANGE, synthesis_metrics
from gdsynth.metrics.lesions import DetectionCriteria, LesionMatch, match_lesions


@dataclass
class ExamResult:
    """Metrics of one exam. ``status`` is ``"ok"`` or why the exam could not be scored
    (``missing_prediction``, ``missing_reference``, ``error``); ``notes`` say what was skipped."""

    exam: str
    status: str = "ok"
    match: LesionMatch | None = None
    voxels: dict[str, int] = field(default_factory=dict)  # reference, predicted, overlap
    synthesis: dict[str, float] | None = None
    probability_active: float | None = None
    refer: bool | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.status == "ok" and self.match is not None

    @property
    def active(self) -> bool | None:
        """Truth at patient level: at least one reference enhancing lesion."""
        return None if self.match is None else self.match.n_reference > 0

    def row(self) -> dict:
        """One flat row for ``per_exam.tsv``."""
        row: dict = {"exam": self.exam, "status": self.status}
        if self.match is not None:
            m = self.match
            sens = m.n_detected / m.n_reference if m.n_reference else None
            ppv = m.n_true_positive / m.n_predicted if m.n_predicted else None
            f1 = (2 * sens * ppv / (sens + ppv)) if sens is not None and ppv and sens + ppv > 0 \
                else (0.0 if sens is not None and ppv is not None else None)
            row.update({
                "active": self.active, "n_reference": m.n_reference, "n_detected": m.n_detected,
                "n_predicted": m.n_predicted, "n_true_positive": m.n_true_positive,
                "n_false_positive": m.n_false_positive, "lesion_sensitivity": sens,
                "lesion_ppv": ppv, "lesion_f1": f1, "voxel_dice": m.voxel_dice,
            })
        row["probability_active"] = self.probability_active
        row["refer_for_gadolinium"] = self.refer
        for k, v in (self.synthesis or {}).items():
            row[k] = v
        row["notes"] = "; ".join(self.notes) if self.notes else None
        return row


def evaluate_arrays(
    reference_lesions: np.ndarray,
    predicted_lesions: np.ndarray,
    spacing: tuple[float, ...],
    *,
    exam: str = "exam",
    scores: dict[int, float] | None = None,
    synthetic: np.ndarray | None = None,
    real_post: np.ndarray | None = None,
    brain: np.ndarray | None = None,
    all_lesions: np.ndarray | None = None,
    probability_active: float | None = None,
    refer: bool | None = None,
    criteria: DetectionCriteria = DetectionCriteria(),
    data_range: float = DATA_RANGE,
) -> ExamResult:
    """Score one exam.

    ``reference_lesions``/``predicted_lesions``: enhancing-lesion label maps (0 background;
    instances or a binary mask). ``scores``: predicted label → lesion score. Synthesis metrics
    are computed when ``synthetic``, ``real_post`` (both normalized) and ``brain`` are given:
    in the brain, in the enhancing reference lesions (``enhancing``) and, when ``all_lesions``
    is given, in all lesions (``lesions``). ``probability_active``/``refer`` come from the
    prediction's activity summary.
    """
    ref = np.asarray(reference_lesions)
    pred = np.asarray(predicted_lesions)
    match = match_lesions(ref, pred, spacing, scores=scores, criteria=criteria)
    a, b = ref > 0, pred > 0
    result = ExamResult(
        exam=exam,
        match=match,
        voxels={"reference": int(a.sum()), "predicted": int(b.sum()),
                "overlap": int(np.logical_and(a, b).sum())},
        probability_active=None if probability_active is None else float(probability_active),
        refer=None if refer is None else bool(refer),
    )
    if synthetic is not None and real_post is not None and brain is not None:
        regions = {"enhancing": a}
        if all_lesions is not None:
            regions["lesions"] = np.asarray(all_lesions) > 0
        result.synthesis = synthesis_metrics(synthetic, real_post, brain, regions, data_range)
    elif any(v is not None for v in (synthetic, real_post, brain)):
        missing = [n for n, v in (("synthetic", synthetic), ("real post-Gd", real_post),
                                  ("brain mask", brain)) if v is None]
        result.notes.append(f"no synthesis metrics (missing: {', '.join(missing)})")
    return result
