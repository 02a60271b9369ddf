"""Calibrate a model's hand-set detector on validation predictions: the file side of
:func:`gdsynth.detection.fit_calibration`.

:func:`load_cases` reads one calibration case per validation exam (the exam prepared as inference
prepares it, the maps ``gdsynth predict``/``synthesize`` wrote, the reference enhancing lesions,
all on the prepared grid); :func:`starting_params` is where the fit starts (the card's
``detection`` section with overrides); :func:`calibrate_cases` fits it; :func:`update_card`
writes the fitted parameters into the model card (atomic rewrite). Used by
``experiments/calibrate_detection.py`` and ``experiments/phantom_results.py``.

A model whose folder holds a learned lesion stage (``gdsynth fit-detector``,
:mod:`gdsynth.inference.fit_stage`) uses that stage at inference instead (docs/detection.md).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gdsynth.detection.calibration import fit_calibration
from gdsynth.detection.params import DetectionParams
from gdsynth.inference.prep import Prepare
from gdsynth.models.card import CARD_NAME, ModelCard

log = logging.getLogger(__name__)

#: Hysteresis (high, low) pairs tried when tuning (normalized enhancement units).
TUNE_GRID = [(h, lo) for h in (0.15, 0.25, 0.35) for lo in (0.08, 0.12) if lo < h]


def load_cases(bids_root: Path, pred_dir: Path, truth_dir: Path, card: ModelCard,
               participants: Sequence[str] | None = None, *, prepare: Prepare | None = None,
               ) -> list[dict[str, Any]]:
    """One :func:`~gdsynth.detection.fit_calibration` case per exam of ``bids_root`` with both
    an enhancement map in ``pred_dir`` and a reference ``_desc-enhancing_dseg`` in ``truth_dir``
    (the others are skipped with a warning); arrays on the prepared grid.

    ``prepare(exam, card)`` builds each exam's prepared arrays (default:
    :func:`gdsynth.inference.prep.prepare_exam`, the preparation inference used; a
    :class:`gdsynth.inference.prep.PrepCache` reads them from a preparation cache instead).
    """
    from gdsynth.inference import outputs as O
    from gdsynth.inference.fit_stage import exam_truth
    from gdsynth.inference.pipeline import read_synthesis
    from gdsynth.io.bids import discover, find_derivative

    if prepare is None:
        from gdsynth.inference.prep import prepare_exam as prepare
    cases = []
    for exam in discover(bids_root, list(participants) if participants is not None else None):
        truth_path = find_derivative(truth_dir, exam, "dseg", desc="enhancing")
        enh_path = O.ENHANCEMENT.find(pred_dir, exam)
        if not enh_path.exists() or not truth_path.exists():
            log.warning("skip %s: missing %s", exam.id,
                        enh_path if not enh_path.exists() else truth_path)
            continue
        prep = prepare(exam, card)
        synth = read_synthesis(pred_dir, exam, prep, card)
        truth, _ = exam_truth(exam, prep, card, truth_dir)
        cases.append({
            "id": exam.id,
            "enhancement": synth.enhancement,
            "brain_mask": prep.brain_mask,
            "spacing": prep.geometry.spacing,
            "t1w": prep.volumes.get("T1w"),
            "t2w": prep.volumes.get("T2w"),
            "flair": prep.volumes.get("FLAIR"),
            "uncertainty": synth.uncertainty,
            "heads": synth.heads,
            "truth": truth,
        })
    return cases


def starting_params(card: ModelCard, detector: str | None = None,
                    target_sensitivity: float | None = None) -> DetectionParams:
    """The card's detection parameters (defaults when it has none), with the ``detector`` and
    ``target_sensitivity`` overrides that are given: where calibration starts from."""
    params = DetectionParams.from_dict(dict(card.detection)) if card.detection else DetectionParams()
    changes: dict[str, Any] = {}
    if detector:
        changes["detector"] = detector
    if target_sensitivity is not None:
        changes["target_sensitivity"] = target_sensitivity
    return params.replace(**changes) if changes else params


def calibrate_cases(cases: Sequence[dict[str, Any]], params: DetectionParams, *,
                    tune: bool = False) -> DetectionParams:
    """:func:`~gdsynth.detection.fit_calibration` of ``cases`` from ``params`` (hysteresis tuned
    over :data:`TUNE_GRID` when ``tune``); ``calibration_info["exams"]`` lists the cases' ids."""
    fitted = fit_calibration(cases, params, tune_grid=TUNE_GRID if tune else None)
    fitted.calibration_info["exams"] = [c["id"] for c in cases]
    return fitted


def update_card(model_dir: Path, params: DetectionParams) -> Path:
    """Write ``params`` into the card's ``detection`` section (atomic rewrite of the JSON)."""
    path = Path(model_dir) / CARD_NAME
    card = ModelCard.load(path)
    card.detection = params.to_dict()
    return card.save(path)
