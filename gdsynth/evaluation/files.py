"""One exam from files: a prediction folder against a reference BIDS dataset.

Everything is evaluated on the **prediction grid** (the input T1w grid, where ``gdsynth
predict`` writes). Reference maps on another grid are moved there exactly when the two grids hold
the same voxels in another order, else resampled (nearest for labels, linear for images).

Reference lesions (first that applies): ``truth_table`` (TSV/CSV with columns ``subject``,
optional ``session``, and ``truth``: a mask path, relative to the table's folder), ``truth_pattern``
(a path relative to the dataset, with ``{subject}``, ``{session}``, ``{prefix}`` fields and
optional glob characters; exactly one match),
``derive=True`` (see :func:`gdsynth.evaluation.reference.derive_enhancement_reference`, from the
prepared real post and pre T1w), else ``truth_dir`` (default ``derivatives/phantom``):
``_desc-enhancing_dseg`` (``_label-L_desc-enhancing_dseg`` in gdsynth 0.1), with
``_label-L_desc-all_mask``, ``_desc-brain_mask`` and
``_label-WM_probseg`` used when present.

Synthesis normalization (one rule, stated here): metrics compare, in NAWM = 1 units,

* with a preparation folder (``derivatives/gdsynth-prep``, written by ``gdsynth prepare``):
  the real post = the prepared, registered, normalized ``_ce-gadolinium_desc-preproc_T1w``
  on the T1w grid; the synthetic (written in the input T1w scale) × the factor field
  :func:`gdsynth.evaluation.reference.scale_field` (prepared T1w / raw T1w, smoothed), which
  inverts inference's own scaling (NAWM median × bias field);
* without one, only when the user states that the raw post-Gd is already registered to the T1w
  (``assume_registered``, CLI ``--assume-registered``; a shared grid alone proves nothing, the
  head may have moved between the scans) and it holds the T1w grid's voxels: raw pre and raw
  post each divided by its own NAWM median (WM probseg >= 0.5, else the brain, minus dilated
  lesions); the synthetic is divided by the pre T1w's NAWM median;
* otherwise synthesis metrics are skipped and the reason is noted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gdsynth.errors import BidsError, GdsynthError
from gdsynth.evaluation import reference as refmod
from gdsynth.evaluation.exam import ExamResult, evaluate_arrays
from gdsynth.io import Geometry, read_image, read_tsv
from gdsynth.io.bids import Exam, find_derivative
from gdsynth.metrics.lesions import DetectionCriteria

TRUTH_DIR = Path("derivatives") / "phantom"
PREP_DIR = Path("derivatives") / "gdsynth-prep"

#: Prediction outputs by role: (suffix, ext, entities), as ``gdsynth predict`` names them (the
#: names of gdsynth 0.1 are found too, :func:`gdsynth.io.bids.find_derivative`).
PREDICTION_FILES = {
    "synthetic": ("T1w", ".nii.gz", {"ce": "gadolinium", "desc": "synthetic"}),
    "enhancement": ("T1w", ".nii.gz", {"desc": "enhancement"}),
    "labels": ("dseg", ".nii.gz", {"desc": "enhancing"}),
    "table": ("lesions", ".tsv", {"desc": "enhancing"}),
    "summary": ("summary", ".json", {"desc": "activity"}),
}
TRUTH_FILES = {
    "enhancing": ("dseg", {"desc": "enhancing"}),
    "all": ("mask", {"label": "L", "desc": "all"}),
    "brain": ("mask", {"desc": "brain"}),
    "wm": ("probseg", {"label": "WM"}),
}
PREP_FILES = {
    "T1w": ("T1w", {"desc": "preproc"}),
    "post": ("T1w", {"ce": "gadolinium", "desc": "preproc"}),
    "brain": ("mask", {"desc": "brain"}),
}


@dataclass(frozen=True)
class ReferenceSpec:
    """Where the reference of each exam lives (see module docstring)."""

    root: Path
    truth_dir: Path | None = None
    truth_pattern: str | None = None
    truth_table: Path | None = None
    prep_dir: Path | None = None
    derive: bool = False
    assume_registered: bool = False

    @property
    def truth(self) -> Path:
        return Path(self.truth_dir) if self.truth_dir else Path(self.root) / TRUTH_DIR

    @property
    def prep(self) -> Path:
        return Path(self.prep_dir) if self.prep_dir else Path(self.root) / PREP_DIR


def prediction_path(root: Path, exam: Exam, role: str) -> Path:
    suffix, ext, ents = PREDICTION_FILES[role]
    return find_derivative(root, exam, suffix, ext, **ents)


def _maybe(path: Path) -> Path | None:
    return path if path.is_file() else None


def truth_from_pattern(root: Path, pattern: str, exam: Exam) -> Path | None:
    """Fill ``{subject}``, ``{session}``, ``{prefix}`` in ``pattern`` and glob it under ``root``;
    None when nothing matches; :class:`BidsError` when several files match."""
    filled = pattern.format(subject=exam.subject, session=exam.session or "", prefix=exam.prefix)
    base = Path(filled)
    if base.is_absolute():
        matches = sorted(Path(base.anchor).glob(str(base.relative_to(base.anchor))))
    else:
        matches = sorted(Path(root).glob(filled))
    matches = [m for m in matches if m.is_file()]
    if len(matches) > 1:
        raise BidsError(root, f"truth pattern {filled!r} matches {len(matches)} files for {exam.prefix}")
    return matches[0] if matches else None


def read_truth_table(path: str | Path) -> dict[tuple[str, str | None], Path]:
    """(subject, session) → truth mask path from a TSV/CSV table (columns subject, [session],
    truth; ``sub-``/``ses-`` prefixes optional; relative paths from the table's folder)."""
    import csv

    path = Path(path)
    if not path.is_file():
        raise BidsError(path, "truth table not found")
    delim = "," if path.suffix.lower() == ".csv" else "\t"
    with open(path, newline="", encoding="utf-8") as fh:
        rows = [{(k or "").strip().lower(): (v or "").strip() for k, v in r.items()}
                for r in csv.DictReader(fh, delimiter=delim)]
    out: dict[tuple[str, str | None], Path] = {}
    for n, row in enumerate(rows, start=2):
        if not row.get("subject") or not row.get("truth"):
            raise BidsError(path, f"line {n}: needs columns subject and truth")
        key = (row["subject"].removeprefix("sub-"), row.get("session", "").removeprefix("ses-") or None)
        p = Path(row["truth"])
        out[key] = p if p.is_absolute() else path.parent / p
    return out


def _read_on(path: Path | None, target: Geometry, *, nearest: bool) -> np.ndarray | None:
    from gdsynth.preprocess.resample import move_to_grid

    if path is None:
        return None
    array, geometry = read_image(path, allow_constant=True)
    return move_to_grid(array, geometry, target, interpolation="nearest" if nearest else "linear")


def read_scores(path: Path | None) -> dict[int, float]:
    """Lesion label → score from a predicted lesions table (rows without a number are skipped)."""
    if path is None or not path.is_file():
        return {}
    out = {}
    for row in read_tsv(path):
        try:
            out[int(float(row["label"]))] = float(row["score"])
        except (KeyError, TypeError, ValueError):
            continue
    return out


def read_decision(path: Path | None) -> tuple[float | None, bool | None]:
    """``probability_active`` and ``refer_for_gadolinium`` from an activity summary JSON."""
    if path is None or not path.is_file():
        return None, None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as exc:
        raise GdsynthError(path, f"invalid JSON: {exc}") from None
    prob = data.get("probability_active")
    refer = data.get("refer_for_gadolinium")
    return (None if prob is None else float(prob)), (None if refer is None else bool(refer))


def _same_voxels(path: Path, target: Geometry) -> np.ndarray | None:
    from gdsynth.preprocess.orient import apply_index_map, index_map

    array, geometry = read_image(path)
    if geometry.same_grid(target):
        return array
    m = index_map(geometry, target)
    return None if m is None else apply_index_map(array, m, target.shape)


def _synthesis_arrays(exam: Exam, spec: ReferenceSpec, synthetic_path: Path | None,
                      target: Geometry, brain: np.ndarray | None, truth: dict,
                      notes: list[str]) -> tuple[np.ndarray | None, np.ndarray | None]:
    missing = [n for n, v in (("synthetic image", synthetic_path), ("brain mask", brain),
                              ("pre T1w", exam.t1w)) if v is None]
    if missing:
        notes.append(f"no synthesis metrics (missing: {', '.join(missing)})")
        return None, None
    from gdsynth.preprocess.resample import move_to_grid

    synthetic, sgeo = read_image(synthetic_path)
    synthetic = move_to_grid(synthetic, sgeo, target)
    prep = {k: _maybe(find_derivative(spec.prep, exam, s, **e)) for k, (s, e) in PREP_FILES.items()}
    raw_pre = _same_voxels(exam.t1w, target)
    if prep["T1w"] and prep["post"] and raw_pre is not None:
        pre_n = _read_on(prep["T1w"], target, nearest=False)
        post_n = _read_on(prep["post"], target, nearest=False)
        factor = refmod.scale_field(pre_n, raw_pre, brain, target.spacing)
        return synthetic * factor, post_n
    if not spec.assume_registered:
        notes.append("no synthesis metrics: no prepared (registered) real post-Gd; run gdsynth "
                     "prepare, or pass --assume-registered if the raw post is aligned to the T1w")
        return None, None
    raw_post = _same_voxels(exam.t1w_gd, target) if exam.t1w_gd else None
    if raw_pre is None or raw_post is None:
        notes.append("no synthesis metrics: real post-Gd missing or not on the T1w grid")
        return None, None
    nawm = refmod.nawm_from_truth(brain, truth.get("wm"), truth.get("all"))
    pre_med = float(np.median(raw_pre[nawm])) if nawm.any() else 0.0
    if pre_med <= 0:
        notes.append("no synthesis metrics: empty NAWM or non-positive T1w NAWM median")
        return None, None
    notes.append("synthesis normalized by raw NAWM medians (no preparation folder)")
    return synthetic / pre_med, refmod.nawm_normalize(raw_post, nawm)


def evaluate_exam(exam: Exam, prediction_root: str | Path, spec: ReferenceSpec,
                  criteria: DetectionCriteria = DetectionCriteria()) -> ExamResult:
    """Read one exam's prediction and reference and score it; a missing prediction or
    reference gives a result with that status (never an exception)."""
    pred = {k: _maybe(prediction_path(Path(prediction_root), exam, k)) for k in PREDICTION_FILES}
    if pred["labels"] is None:
        return ExamResult(exam.prefix, "missing_prediction",
                          notes=[f"no {prediction_path(Path(prediction_root), exam, 'labels').name}"])
    labels, target = read_image(pred["labels"], allow_constant=True)
    truth_paths = {k: _maybe(find_derivative(spec.truth, exam, s, **e))
                   for k, (s, e) in TRUTH_FILES.items()}
    notes: list[str] = []
    truth = {k: _read_on(p, target, nearest=k != "wm") for k, p in truth_paths.items()}
    prep_brain = _maybe(find_derivative(spec.prep, exam, "mask", desc="brain"))
    brain_arr = truth["brain"]
    if brain_arr is None:
        brain_arr = _read_on(prep_brain or exam.mask, target, nearest=True)
    brain = None if brain_arr is None else brain_arr > 0
    if spec.truth_table:
        found = read_truth_table(spec.truth_table).get((exam.subject, exam.session))
        enhancing = _read_on(found if found and found.is_file() else None, target, nearest=True)
        source = str(found) if found else f"{spec.truth_table} has no row"
    elif spec.truth_pattern:
        found = truth_from_pattern(spec.root, spec.truth_pattern, exam)
        enhancing = _read_on(found, target, nearest=True)
        source = str(found) if found else spec.truth_pattern
    elif spec.derive:
        enhancing, source = _derived(exam, spec, target, brain), "derived from real post-Gd"
    else:
        enhancing, source = truth["enhancing"], str(truth_paths["enhancing"])
    if enhancing is None:
        return ExamResult(exam.prefix, "missing_reference", notes=[f"no reference lesions ({source})"])
    if pred["table"] is None:
        notes.append("no lesion table: every predicted lesion scored 1.0 (FROC has one point)")
    synthetic, real = _synthesis_arrays(exam, spec, pred["synthetic"], target, brain, truth, notes)
    prob, refer = read_decision(pred["summary"])
    result = evaluate_arrays(
        np.rint(enhancing).astype(np.int32), np.rint(labels).astype(np.int32), target.spacing,
        exam=exam.prefix, scores=read_scores(pred["table"]), synthetic=synthetic,
        real_post=real, brain=brain, all_lesions=truth["all"], probability_active=prob,
        refer=refer, criteria=criteria,
    )
    result.notes[:0] = notes
    return result


def _derived(exam: Exam, spec: ReferenceSpec, target: Geometry,
             brain: np.ndarray | None) -> np.ndarray | None:
    prep = {k: _maybe(find_derivative(spec.prep, exam, s, **e)) for k, (s, e) in PREP_FILES.items()}
    if not (prep["T1w"] and prep["post"]):
        return None
    pre = _read_on(prep["T1w"], target, nearest=False)
    post = _read_on(prep["post"], target, nearest=False)
    if brain is None:
        b = _read_on(prep["brain"], target, nearest=True)
        brain = b > 0 if b is not None else pre > 0.1
    return refmod.derive_enhancement_reference(pre, post, brain, target.spacing)
