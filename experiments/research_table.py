#!/usr/bin/env python
"""Research table: lesion F1 and patient AUC with and without each head and each augmentation, at
several training-set sizes, on the digital phantom.

Variants: ``baseline`` (no head), ``head-enhancing``, ``head-lesions``, ``multitask`` (both heads),
``insertion`` (RandomLesionInsertion into the phantom subjects, p = 0.5), ``cvae`` (a lesion CVAE
trained on the training subjects' lesion patches, 2 generated patches per batch). Each is trained
on the first N subjects (N in ``--sizes``) of one phantom cohort (sites A and B) with the recipe
``--config`` and ``--max-steps`` batches, then scored on a separate test cohort (``--test``
subjects, site C included) with the difference detector, and with the combined detector when the
model has the enhancing head. Writes ``WORK/research_table.md`` and ``.tsv``.

The real experiment (default: sizes 4, 8, 16; the phantom recipe at 1 mm for 8000 steps) takes
many hours of CPU; a smoke run::

    python experiments/research_table.py --work /tmp/rt --sizes 2 --test 2 --resolution 2 \
        --config experiments/tiny.yaml --max-steps 4 --variants baseline,multitask
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import research_common as rc  # noqa: E402

VARIANTS = ("baseline", "head-enhancing", "head-lesions", "multitask", "insertion", "cvae")
HEADS = {"head-enhancing": ["enhancing"], "head-lesions": ["lesions"],
         "multitask": ["enhancing", "lesions"]}
COLUMNS = ("variant", "n_train", "detector", "lesion_f1", "sensitivity", "ppv", "patient_auc",
           "n_test", "steps", "train_s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--sizes", default="4,8,16", help="training subjects, comma-separated")
    p.add_argument("--test", type=int, default=8, help="test subjects (separate cohort)")
    p.add_argument("--variants", default=",".join(VARIANTS))
    p.add_argument("--config", type=Path, default=rc.ROOT / "experiments" / "phantom.yaml")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--resolution", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--cvae-steps", type=int, default=300)
    return p.parse_args(argv)


def variant_config(base, variant: str, work: Path, train, seed: int, cvae_steps: int):
    """The TrainConfig of one variant (the CVAE variant trains and saves its CVAE first)."""
    from gdsynth.training.config import TrainConfig

    cfg = TrainConfig.from_dict(base.to_dict())
    cfg.data.val_fraction = 0.0
    cfg.trainer.tracker = "none"
    cfg.trainer.seed = seed
    cfg.generator.heads = list(HEADS.get(variant, []))
    if variant == "insertion":
        cfg.data.augment.enabled = True
        cfg.data.augment.lesion_insertion_p = 0.5
        cfg.data.augment.lesion_insertion_phantom = True
    if variant == "cvae":
        cfg.data.cvae = str(train_cvae_on(train, cfg, work / "cvae", cvae_steps, seed))
        cfg.data.cvae_per_batch = 2
    return TrainConfig.from_dict(cfg.to_dict())  # validated again (heads -> targets)


def train_cvae_on(train, cfg, folder: Path, steps: int, seed: int) -> Path:
    import torch

    from gdsynth.data.subjects import AddLesionLabels, make_subject
    from gdsynth.models.cvae import LesionCVAE, lesion_patches, save_cvae, train_cvae

    order = [*cfg.data.inputs, "T1w_gd"]
    parts = []
    for exam in train:
        s = AddLesionLabels()(make_subject(exam, cfg.data.inputs))
        parts.append(lesion_patches({k: s[k].data[0].numpy() for k in order},
                                    s["lesion"].data[0].numpy(), s["brain"].data[0].numpy(),
                                    order, cfg.data.patch_size))
    x, mask = (torch.cat([p[i] for p in parts]) for i in range(2))
    model = LesionCVAE(channels=len(order), patch=cfg.data.patch_size)
    if len(x):
        train_cvae(model, x, mask, steps=steps, seed=seed)
    return save_cvae(model, folder)


def markdown(rows: list[dict]) -> str:
    def fmt(v):
        return f"{v:.3f}" if isinstance(v, float) and math.isfinite(v) else str(v)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r[c]) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gdsynth.io import atomic_write_text, write_tsv
    from gdsynth.models.folder import load_model_folder
    from gdsynth.training.config import apply_overrides, load_config
    from gdsynth.training.run import train_run

    sizes = [int(s) for s in args.sizes.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    bad = set(variants) - set(VARIANTS)
    if bad:
        print(f"unknown variants {sorted(bad)}; choose from {', '.join(VARIANTS)}", file=sys.stderr)
        return 2
    base = apply_overrides(load_config(args.config), **{"trainer.max_steps": args.max_steps})
    work = args.work
    train_bids = rc.phantom_cohort(work, max(sizes), args.seed, args.resolution, ("siteA", "siteB"))
    test_bids = rc.phantom_cohort(work, args.test, args.seed + 1000, args.resolution)
    train_all = sorted(rc.prepared_exams(train_bids, work / "train", base.data.inputs),
                       key=lambda e: e.id)
    test = [rc.load_eval_exam(e, base.data.inputs)
            for e in rc.prepared_exams(test_bids, work / "test", base.data.inputs)]
    rows: list[dict] = []
    for n in sizes:
        train = train_all[:n]
        for variant in variants:
            run = work / "runs" / f"{variant}-n{n}"
            cfg = variant_config(base, variant, run, train, args.seed, args.cvae_steps)
            t0 = time.perf_counter()
            result = train_run(train, run / "train", cfg, val_exams=[])
            seconds = time.perf_counter() - t0
            generator, card = load_model_folder(result.model_dir)
            detectors = ["difference"] + (["combined"] if "enhancing" in card.heads else [])
            for det in detectors:
                score = rc.score_model(generator, card, test, det)
                rows.append({"variant": variant, "n_train": len(train), "detector": det,
                             **score, "n_test": score["n_exams"], "steps": result.steps,
                             "train_s": round(seconds, 1)})
                print(markdown(rows[-1:]).splitlines()[-1], file=sys.stderr)
            write_tsv(work / "research_table.tsv", rows, COLUMNS)
    atomic_write_text(work / "research_table.md", markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
