#!/usr/bin/env python
"""Which patterns drive the synthetic enhancement: LRP + spectral relevance analysis on the phantom.

For the phantom truth lesions of a few exams — every active lesion (instances of the enhancing
truth) and every chronic lesion (components of the all-lesion mask that are not active, matched
to their ``_lesions.tsv`` row by centre) — the model's synthetic enhancement summed over the lesion
is explained by LRP (:mod:`gdsynth.explain.lrp`), aligned on the lesion and clustered
(:mod:`gdsynth.explain.patterns`). Each cluster is related to the phantom's known causes (kind,
enhancement pattern ring/nodular, border, halo strength, T1/T2 change, look-alike chronic lesion),
and the relevance is split by distance from the lesion (lesion, 0–3 mm, 3–6 mm, > 6 mm) per
sequence, next to the phantom's physics (mean |intensity − 1| of each sequence in the same bands).

Writes to WORK: ``patterns/`` (the pattern page, TSVs), ``relevance_patterns.md`` (tables).

    python experiments/relevance_patterns.py --work /work/cache/lrp/shipped \
        --bids /work/cache/cohorts/siteC-1mm --exams 4
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import research_common as rc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SEQS = ("T1w", "T2w", "FLAIR")
#: Truth-table columns shown per cluster ("the known causes").
CAUSES = ("kind", "enhancement", "border", "halo_strength", "t1_change_ms", "t2_change_ms",
          "lookalike", "radius_mm")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--model", default=str(ROOT / "gdsynth" / "assets" / "models" / "phantom"))
    p.add_argument("--bids", type=Path, required=True, help="phantom BIDS cohort (read only)")
    p.add_argument("--exams", type=int, default=4, help="the first N exams with truth")
    p.add_argument("--participant-label", nargs="*", default=None,
                   help="only these subjects (e.g. 001 003)")
    p.add_argument("--prep", type=Path, default=None,
                   help="prepared-exam folder (default: the cohort's derivatives/gdsynth-prep "
                        "when the cohort is complete (.done), else WORK/prep)")
    p.add_argument("--clusters", type=int, default=None, help="default: the largest eigengap")
    p.add_argument("--max-chronic", type=int, default=12, help="chronic lesions per exam (cost)")
    p.add_argument("--ig-steps", type=int, default=0, help="also integrated gradients (0: no)")
    return p.parse_args(argv)


def prepared(bids: Path, n: int, prep: Path | None, work: Path, inputs=SEQS,
             labels: list[str] | None = None) -> list:
    """The first ``n`` exams with truth, prepared (``TrainingExam``) into ``prep``, else the
    cohort's own derivatives/gdsynth-prep when the cohort is complete (``.done``; read only),
    else ``work/prep``."""
    from gdsynth.io.bids import discover
    from gdsynth.phantom import enhancing_truth_path
    from gdsynth.training.cohort import prepare_cohort

    exams = [e for e in discover(bids, labels) if e.t1w_gd is not None and enhancing_truth_path(bids, e)][:n]
    if prep is None:
        prep = rc.prep_folder(bids, work)
    training, outcomes = prepare_cohort(bids, exams, prep_root=prep, inputs=list(inputs),
                                        progress=False)
    for o in outcomes:
        if o.status == "failed":
            print(f"preparation failed for {o.case}: {o.error}", file=sys.stderr)
    return training


def truth_lesions(exam, ex, max_chronic: int | None = None) -> list[tuple[np.ndarray, bool, dict]]:
    """``(mask, active, truth row)`` of the phantom lesions of one exam on the prepared grid.

    Active: instances of the enhancing truth (matched to the table by label). Chronic: connected
    components of the all-lesion mask not touching an active lesion, matched to the nearest
    chronic table row by centre (world RAS); at most ``max_chronic`` (largest first)."""
    from scipy import ndimage as ndi
    from sequence_importance import truth_instances

    from gdsynth.io import read_tsv

    labels = truth_instances(exam.truth, exam.paths["T1w"]) * ex.brain
    table = Path(str(exam.truth).replace("_label-L_desc-enhancing_dseg.nii.gz", "_lesions.tsv")
                 .replace("_desc-enhancing_dseg.nii.gz", "_lesions.tsv"))
    rows = read_tsv(table) if table.is_file() else []
    active_rows = {int(float(r["label"])): r for r in rows if r.get("kind") == "active"}
    chronic_rows = [r for r in rows if r.get("kind") != "active"]
    out = []
    for label in (int(v) for v in np.unique(labels) if v > 0):
        out.append((labels == label, True, dict(active_rows.get(label, {}))))
    near_active = ndi.binary_dilation(labels > 0, iterations=2)
    comps, n = ndi.label((ex.all_lesions > 0) & ex.brain & ~near_active)
    sizes = ndi.sum(np.ones_like(comps), comps, index=np.arange(1, n + 1))
    order = np.argsort(-sizes)[: max_chronic] if max_chronic else np.argsort(-sizes)
    centres_ras = (np.array([[float(r["centre_x"]), float(r["centre_y"]), float(r["centre_z"])]
                             for r in chronic_rows]) if chronic_rows else np.zeros((0, 3)))
    for idx in order:
        mask = comps == idx + 1
        if mask.sum() < 2:
            continue
        info: dict[str, Any] = {"kind": "chronic"}
        if len(centres_ras):
            c = ex.geometry.index_to_world(np.argwhere(mask).mean(0)[None], ras=True)[0]
            best = int(np.argmin(((centres_ras - c) ** 2).sum(1)))
            if np.sqrt(((centres_ras[best] - c) ** 2).sum()) < 8.0:
                info = dict(chronic_rows[best])
        out.append((mask, False, info))
    return out


def physics_bands(images: dict, mask: np.ndarray, brain: np.ndarray, spacing) -> dict:
    """Mean |intensity − 1| per sequence in the lesion and the 0–3, 3–6 mm shells (in-brain)."""
    from scipy.ndimage import distance_transform_edt

    from gdsynth.explain.patterns import BANDS

    dist = distance_transform_edt(~mask, sampling=spacing)
    out = {}
    for band, (lo, hi) in BANDS.items():
        if band == "elsewhere":
            continue
        sel = mask if band == "lesion" else (dist > lo) & (dist <= hi) & brain
        out[band] = {s: float(np.abs(images[s][sel] - 1.0).mean()) if sel.any() else float("nan")
                     for s in SEQS}
    return out


def explain_lesions(generator, card, exams, *, max_chronic: int | None = 12, ig_steps: int = 0,
                    extra=None, alignment: str = "lesion") -> tuple[list, list[dict]]:
    """LRP patterns of the truth lesions of ``exams`` (window ``alignment``, see
    ``gdsynth.explain.patterns.Alignment``); ``extra(exam, ex, mask, active, info,
    full_relevance) -> dict`` adds per-lesion measurements (kept in the pattern's ``info``).
    Returns ``(patterns, physics rows)``."""
    from gdsynth.explain.attribution import baseline_volume
    from gdsynth.explain.patterns import lesion_pattern

    patterns, physics = [], []
    for exam in exams:
        if exam.truth is None:
            continue
        ex = rc.load_eval_exam(exam, card.inputs)
        volume = np.stack([ex.images[s] for s in card.inputs])
        base = baseline_volume(volume, ex.brain) if ig_steps else None
        for n, (mask, active, info) in enumerate(truth_lesions(exam, ex, max_chronic)):
            label = int(float(info.get("label", 0))) if active else 1000 + n
            keep = {k: info[k] for k in CAUSES if k in info}
            pattern, full = lesion_pattern(
                generator, volume, mask, ex.geometry.spacing, sequences=card.inputs,
                mode=card.mode, context=card.context_slices, residual=card.residual,
                exam=exam.id, label=label, active=active, ig_steps=ig_steps, baseline=base,
                info=keep, alignment=alignment)
            if extra is not None:
                pattern.info.update(extra(exam, ex, mask, active, info, full))
            patterns.append(pattern)
            physics.append({"active": active, **physics_bands(ex.images, mask, ex.brain,
                                                                 ex.geometry.spacing)})
    return patterns, physics


def cluster_markdown(clusters, sequences, causes=CAUSES) -> list[str]:
    """Markdown table: one row per cluster (size, activity, |R| by band, the known causes)."""
    from gdsynth.explain.patterns import BANDS

    head = ["cluster", "lesions", "truly active", *(f"|R| {b}" for b in BANDS), *causes]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for c in clusters:
        fr = c.band_fractions()
        desc = c.describe(causes)
        cells = [str(c.id), str(c.n), f"{c.n_active}/{c.n_known}",
                 *(f"{fr[b]:.2f}" for b in BANDS), *(desc[k] for k in causes)]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def band_markdown(patterns, physics, sequences) -> list[str]:
    """Per sequence: share of |R| by band (mean over lesions of per-lesion shares), signed
    share, and the phantom's contrast in the same bands (active lesions / all)."""
    from gdsynth.explain.patterns import BANDS

    lines = ["| sequence | " + " | ".join(f"|R| {b}" for b in BANDS)
             + " | signed R lesion | signed R 0–3 mm | contrast lesion | contrast 0–3 mm "
               "| contrast 3–6 mm |", "|" + "---|" * (len(BANDS) + 6)]
    for s in sequences:
        shares = {b: [] for b in BANDS}
        signed = {b: [] for b in BANDS}
        for p in patterns:
            tot = max(sum(p.bands["abs"].values()), 1e-12)
            for b in BANDS:
                shares[b].append(p.bands[f"abs_{s}"][b] / tot)
                signed[b].append(p.bands[s][b] / tot)
        phys = {b: np.nanmean([r[b][s] for r in physics]) for b in ("lesion", "shell_0_3mm",
                                                                    "shell_3_6mm")}
        lines.append(f"| {s} | " + " | ".join(f"{np.mean(shares[b]):.3f}" for b in BANDS)
                     + f" | {np.mean(signed['lesion']):+.3f} | {np.mean(signed['shell_0_3mm']):+.3f}"
                     + f" | {phys['lesion']:.3f} | {phys['shell_0_3mm']:.3f}"
                     + f" | {phys['shell_3_6mm']:.3f} |")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gdsynth.explain.patterns import cluster_patterns
    from gdsynth.io import atomic_write_text
    from gdsynth.models.folder import load_model_folder
    from gdsynth.review.patterns import write_pattern_page

    start = time.perf_counter()
    args.work.mkdir(parents=True, exist_ok=True)
    generator, card = load_model_folder(args.model)
    generator.eval()
    exams = prepared(args.bids, args.exams, args.prep, args.work, card.inputs,
                     args.participant_label)
    patterns, physics = explain_lesions(generator, card, exams, max_chronic=args.max_chronic,
                                        ig_steps=args.ig_steps)
    if not patterns:
        print("no truth lesions", file=sys.stderr)
        return 1
    clusters, info = cluster_patterns(patterns, n_clusters=args.clusters)
    write_pattern_page(args.work / "patterns", patterns, clusters, card.inputs, clustering=info,
                       title="Relevance patterns (phantom truth lesions)", describe=CAUSES,
                       notes=[f"model {args.model}; cohort {args.bids}; {len(exams)} exam(s)"])
    n_act = sum(bool(p.active) for p in patterns)
    cons = np.array([p.conservation for p in patterns if p.active])
    lines = [f"# Relevance patterns: {len(patterns)} truth lesions ({n_act} active) of "
             f"{len(exams)} exam(s) of {args.bids.name}", "",
             f"Model: {args.model}. Clusters: {info['n_clusters']} ({info['chosen_by']}). "
             f"LRP conservation (Σ R / enhancement, active lesions): median "
             f"{np.median(cons) if cons.size else float('nan'):.2f}. "
             f"Run time {time.perf_counter() - start:.0f} s.", "", *cluster_markdown(clusters, card.inputs),
             "", "Where relevance falls, per sequence (all lesions), next to the phantom's "
             "contrast |intensity − 1| in the same bands:", "",
             *band_markdown(patterns, physics, card.inputs), "",
             "Active lesions only:", "",
             *band_markdown([p for p in patterns if p.active],
                            [r for r in physics if r["active"]], card.inputs)]
    text = "\n".join(lines) + "\n"
    atomic_write_text(args.work / "relevance_patterns.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
