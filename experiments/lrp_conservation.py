#!/usr/bin/env python
"""LRP conservation (Σ relevance / explained enhancement) of the shipped model per instance-norm
rule and ε, on the active truth lesions of a few exams of a prepared phantom cohort.

    python experiments/lrp_conservation.py --bids /work/cache/cohorts/siteC-2mm --exams 1
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import research_common as rc  # noqa: E402
from relevance_patterns import prepared, truth_lesions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bids", type=Path, required=True)
    p.add_argument("--model", default=str(ROOT / "gdsynth" / "assets" / "models" / "phantom"))
    p.add_argument("--exams", type=int, default=1)
    p.add_argument("--work", type=Path, default=Path("/tmp/lrp_conservation"))
    args = p.parse_args(argv)
    from gdsynth.explain.attribution import make_forward, slab_of
    from gdsynth.explain.lrp import NormRule, lrp
    from gdsynth.models.folder import load_model_folder

    generator, card = load_model_folder(args.model)
    generator.eval()
    print("| exam | lesion | voxels | enhancement | norm rule | ε | Σ R / enhancement |")
    print("|---|---|---|---|---|---|---|")
    for exam in prepared(args.bids, args.exams, None, args.work, card.inputs):
        ex = rc.load_eval_exam(exam, card.inputs)
        vol = np.stack([ex.images[s] for s in card.inputs])
        for mask, active, info in truth_lesions(exam, ex, 0):
            if not active:
                continue
            fwd, region = make_forward(generator, mask, mode=card.mode,
                                       context=card.context_slices, residual=card.residual,
                                       t1w_index=0)
            for rule in NormRule:
                for eps in (1e-6, 0.05, 0.25):
                    r = lrp(fwd, slab_of(vol, region), epsilon=eps, norm_rule=rule)
                    print(f"| {exam.id} | {info.get('label', '?')} | {int(mask.sum())} | "
                          f"{r.output:.2f} | {rule.value} | {eps:g} | {r.conservation:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
