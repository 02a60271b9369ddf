#!/usr/bin/env python
"""Research table: lesion F1 and patient AUC with and without each head and each augmentation, at
several training-set sizes, on the digital phantom.

Variants (``--variants``, trained at every size in ``--sizes``): ``baseline`` (the recipe as
given: GAN, no head), ``head-enhancing``, ``head-lesions``, ``multitask`` (both heads),
``insertion`` (RandomLesionInsertion into the phantom subjects, p = 0.5), ``cvae`` (a lesion CVAE
trained on the training subjects' lesion patches, 2 generated patches per batch). Variants of the
evaluation issue (``--variants-largest``, trained at the largest size only): ``l1-only`` (no
discriminator), ``2d`` (one slice per sequence instead of 2.5D), ``no-oversampling`` (patches drawn
uniformly in the brain instead of half centred on enhancing lesions), ``segnet`` (the direct
segmentation network of the brief: the enhancing head alone, no synthesis loss, scored with the
segmentation detector). Each is trained on the first N subjects of one phantom cohort (sites A
and B) with the recipe ``--config`` and ``--max-steps`` batches, then scored on a separate test
cohort of the unseen site C (``--test`` subjects) with the difference detector, and also with the
combined detector when the model has the enhancing head. The two baselines that need no training,
``post=pre`` and the FLAIR heuristic (:mod:`gdsynth.evaluation.baselines`), are scored on the same
test exams, and so is ``real-post``, the real post-Gd through the same detector (the upper bound
of synthesis-then-detection: a perfect synthesis scores this). Every model uses its card's default detection parameters (no calibration), so the
rows compare models, not operating points; the patient AUC does not depend on the operating point.

Each run is cached (``WORK/runs/VARIANT-nN``: the model and its scores), so a rerun, or a second
invocation with other variants on the same ``--work``, only computes what is missing; two
invocations with disjoint variants can run side by side. Writes ``WORK/research_table.md`` and
``.tsv`` with the rows of this invocation.

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
LARGEST_ONLY = ("l1-only", "2d", "no-oversampling", "segnet")
BASELINES = ("post=pre", "flair-heuristic", "real-post")
HEADS = {"head-enhancing": ["enhancing"], "head-lesions": ["lesions"],
         "multitask": ["enhancing", "lesions"]}
COLUMNS = ("variant", "n_train", "detector", "lesion_f1", "sensitivity", "ppv", "patient_auc",
           "auc_ci95", "n_test", "n_active_exams", "n_lesions", "steps", "train_s")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--sizes", default="4,8,16", help="training subjects, comma-separated")
    p.add_argument("--test", type=int, default=8, help="test subjects (separate cohort)")
    p.add_argument("--variants", default=",".join(VARIANTS), help="at every size")
    p.add_argument("--variants-largest", default=",".join(LARGEST_ONLY),
                   help="at the largest size only ('' for none)")
    p.add_argument("--no-baselines", action="store_true", help="skip the training-free rows")
    p.add_argument("--rescore", action="store_true",
                   help="score every run's existing model again (no training)")
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
    if variant == "l1-only":
        cfg.loss.adversarial_weight = 0.0
    if variant == "2d":
        cfg.data.mode = "2d"
        cfg.data.context_slices = 0
    if variant == "no-oversampling":
        cfg.data.lesion_probability = 0.0
    if variant == "segnet":
        cfg.generator.heads = ["enhancing"]
        cfg.loss.adversarial_weight = 0.0
        cfg.loss.l1_weight = 0.0
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
        if isinstance(v, list | tuple):
            return "–".join(fmt(x) for x in v)
        if isinstance(v, float):
            return f"{v:.3f}" if math.isfinite(v) else "n/a"
        return "n/a" if v is None else str(v)

    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(fmt(r.get(c)) for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def train_and_score(variant: str, train, test, base, run: Path, args) -> list[dict]:
    """The rows of one variant at one size: trained (unless its model exists), scored (unless
    cached; ``--rescore`` scores the existing model again)."""
    import json

    from gdsynth.io import atomic_write_text
    from gdsynth.models.folder import load_model_folder
    from gdsynth.training.run import RunOptions, train_run

    cache = run / "rows.json"
    old = json.loads(cache.read_text()) if cache.is_file() else []
    if old and not getattr(args, "rescore", False):
        return old
    model_dir = run / "train" / "model"
    if (model_dir / "model_card.json").is_file():
        generator, card = load_model_folder(model_dir)
        steps = int(card.training.get("steps", 0))
        seconds = old[0]["train_s"] if old else float("nan")
    else:
        cfg = variant_config(base, variant, run, train, args.seed, args.cvae_steps)
        t0 = time.perf_counter()
        result = train_run(train, run / "train", cfg, RunOptions(val_exams=[]))
        seconds = round(time.perf_counter() - t0, 1)
        generator, card = load_model_folder(result.model_dir)
        steps = result.steps
    if variant == "segnet":
        detectors = ["segmentation"]
    else:
        detectors = ["difference"] + (["combined"] if "enhancing" in card.heads else [])
    rows = []
    for det in detectors:
        score = rc.score_model(generator, card, test, det)
        rows.append({"variant": variant, "n_train": len(train), "detector": det,
                     **score, "n_test": score["n_exams"], "steps": steps, "train_s": seconds})
        print(markdown(rows[-1:]).splitlines()[-1], file=sys.stderr)
    atomic_write_text(cache, json.dumps(rows, indent=1))
    return rows


def baseline_rows(test, work: Path, rescore: bool = False) -> list[dict]:
    """``post=pre``, FLAIR-heuristic and real-post-Gd rows on the test exams (cached in
    ``WORK/baselines``)."""
    import json

    from gdsynth.io import atomic_write_text

    cache = work / "baselines" / "rows.json"
    if cache.is_file() and not rescore:
        return json.loads(cache.read_text())
    rows = [{"variant": name, "n_train": 0, "detector": "-", **rc.score_baseline(test, name),
             "steps": 0, "train_s": 0.0} for name in BASELINES]
    for r in rows:
        r["n_test"] = r.pop("n_exams")
    atomic_write_text(cache, json.dumps(rows, indent=1))
    return rows


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gdsynth.io import atomic_write_text, write_tsv
    from gdsynth.training.config import apply_overrides, load_config

    sizes = [int(s) for s in args.sizes.split(",")]
    variants = [v for v in args.variants.split(",") if v]
    largest = [v for v in args.variants_largest.split(",") if v]
    bad = set(variants) - set(VARIANTS) - set(LARGEST_ONLY) | set(largest) - set(LARGEST_ONLY) - set(VARIANTS)
    if bad:
        print(f"unknown variants {sorted(bad)}; choose from "
              f"{', '.join(VARIANTS + LARGEST_ONLY)}", file=sys.stderr)
        return 2
    base = apply_overrides(load_config(args.config), **{"trainer.max_steps": args.max_steps})
    work = args.work
    train_bids = rc.phantom_cohort(work, max(sizes), args.seed, args.resolution, ("siteA", "siteB"))
    test_bids = rc.phantom_cohort(work, args.test, args.seed + 1000, args.resolution, ("siteC",))
    train_all = sorted(rc.prepared_exams(train_bids, work / "train", base.data.inputs),
                       key=lambda e: e.id)
    test = [rc.load_eval_exam(e, base.data.inputs)
            for e in rc.prepared_exams(test_bids, work / "test", base.data.inputs)]
    plan = [(n, v) for n in sizes for v in variants]
    plan += [(max(sizes), v) for v in largest if (max(sizes), v) not in plan]
    rows: list[dict] = [] if args.no_baselines else baseline_rows(test, work, args.rescore)
    for n, variant in plan:
        rows += train_and_score(variant, train_all[:n], test, base,
                                work / "runs" / f"{variant}-n{n}", args)
        write_tsv(work / "research_table.tsv", rows, COLUMNS)
    atomic_write_text(work / "research_table.md", markdown(rows))
    print(markdown(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
