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

The work is :mod:`gdsynth.inference.calibrate` (reading the cases, writing the card) around
:func:`gdsynth.detection.fit_calibration` (pure); this script is its command line.

This calibrates the hand-set detector (the card's ``detection`` section). A model whose folder
holds a learned lesion stage (``gdsynth fit-detector``, or the end of ``gdsynth train``) uses
that stage at inference instead; see docs/detection.md.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from gdsynth.inference.calibrate import calibrate_cases, load_cases, starting_params, update_card
from gdsynth.models.card import CARD_NAME, ModelCard

log = logging.getLogger("calibrate_detection")


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
        fitted = calibrate_cases(cases, params, tune=args.tune)
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
