"""From a BIDS cohort to prepared training exams: discovery, preparation (cached), phantom truth.

The phantom truth (``derivatives/phantom/..._desc-enhancing_dseg``) is on the native T1w
grid; :class:`gdsynth.data.subjects.AddLesionLabels` resamples it onto the prepared grid by world
coordinates. Without truth, enhancing voxels are derived from the real post − pre.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdsynth.data.subjects import TrainingExam
from gdsynth.errors import GdsynthError, TrainingError

PREP_FOLDER = Path("derivatives") / "gdsynth-prep"
TRUTH_FOLDER = Path("derivatives") / "phantom"


@dataclass
class PrepOutcome:
    case: str
    status: str  # done | skipped (prepared earlier, cache hit) | failed
    seconds: float
    error: str = ""


def truth_path(bids_root: Path, exam) -> Path | None:  # exam: gdsynth.io.bids.Exam
    """The phantom enhancing-lesion label map of ``exam`` when it exists."""
    from gdsynth.io.bids import find_derivative

    p = find_derivative(Path(bids_root) / TRUTH_FOLDER, exam, "dseg", desc="enhancing")
    return p if p.is_file() else None


def prepare_cohort(
    bids_root: str | Path, exams: Sequence, *, prep_root: str | Path | None = None,
    prep_config: dict[str, Any] | None = None, progress: bool = True,
    inputs: Sequence[str] = ("T1w", "T2w", "FLAIR"),
) -> tuple[list[TrainingExam], list[PrepOutcome]]:
    """Prepare every exam (``gdsynth.preprocess.prepare_exam``, cached) and return the training
    exams plus one outcome per exam; a failing exam does not stop the rest.

    Each exam needs the T1w, the ``inputs`` and the post-Gd T1w; only those pre-contrast
    sequences are prepared unless ``prep_config`` names ``sequences`` itself.
    """
    try:
        from gdsynth.preprocess import PrepConfig, prepare_exam
    except ImportError as exc:
        raise TrainingError(None, f"gdsynth.preprocess.prepare_exam is unavailable ({exc})") from None
    from gdsynth.progress import track

    root = Path(bids_root)
    out_root = Path(prep_root) if prep_root else root / PREP_FOLDER
    needed = [s for s in ("T1w", "T2w", "FLAIR") if s == "T1w" or s in inputs]
    config = PrepConfig(**{"sequences": tuple(needed), **(prep_config or {})})
    training: list[TrainingExam] = []
    outcomes: list[PrepOutcome] = []
    for exam in track(exams, "preparing exams", total=len(exams), enabled=None if progress else False):
        start = time.perf_counter()
        try:
            exam.require((*needed, "T1w_gd"))
            prepared = prepare_exam(exam, out_root, config)
            paths = {k: Path(v) for k, v in prepared.paths.items() if v is not None}
            training.append(TrainingExam(id=exam.prefix, paths=paths,
                                         truth=truth_path(root, exam), subject=exam.subject))
            status = "skipped" if getattr(prepared, "cached", False) else "done"
            outcomes.append(PrepOutcome(exam.prefix, status, time.perf_counter() - start))
        except (GdsynthError, OSError, RuntimeError, ValueError) as exc:
            outcomes.append(PrepOutcome(exam.prefix, "failed", time.perf_counter() - start, str(exc)))
    return training, outcomes
