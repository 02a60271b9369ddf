#!/usr/bin/env python
"""Train the shipped phantom model: phantom cohort → preparation → training → gdsynth/assets/models/phantom.

Full run (the lead's job, ~30-40 min on 2 CPU cores at 1 mm)::

    python experiments/train_phantom_model.py --work work/phantom-model

Smoke test of the whole chain with a tiny budget::

    python experiments/train_phantom_model.py --work /tmp/pm --subjects 3 --resolution 2 \
        --max-steps 5 --dest /tmp/pm/exported

The exported card says the model was trained on the digital phantom only.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEST = ROOT / "gdsynth" / "assets" / "models" / "phantom"
MAX_MB = 20.0
INTENDED_USE = (
    "Demonstration and research only. Trained exclusively on the gdsynth digital MS phantom "
    "(synthetic images, no patient data); not validated on real MRI. Not a medical device."
)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=ROOT / "work" / "phantom-model",
                   help="working folder (phantom cohort, prep cache, run)")
    p.add_argument("--subjects", type=int, default=24)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--sites", default="siteA,siteB,random",
                   help="comma-separated phantom sites to train on, one per subject in turn "
                        "(siteC is held out for testing; random: domain-randomized scanner)")
    p.add_argument("--resolution", type=float, default=1.0, help="phantom voxel size (mm)")
    p.add_argument("--config", type=Path, default=ROOT / "experiments" / "phantom.yaml")
    p.add_argument("--max-steps", type=int, default=None)
    p.add_argument("--max-time", default=None, help="minutes or DD:HH:MM:SS")
    p.add_argument("--tracker", default=None, help="wandb (offline) | csv | none")
    p.add_argument("--threads", type=int, default=None, help="torch threads")
    p.add_argument("--gen-workers", type=int, default=1, help="phantom generation processes")
    p.add_argument("--dest", type=Path, default=DEST, help="where to export the model folder")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gdsynth.io.bids import discover
    from gdsynth.models.folder import load_model_folder, save_model_folder
    from gdsynth.phantom import generate_dataset
    from gdsynth.training.cohort import prepare_cohort
    from gdsynth.training.config import apply_overrides, load_config
    from gdsynth.training.run import RunOptions, last_checkpoint, train_run

    cfg = load_config(args.config)
    apply_overrides(cfg, **{"trainer.max_steps": args.max_steps, "trainer.max_time": args.max_time,
                            "trainer.tracker": args.tracker, "trainer.num_threads": args.threads,
                            "trainer.seed": args.seed})
    bids = args.work / "phantom"
    t0 = time.perf_counter()
    if not (bids / "dataset_description.json").is_file():
        generate_dataset(bids, subjects=args.subjects, seed=args.seed, resolution=args.resolution,
                         workers=args.gen_workers, sites=args.sites.split(","))
    exams = [e for e in discover(bids) if e.t1w_gd is not None]
    print(f"phantom: {len(exams)} exams ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    training, outcomes = prepare_cohort(bids, exams, prep_root=args.work / "prep",
                                        prep_config=cfg.prep, inputs=cfg.data.inputs)
    failed = [o for o in outcomes if o.status == "failed"]
    for o in failed:
        print(f"preparation failed for {o.case}: {o.error}", file=sys.stderr)
    if not training:
        return 1
    print(f"prepared {len(training)} exams ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    run = args.work / "run"
    summary = {"source": "gdsynth digital phantom (synthetic only)", "subjects": args.subjects,
               "seed": args.seed, "sites": args.sites.split(","),
               "resolution_mm": args.resolution, "n_exams": len(training)}
    result = train_run(training, run, cfg, RunOptions(resume=last_checkpoint(run).is_file(),
                                                      progress=True, data_summary=summary))
    generator, card = load_model_folder(result.model_dir)
    card.name = "gdsynth-phantom"
    card.intended_use = INTENDED_USE
    card.training["trained_on"] = "phantom only"
    save_model_folder(args.dest, generator, card)
    for f in args.dest.iterdir():  # atomic writes create 0600 temp files; package data is 0644
        f.chmod(0o644)
    size_mb = sum(p.stat().st_size for p in args.dest.iterdir() if p.is_file()) / 2**20
    print(f"exported {args.dest} ({size_mb:.2f} MB) after {result.steps} steps in "
          f"{time.perf_counter() - t0:.0f} s; val: {result.metrics}", file=sys.stderr)
    if size_mb > MAX_MB:
        print(f"model folder is {size_mb:.1f} MB, above the {MAX_MB} MB budget", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
