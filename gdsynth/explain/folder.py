"""``gdsynth explain``: attribution for every exam of a prediction folder.

For each exam of ``bids`` with a lesion table in ``pred`` (``_desc-enhancing_lesions.tsv`` and
``_desc-enhancing_dseg`` from ``gdsynth predict``), the exam is prepared for the model, the
lesion labels are moved onto the prepared grid, and every lesion is explained
(:func:`gdsynth.explain.exam.explain_volume`). Written to ``out`` (default: ``pred``): the lesion
table with the attribution columns appended, ``_desc-attribution<Seq>_T1w.nii.gz`` per sequence,
and ``out/sequence_importance.tsv`` (:func:`gdsynth.explain.importance.sequence_importance`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gdsynth.batch import DONE, CaseResult, iter_batch
from gdsynth.explain.attribution import Method
from gdsynth.explain.exam import explain_detection, write_attribution_maps
from gdsynth.explain.importance import IMPORTANCE_COLUMNS, sequence_importance
from gdsynth.inference import outputs as O
from gdsynth.inference.prep import prepare_exam, to_prepared
from gdsynth.io import read_image, read_tsv, write_tsv
from gdsynth.io.bids import Exam

log = logging.getLogger(__name__)
IMPORTANCE_FILE = "sequence_importance.tsv"


def explain_exam(pred: Path, out: Path, exam: Exam, generator, card, prep,
                 methods: Sequence[Method], n_steps: int) -> list[dict[str, Any]]:
    """Explain one exam's predicted lesions; write its table and maps; return the table rows."""
    from gdsynth.errors import OutputError

    table = O.LESION_TABLE.find(pred, exam)
    labels_path = O.LESION_LABELS.find(pred, exam)
    if not table.is_file() or not labels_path.is_file():
        raise OutputError(table, "no lesion table/labels: run 'gdsynth predict' first")
    rows = read_tsv(table)
    native, _ = read_image(labels_path, allow_constant=True)
    labels = np.rint(to_prepared(prep, native, nearest=True)).astype(np.int32)
    ids = [int(float(r["label"])) for r in rows]
    explanation = explain_detection(prep, generator, card, labels, ids, methods=methods,
                                    n_steps=n_steps)
    for row in rows:
        row.update(explanation.columns.get(int(float(row["label"])), {}))
    base = [c for c in (rows[0].keys() if rows else O.LESION_COLUMNS)
            if not c.startswith(O.ATTRIBUTION_PREFIXES)]
    extra = sorted({k for r in rows for k in r if k.startswith(O.ATTRIBUTION_PREFIXES)})
    write_attribution_maps(out, exam, prep, explanation)
    write_tsv(O.LESION_TABLE.path(out, exam), rows, (*base, *extra))
    return [{"exam": exam.id, **r} for r in rows]


def explain_folder(
    pred: Path, exams: Sequence[Exam], model: str | Path, out: Path | None = None, *,
    device: str = "cpu", methods: Sequence[Method | str] = tuple(Method), n_steps: int = 16,
    prepare: Callable[[Exam, Any], Any] | None = None,
) -> tuple[list[CaseResult], list[dict[str, Any]]]:
    """Explain every exam; return per-exam results and the cohort importance rows (also written
    to ``out/sequence_importance.tsv``)."""
    from gdsynth.io.bids import write_dataset_description
    from gdsynth.models.folder import load_model_folder
    from gdsynth.runtime import resolve_device

    out = Path(out or pred)
    methods = [Method(m) for m in methods]
    generator, card = load_model_folder(model, resolve_device(device))
    if out != Path(pred):
        write_dataset_description(out, "gdsynth-explain",
                                  description="per-lesion attribution to the input sequences",
                                  ignore=O.BIDS_IGNORE)

    def explain_one(exam: Exam) -> list[dict[str, Any]]:
        prep = (prepare or prepare_exam)(exam, card)
        return explain_exam(Path(pred), out, exam, generator, card, prep, methods, n_steps)

    results = list(iter_batch(sorted(exams, key=lambda e: e.id), explain_one, case=lambda e: e.id,
                              description="gdsynth explain", progress=False))
    lesions = [row for r in results if r.status == DONE for row in r.value]
    importance = sequence_importance(lesions, card.inputs, methods)
    write_tsv(out / IMPORTANCE_FILE, importance, IMPORTANCE_COLUMNS)
    return results, importance


def collect_patterns(
    pred: Path, exams: Sequence[Exam], model: str | Path, *, bids: Path | None = None,
    device: str = "cpu", ig_steps: int = 0, epsilon: float | None = None,
    alignment: str = "lesion",
) -> tuple[list, list[CaseResult], list[str]]:
    """LRP and aligned relevance patches (:func:`gdsynth.explain.patterns.lesion_pattern`,
    window ``alignment``) of every predicted lesion of every exam; a lesion is *truly active*
    when it overlaps the phantom's enhancing truth (``bids/derivatives/phantom``; unknown
    without it).

    Returns ``(patterns, per-exam results, sequences)``."""
    from gdsynth.errors import OutputError
    from gdsynth.explain.attribution import baseline_volume
    from gdsynth.explain.patterns import lesion_pattern
    from gdsynth.models.folder import load_model_folder
    from gdsynth.phantom.dataset import enhancing_truth_path
    from gdsynth.runtime import resolve_device

    generator, card = load_model_folder(model, resolve_device(device))
    generator.eval()

    def exam_patterns(exam: Exam) -> list:
        table = O.LESION_TABLE.path(pred, exam)
        labels_path = O.LESION_LABELS.path(pred, exam)
        if not table.is_file() or not labels_path.is_file():
            raise OutputError(table, "no lesion table/labels: run 'gdsynth predict' first")
        prep = prepare_exam(exam, card)
        native, _ = read_image(labels_path, allow_constant=True)
        labels = np.rint(to_prepared(prep, native, nearest=True)).astype(np.int32)
        truth = enhancing_truth_path(bids, exam) if bids is not None else None
        active_mask = None
        if truth is not None:
            tnative, _ = read_image(truth, allow_constant=True)
            active_mask = to_prepared(prep, tnative, nearest=True) > 0.5
        volume = prep.stack(card.inputs)
        base = baseline_volume(volume, prep.brain_mask) if ig_steps else None
        spacing = prep.geometry.spacing
        patterns = []
        for row in read_tsv(table):
            label = int(float(row["label"]))
            mask = labels == label
            if not mask.any():
                continue
            active = None if active_mask is None else bool((mask & active_mask).any())
            info = {k: row[k] for k in ("score", "volume_mm3", "mean_enhancement") if k in row}
            pattern, _ = lesion_pattern(
                generator, volume, mask, spacing, sequences=card.inputs, mode=card.mode,
                context=card.context_slices, residual=card.residual, exam=exam.id,
                label=label, active=active, epsilon=epsilon, ig_steps=ig_steps,
                baseline=base, info=info, alignment=alignment)
            patterns.append(pattern)
        return patterns

    results = list(iter_batch(sorted(exams, key=lambda e: e.id), exam_patterns,
                              case=lambda e: e.id, description="gdsynth explain --patterns",
                              progress=False))
    patterns = [p for r in results if r.status == DONE for p in r.value]
    return patterns, results, list(card.inputs)
