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
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gdsynth.cli._common import CaseResult
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
    from gdsynth.inference.cohort import error_line
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
    results: list[CaseResult] = []
    lesions: list[dict[str, Any]] = []
    for exam in sorted(exams, key=lambda e: e.id):
        start = time.perf_counter()
        try:
            prep = (prepare or prepare_exam)(exam, card)
            lesions += explain_exam(Path(pred), out, exam, generator, card, prep, methods, n_steps)
            results.append(CaseResult(exam.id, "done", time.perf_counter() - start))
        except Exception as exc:  # noqa: BLE001 - reported per exam, the batch goes on
            log.debug("exam %s failed", exam.id, exc_info=True)
            results.append(CaseResult(exam.id, "failed", time.perf_counter() - start,
                                      error_line(exc)))
    importance = sequence_importance(lesions, card.inputs, methods)
    write_tsv(out / IMPORTANCE_FILE, importance, IMPORTANCE_COLUMNS)
    return results, importance
