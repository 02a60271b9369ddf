#!/usr/bin/env python
"""Put a fitted lesion stage into the shipped model folder (the generator is left unchanged).

``experiments/detection_stage.py --native-spacing`` fits the stage in a *copy* of a model whose
card spacing it sets to None (so the phantom cohorts' preparation caches are reused). This script
copies that copy's ``lesion_classifier.json`` and the card's ``lesion_stage`` section into
``DEST`` (default: the shipped ``gdsynth/assets/models/phantom``), keeping every other card field
of ``DEST`` (spacing, architecture, training record), and checks that the generator weights of the
two folders are the same file::

    python experiments/ship_lesion_stage.py --fitted WORK/model [--dest gdsynth/assets/models/phantom]
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--fitted", type=Path, required=True, help="model folder with a fitted stage")
    p.add_argument("--dest", type=Path, default=ROOT / "gdsynth" / "assets" / "models" / "phantom")
    args = p.parse_args(argv)

    from gdsynth.detection.stage import STAGE_FILE, load_stage
    from gdsynth.io import atomic_write_bytes, file_sha256
    from gdsynth.models.card import CARD_NAME, WEIGHTS_NAME, ModelCard

    fitted = ModelCard.load(args.fitted / CARD_NAME)
    if not fitted.lesion_stage or fitted.lesion_stage.get("status") == "not fitted":
        print(f"{args.fitted}: no fitted lesion stage in its card", file=sys.stderr)
        return 1
    if file_sha256(args.fitted / WEIGHTS_NAME) != file_sha256(args.dest / WEIGHTS_NAME):
        print(f"{args.fitted}: the stage was fitted on another generator than {args.dest}'s",
              file=sys.stderr)
        return 1
    load_stage(args.fitted, fitted.lesion_stage)  # valid, and the file matches the card
    card = ModelCard.load(args.dest / CARD_NAME)
    card.lesion_stage = fitted.lesion_stage
    atomic_write_bytes(args.dest / STAGE_FILE, (args.fitted / STAGE_FILE).read_bytes())
    card.save(args.dest / CARD_NAME)
    for f in (args.dest / STAGE_FILE, args.dest / CARD_NAME):
        f.chmod(0o644)  # package data
    load_stage(args.dest, ModelCard.load(args.dest / CARD_NAME).lesion_stage)
    print(f"{args.dest}: lesion stage from {args.fitted} "
          f"(held-out: {fitted.lesion_stage.get('heldout')})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
