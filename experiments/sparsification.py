#!/usr/bin/env python
"""Sparsification of the MC-dropout uncertainty on a phantom test cohort: curve PNG + AUSE.

Each test exam is synthesized with ``--mc-samples`` MC-dropout passes; inside the brain the error
is |synthetic − real post-Gd| (normalized units) and the uncertainty the MC standard deviation.
Voxels of all exams are pooled (a random subset of ``--max-voxels``) and removed by decreasing
std (model) or by decreasing error (oracle) (:func:`gdsynth.evaluation.uncertainty.sparsification`).
Also: the same with a random permutation of the std (what AUSE looks like without information),
per-patient calibration of ``probability_active`` (detected as ``gdsynth predict`` does: with the
model's learned lesion stage when it has one) and the refer-for-Gd policy curve.
Writes ``WORK/sparsification.png``, ``WORK/sparsification.json``.

Smoke run (trains a tiny model first when ``--model`` is not given)::

    python experiments/sparsification.py --work /tmp/sp --subjects 2 --resolution 2 \
        --config experiments/tiny.yaml --train-steps 4 --mc-samples 4
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import research_common as rc  # noqa: E402


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = rc.model_parser(__doc__.splitlines()[0])
    p.add_argument("--mc-samples", type=int, default=8)
    p.add_argument("--max-voxels", type=int, default=500_000)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gdsynth.detection.params import DetectionParams
    from gdsynth.evaluation.report import jsonable
    from gdsynth.evaluation.uncertainty import patient_calibration, referral_curve, sparsification
    from gdsynth.inference.pipeline import detect_synthesis
    from gdsynth.io import write_json

    if args.mc_samples < 2:
        print("--mc-samples must be >= 2 (the uncertainty is their SD)", file=sys.stderr)
        return 2
    generator, card = rc.model_for(args.model, args.work, args.config, args.train_steps,
                                   args.seed, args.resolution)
    bids, prep_work = rc.test_cohort(args)
    params = DetectionParams.from_dict(dict(card.detection or {}))
    stage = rc.model_stage(args.model, args.work, card)  # predict's detection: the learned stage
    stds, errors, prob, active = [], [], [], []
    for exam in rc.prepared_exams(bids, prep_work, card.inputs, args.exams):
        ex = rc.load_eval_exam(exam, card.inputs)
        synth = rc.synthesize(generator, card, ex, mc_samples=args.mc_samples, seed=args.seed)
        stds.append(synth.uncertainty[ex.brain])
        errors.append(np.abs(synth.synthetic - ex.images["T1w_gd"])[ex.brain])
        prob.append(detect_synthesis(ex.prepared(), synth, params,
                                     stage=stage).summary["probability_active"])
        active.append(bool(ex.enhancing.any()))
    rng = np.random.default_rng(args.seed)
    std, err = np.concatenate(stds), np.concatenate(errors)
    if std.size > args.max_voxels:
        keep = rng.choice(std.size, args.max_voxels, replace=False)
        std, err = std[keep], err[keep]
    curve = sparsification(std, err)
    random = sparsification(rng.permutation(std), err)
    out = {"n_exams": len(prob), "n_voxels": int(std.size), "mc_samples": args.mc_samples,
           "ause": curve["ause"], "ause_random_std": random["ause"], "curve": curve,
           "spearman_std_error": float(_spearman(std, err)),
           "patient_calibration": patient_calibration(np.array(prob), np.array(active)),
           "referral": referral_curve(np.array(prob), np.array(active))}
    write_json(args.work / "sparsification.json", jsonable(out))  # NaN/inf -> null
    fig, ax = plt.subplots(figsize=(5, 4))
    f = curve["fractions"]
    ax.plot(f, curve["by_std"], label=f"MC-dropout std (AUSE {curve['ause']:.3f})")
    ax.plot(f, curve["oracle"], "k--", label="oracle (true error)")
    ax.plot(f, random["by_std"], ":", label=f"random std (AUSE {random['ause']:.3f})")
    ax.set_xlabel("fraction of brain voxels removed")
    ax.set_ylabel("mean |error| of the rest / all")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(args.work / "sparsification.png", dpi=120)
    print(f"AUSE {curve['ause']:.4f} (random std {random['ause']:.4f}); {std.size} voxels, "
          f"{len(prob)} exams", file=sys.stderr)
    return 0


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    return spearmanr(a, b).statistic


if __name__ == "__main__":
    sys.exit(main())
