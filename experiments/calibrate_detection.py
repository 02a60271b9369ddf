"""Fit the detection calibration on validation predictions and store it in the model card.

Usage::

    python experiments/calibrate_detection.py MODEL VALIDATION_PRED_DIR \
        [--bids ROOT] [--truth DIR] [--participant-label 01 02 ...] [--detector difference] \
        [--target-sensitivity 0.95] [--tune] [--report calibration.json]

* ``MODEL``: exported model folder (``model_card.json`` is updated in place, atomically: its
  ``detection`` section becomes the fitted :class:`gdsynth.detection.DetectionParams`).
* ``VALIDATION_PRED_DIR``: the ``derivatives/gdsynth`` folder that ``gdsynth predict`` wrote for the
  validation exams (enhancement/uncertainty maps and head probabilities on the input T1w grid).
* ``--bids``: the raw BIDS dataset of those exams (default: two levels above the prediction folder
  when it is ``ROOT/derivatives/gdsynth``); exams are prepared again (the prepared space inference
  used) so detection runs on the same grid and normalized pre-contrast images as at inference.
* ``--truth``: folder with the reference ``_desc-enhancing_dseg`` maps (default
  ``ROOT/derivatives/phantom``).

All file I/O lives here; the fitting itself is :func:`gdsynth.detection.fit_calibration` (pure).

This calibrates the hand-set detector (the card's ``detection`` section). A model whose folder
holds a learned lesion stage (``gdsynth fit-detector``, or the end of ``gdsynth train``) uses
that stage at inference instead; see docs/detection.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path
from typing import Any

from gdsynth.detection import DetectionParams, fit_calibration
from gdsynth.models.card import CARD_NAME, ModelCard

log = logging.getLogger("calibrate_detection")

#: Hysteresis (high, low) pairs tried by ``--tune`` (normalized enhancement units).
TUNE_GRID = [(h, lo) for h in (0.15, 0.25, 0.35) for lo in (0.08, 0.12) if lo < h]


def load_cases(
    bids_root: Path, pred_dir: Path, truth_dir: Path, card: ModelCard,
    participants: list[str] | None = None,
) -> list[dict[str, Any]]:
    """One calibration case per exam with predictions: arrays on the prepared grid."""
    from gdsynth.inference import outputs as O
    from gdsynth.inference.pipeline import read_synthesis
    from gdsynth.inference.prep import prepare_exam
    from gdsynth.io import read_image
    from gdsynth.io.bids import discover, find_derivative
    from gdsynth.preprocess import move_to_grid

    cases = []
    for exam in discover(bids_root, participants):
        truth_path = find_derivative(truth_dir, exam, "dseg", desc="enhancing")
        enh_path = O.ENHANCEMENT.find(pred_dir, exam)
        if not enh_path.exists() or not truth_path.exists():
            log.warning("skip %s: missing %s", exam.id,
                        enh_path if not enh_path.exists() else truth_path)
            continue
        prep = prepare_exam(exam, card)
        synth = read_synthesis(pred_dir, exam, prep, card)
        truth, truth_geometry = read_image(truth_path, allow_constant=True)
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
            "truth": move_to_grid(truth, truth_geometry, prep.geometry,
                                  interpolation="nearest").round().astype("int32"),
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


def update_card(model_dir: Path, params: DetectionParams) -> Path:
    """Write ``params`` into the card's ``detection`` section (atomic rewrite of the JSON)."""
    path = Path(model_dir) / CARD_NAME
    card = ModelCard.load(path)
    card.detection = params.to_dict()
    return card.save(path)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", type=Path, help="exported model folder (its card is updated)")
    ap.add_argument("pred_dir", type=Path, help="derivatives/gdsynth of the validation exams")
    ap.add_argument("--bids", type=Path, default=None, help="raw BIDS root of the validation exams")
    ap.add_argument("--truth", type=Path, default=None, help="folder with the reference dseg maps")
    ap.add_argument("--participant-label", nargs="*", default=None)
    ap.add_argument("--detector", default=None, help="difference | segmentation | combined")
    ap.add_argument("--target-sensitivity", type=float, default=None)
    ap.add_argument("--tune", action="store_true", help="tune hysteresis thresholds (lesion F1)")
    ap.add_argument("--report", type=Path, default=None, help="also write calibration_info here")
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from gdsynth.errors import ConfigError, GdsynthError
    from gdsynth.io import write_json

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    try:
        card = ModelCard.load(args.model / CARD_NAME)
        root = args.bids or (args.pred_dir.parent.parent
                             if args.pred_dir.parent.name == "derivatives" else None)
        if root is None:
            raise ConfigError(args.pred_dir, "give --bids: cannot infer the raw dataset root")
        truth_dir = args.truth or root / "derivatives" / "phantom"
        params = starting_params(card, args.detector, args.target_sensitivity)
        cases = load_cases(root, args.pred_dir, truth_dir, card, args.participant_label)
        if not cases:
            raise ConfigError(args.pred_dir, "no validation exam with both predictions and truth")
        fitted = fit_calibration(cases, params, tune_grid=TUNE_GRID if args.tune else None)
        fitted.calibration_info["exams"] = [c["id"] for c in cases]
        update_card(args.model, fitted)
        if args.report:
            write_json(args.report, fitted.calibration_info)
    except GdsynthError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    op = fitted.calibration_info["operating_point"]
    log.info("calibrated on %d exams: refer_threshold %.3f, sensitivity %s, NPV %s, AUC %s",
             len(cases), fitted.refer_threshold, op["sensitivity"], op["npv"], op["auc"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
