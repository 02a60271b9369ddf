"""``gdsynth label``: annotate the enhancing lesions of a Gd cohort from its real post-Gd T1w.

For every exam with a real post-Gd T1w: prepare it with the post-Gd (registered to the T1w,
NAWM-normalized; an entry of a ``gdsynth-prep`` cache prepared with the post-Gd is read back
instead), run the difference module (:func:`gdsynth.detection.detect_real_post`) on the real
post − pre, and write, on the input T1w grid and under the same derivative names as ``predict``
(:mod:`gdsynth.inference.outputs`): the enhancing-lesion label map (``_desc-enhancing_dseg``, its
JSON sidecar and ``.tsv`` lookup), its lesion table (``_desc-enhancing_lesions.tsv``) and an exam
summary (``_desc-activity_summary.json``, written last).

The summary is an annotation, not a prediction: ``probability_active`` is 1.0 when at least one
enhancing lesion is labelled and 0.0 otherwise, ``refer_for_gadolinium`` is false (the exam had its
injection), ``source`` says where the labels come from. Quality flags (an unusable brain mask or
image) make the exam fail rather than write a label map nobody should train on.

``workers`` > 0 prepares upcoming exams in background threads while one is labelled.

Resume: an exam whose summary records the same input SHA-256 (T1w, T2w, FLAIR, post-Gd) and
detection parameters is skipped; ``overwrite`` redoes it. Exams without a post-Gd are skipped
with a reason; one that fails (missing or corrupt file) is reported and the others go on.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from gdsynth import __version__
from gdsynth.batch import CaseResult, Skipped, iter_batch, precheck
from gdsynth.detection import DetectionParams, detect_real_post, real_post_params
from gdsynth.errors import GdsynthError, ImageReadError, MissingSequenceError
from gdsynth.inference import outputs as O
from gdsynth.inference.cohort import (
    check_inputs_outside,
    check_output_location,
    shard_exams,
    summary_path,
    write_run_summary,
)
from gdsynth.io import write_json, write_labels, write_tsv
from gdsynth.io.bids import Exam, write_dataset_description
from gdsynth.io.sequences import REFERENCE, Role, input_names, names

log = logging.getLogger(__name__)

#: ``source`` recorded in every summary written by ``gdsynth label``.
SOURCE = "real post-Gd T1w (difference module)"


@dataclass
class LabelConfig:
    """One ``gdsynth label`` run. ``prep_root``: a preparation cache (``gdsynth-prep`` layout) to
    read, and to write when ``write_prep``; ``spacing`` as ``gdsynth prepare --spacing``."""

    out: Path
    params: DetectionParams = field(default_factory=real_post_params)
    prep_root: Path | None = None
    write_prep: bool = False
    spacing: float | None = None
    overwrite: bool = False
    shard: tuple[int, int] | None = None
    workers: int = 0  # threads preparing upcoming exams while one is labelled


def _prep_config(exam: Exam, spacing: float | None):  # -> PrepConfig
    from gdsynth.preprocess import PrepConfig

    sequences = tuple(s for s in input_names() if s == REFERENCE or exam.path(s) is not None)
    return PrepConfig(spacing=spacing, sequences=sequences, use_post=True)


def run_key(exam: Exam, config: LabelConfig) -> dict[str, Any]:
    """What an exam's labels depend on: input hashes (post-Gd included) and parameters."""
    if exam.t1w_gd is None:
        raise MissingSequenceError(exam.t1w or exam.id, f"exam {exam.id} has no post-Gd T1w")
    exam.require(("T1w",))
    hashes = O.input_hashes(exam, names(Role.INPUT, Role.TARGET))
    return {"source": SOURCE, "input_sha256": hashes,
            "settings": {"spacing_mm": config.spacing, "detection": config.params.to_dict()}}


def prepare_with_post(exam: Exam, config: LabelConfig):  # -> PreparedVolumes
    """The exam prepared with its post-Gd: read from ``config.prep_root`` when a valid entry
    exists there, else computed (and written there when ``config.write_prep``)."""
    from gdsynth import preprocess
    from gdsynth.preprocess.provenance import cache_key, input_records

    prep_config = _prep_config(exam, config.spacing)
    hashes = input_records(exam, prep_config)
    if config.prep_root is not None:
        found = preprocess.find_prepared(exam, config.prep_root, prep_config, hashes=hashes)
        if found.prepared is not None:
            try:
                vols = preprocess.load_prepared(found.prepared)
            except GdsynthError as exc:
                log.warning("%s: cached preparation unreadable (%s): preparing again",
                            exam.prefix, exc)
            else:
                if "T1w_gd" in vols.images:
                    log.info("%s: preparation reused from %s", exam.prefix, config.prep_root)
                    return vols
    vols = preprocess.prepare_arrays(exam, prep_config, hashes=hashes)
    if config.prep_root is not None and config.write_prep:
        try:
            preprocess.write_prepared(exam, config.prep_root, vols, cache_key(hashes, prep_config))
        except (OSError, GdsynthError) as exc:
            log.warning("%s: preparation not cached (%s); going on", exam.prefix, exc)
    return vols


def label_exam(exam: Exam, config: LabelConfig, key: dict[str, Any], vols=None) -> list[Path]:
    """Prepare (unless ``vols``, from :func:`prepare_with_post`, is given), detect and write one
    exam (summary last); returns the written paths."""
    from gdsynth.inference.pipeline import lesion_rows
    from gdsynth.inference.prep import from_volumes
    from gdsynth.preprocess import move_to_grid

    if vols is None:
        vols = prepare_with_post(exam, config)
    if "T1w_gd" not in vols.images:
        raise MissingSequenceError(exam.t1w_gd, "the post-Gd T1w was not prepared")
    img = vols.images
    result = detect_real_post(img["T1w"], img["T1w_gd"], brain_mask=vols.mask,
                              spacing=vols.geometry.spacing, params=config.params,
                              flair=img.get("FLAIR"), t2w=img.get("T2w"))
    flags = result.summary.get("quality_flags") or []
    if flags:
        raise ImageReadError(exam.t1w_gd, "not labelled, image quality: " + "; ".join(flags))
    prep = from_volumes(exam, vols)
    labels = move_to_grid(result.labels.astype(np.int32), vols.geometry, vols.native_geometry,
                          interpolation="nearest").astype(np.int32)
    n = len(result.lesions)
    volume = float(sum(les["volume_mm3"] for les in result.lesions))
    summary = {
        "exam": exam.id,
        "probability_active": 1.0 if n else 0.0,
        "n_lesions": n,
        "refer_for_gadolinium": False,
        "reason": (f"annotation of the real post-Gd: {n} enhancing lesion(s), {volume:.0f} mm3"
                   if n else "annotation of the real post-Gd: no enhancing lesion"),
        "total_volume_mm3": volume,
        "detection": {k: v for k, v in result.summary.items()
                      if k not in ("probability_active", "n_lesions", "refer_for_gadolinium",
                                   "reason")},
        "gdsynth_version": __version__,
        **key,
    }
    rows = lesion_rows(result.lesions, prep)
    out = config.out
    labels_path = write_labels(O.LESION_LABELS.path(out, exam), labels, vols.native_geometry)
    sources = [p for s in names(Role.INPUT, Role.TARGET) if (p := exam.path(s)) is not None]
    return [
        labels_path,
        O.write_output_sidecar(out, exam, labels_path, "Enhancing lesions annotated from the real "
                        "post-Gd T1w (difference module): instance labels 1..N (rows of the "
                        "lesion table), 0 elsewhere", sources=sources),
        write_tsv(O.LESION_LOOKUP.path(out, exam), O.lesion_lookup(rows), ("index", "name")),
        write_tsv(O.LESION_TABLE.path(out, exam), rows, O.LESION_COLUMNS),
        write_json(O.SUMMARY.path(out, exam), summary),
    ]


def label_cohort(exams: Sequence[Exam], config: LabelConfig, *,
                 bids_root: Path | None = None) -> list[CaseResult]:
    """Label this shard's exams; one :class:`CaseResult` per exam (``skipped`` with a reason for
    an exam without post-Gd or already complete). ``OUT/run_summary.tsv`` lists them all."""
    check_output_location(config.out, bids_root)
    if bids_root is None or Path(bids_root).is_file():
        check_inputs_outside(config.out, exams)
    if config.prep_root is not None and config.write_prep:
        check_output_location(config.prep_root, bids_root)
    write_dataset_description(config.out, "gdsynth",
                              description="enhancing lesions annotated from the real post-Gd T1w")
    table = summary_path(config.out, config.shard)
    mine = shard_exams(exams, config.shard)

    def check(exam: Exam) -> dict[str, Any] | Skipped:
        if exam.t1w_gd is None:
            return Skipped(reason="no post-Gd T1w")
        key = run_key(exam, config)
        if not config.overwrite and O.is_complete(O.SUMMARY.path(config.out, exam), key):
            return Skipped()
        return key

    todo, decided = precheck(mine, check, case=lambda e: e.id)
    results: list[CaseResult] = []
    for result in iter_batch(
            mine, lambda exam, vols: label_exam(exam, config, todo[exam.id], vols),
            case=lambda e: e.id, description="gdsynth label", decided=decided,
            ahead=lambda exam: prepare_with_post(exam, config), ahead_workers=config.workers):
        results.append(result)
        write_run_summary(table, results)
    return results
