#!/usr/bin/env python
"""Clever-Hans check: do the relevance maps reveal a spurious cue that predicts activity?

A phantom cohort gets, post hoc, a faint bright dot ``--offset-mm`` (10 mm) from the centre of
every *active* lesion (none near chronic ones) in the pre-contrast T1w, T2w and FLAIR — and, with
the T1w's amplitude, in the post-Gd T1w, so the target enhancement (post − pre) is unchanged at the
dot: the dot only *predicts* activity, like an artefact that happens to co-occur with it. The dot
lies along +x of the world (RAS: towards the subject's right) when that point is in the brain and
away from other lesions, else along −x, +y or −y. The transform is applied to the cohort's
prepared images (its ``derivatives/gdsynth-prep``, normalized: NAWM = 1), not to the raw BIDS
images, so the cued copy needs no second preparation (on 2 shared cores preparing every exam twice
cost more than training); the dots of each exam are in ``WORK/cued-*/<exam>_cue.tsv``.

Two small models are trained with one recipe (``experiments/clever_hans.yaml``, 2 mm): one on the
cued cohort, one on the clean one (same exams). Both are explained by LRP on the truth lesions of a
cued test cohort (the first ``--test-exams`` exams of the unseen site C, cued the same way) and the
relevance is measured

* in the lesion and within ``--dot-radius-mm`` (4 mm) of the dot (active lesions);
* by spectral relevance analysis (:mod:`gdsynth.explain.patterns`): per cluster, the share of
  |relevance| near the dot, so a cluster "made of the dot" shows up.

The cue is revealed when, for the cued model, the positive relevance near the dot exceeds that in
the lesion, and not for the clean model. Writes ``WORK/clever_hans.md`` and the pattern pages
``WORK/patterns-cue/``, ``WORK/patterns-clean/``; everything is cached under WORK.

    python experiments/clever_hans.py --work /work/cache/lrp/ch
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import research_common as rc  # noqa: E402
from relevance_patterns import CAUSES, cluster_markdown, explain_lesions, truth_lesions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRE = ("T1w", "T2w", "FLAIR")
DIRECTIONS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--train-bids", type=Path, default=None,
                   help="clean training cohort (read only); default: a phantom of --subjects "
                        "subjects (sites A+B) generated under WORK")
    p.add_argument("--train-exams", type=int, default=12,
                   help="training subjects, those with the most active lesions first")
    p.add_argument("--subjects", type=int, default=16)
    p.add_argument("--active-fraction", type=float, default=0.75,
                   help="of the generated training phantom (more active lesions to learn from)")
    p.add_argument("--seed", type=int, default=2100)
    p.add_argument("--resolution", type=float, default=2.0)
    p.add_argument("--test-bids", type=Path, default=Path("work/cohorts/siteC-2mm"),
                   help="clean test cohort (read only; prepared exams reused when complete)")
    p.add_argument("--test-exams", type=int, default=8)
    p.add_argument("--config", type=Path, default=ROOT / "experiments" / "clever_hans.yaml")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: recipe)")
    p.add_argument("--offset-mm", type=float, default=10.0)
    p.add_argument("--sigma-mm", type=float, default=1.5, help="dot Gaussian sigma")
    p.add_argument("--amplitude", type=float, default=0.4,
                   help="dot peak, fraction of each image's median brain intensity")
    p.add_argument("--dot-radius-mm", type=float, default=4.0)
    p.add_argument("--max-chronic", type=int, default=6, help="chronic lesions per test exam")
    p.add_argument("--models", choices=("both", "cue", "clean"), default="both",
                   help="which models to explain (two processes can split the work); the summary "
                        "goes to WORK/clever_hans[-cue|-clean].md")
    p.add_argument("--effect-only", action="store_true",
                   help="only the behavioural check: enhancement with and without the dots")
    p.add_argument("--stage", default="all", choices=("all", "data", "train-cue", "train-clean"),
                   help="run one stage only (cached; two training stages can run in parallel)")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- data and the cue

def training_phantom(args) -> Path:
    from gdsynth.phantom import generate_dataset

    bids = args.work / f"phantom-n{args.subjects}-s{args.seed}-r{args.resolution:g}-siteA+siteB"
    if not (bids / "dataset_description.json").is_file():
        generate_dataset(bids, subjects=args.subjects, seed=args.seed, resolution=args.resolution,
                         active_fraction=args.active_fraction, sites=["siteA", "siteB"])
    return bids


def most_active(bids: Path, n: int) -> list[str]:
    """The ``n`` subjects with the most active lesions (participants.tsv), ties by name."""
    from gdsynth.io import read_tsv

    rows = read_tsv(bids / "participants.tsv")
    rows.sort(key=lambda r: (-int(float(r.get("n_active_lesions") or 0)), r["participant_id"]))
    return sorted(r["participant_id"] for r in rows[:n])


def prep_subjects(bids: Path, subjects: list[str], prep_root: Path | None) -> list:
    """Prepared ``TrainingExam`` of ``subjects`` (``prep_root`` None: the cohort's own prepared
    exams, only for a complete cohort, ``.done``, so nothing is written there)."""
    from gdsynth.io.bids import discover
    from gdsynth.training.cohort import prepare_cohort

    exams = [e for e in discover(bids) if f"sub-{e.subject}" in subjects and e.t1w_gd is not None]
    training, outcomes = prepare_cohort(bids, exams, prep_root=prep_root, progress=False)
    for o in outcomes:
        if o.status == "failed":
            print(f"preparation failed for {o.case}: {o.error}", file=sys.stderr)
    return training


def own_prep(bids: Path, work: Path, name: str) -> Path | None:
    shared = bids / "derivatives" / "gdsynth-prep"
    return None if (bids / ".done").is_file() and shared.is_dir() else work / f"prep-{name}"


def _truth_rows(exam) -> list[dict]:
    from gdsynth.io import read_tsv

    table = Path(str(exam.truth).replace("_label-L_desc-enhancing_dseg.nii.gz", "_lesions.tsv"))
    return read_tsv(table) if table.is_file() else []


def dot_positions(exam, ex, offset_mm: float) -> list[dict]:
    """World (RAS) positions of the dots of one exam's active lesions: the first of +x, −x, +y,
    −y at ``offset_mm`` from the lesion centre that is in the brain and > 2 voxels from a lesion."""
    from scipy.ndimage import binary_dilation

    near = binary_dilation(ex.all_lesions > 0, iterations=2)
    out = []
    for r in _truth_rows(exam):
        if r.get("kind") != "active":
            continue
        centre = np.array([float(r["centre_x"]), float(r["centre_y"]), float(r["centre_z"])])
        for d in DIRECTIONS:
            pos = centre + offset_mm * np.asarray(d, float)
            i = np.rint(ex.geometry.world_to_index(pos, ras=True)).astype(int)
            if not all(0 <= a < n for a, n in zip(i, ex.brain.shape, strict=True)):
                continue
            if ex.brain[tuple(i)] and not near[tuple(i)]:
                axis = "xyz"[int(np.argmax(np.abs(d)))] + ("+" if sum(d) > 0 else "-")
                out.append({"label": int(float(r["label"])), "direction": axis,
                            "x": pos[0], "y": pos[1], "z": pos[2]})
                break
    return out


def add_dots(image: np.ndarray, geometry, dots: list[dict], sigma_mm: float, peak: float
             ) -> np.ndarray:
    """``image`` plus a Gaussian of height ``peak`` at each dot (world RAS)."""
    out = image.astype(np.float32, copy=True)
    half = int(np.ceil(3 * sigma_mm / min(geometry.spacing))) + 1
    for d in dots:
        centre = np.array([float(d["x"]), float(d["y"]), float(d["z"])])
        c = geometry.world_to_index(centre, ras=True)
        lo = np.maximum(np.floor(c).astype(int) - half, 0)
        hi = np.minimum(np.floor(c).astype(int) + half + 1, image.shape)
        if np.any(hi <= lo):
            continue
        idx = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)],
                                   indexing="ij"), -1).reshape(-1, 3)
        w = geometry.index_to_world(idx, ras=True) - centre
        out[tuple(idx.T)] += (peak * np.exp(-(w**2).sum(1) / (2 * sigma_mm**2))).astype(np.float32)
    return out


def cue_exams(exams: list, dst: Path, args) -> list:
    """Copies of prepared ``exams`` under ``dst`` with the dots (cached per exam)."""
    from gdsynth.io import read_image, write_image, write_tsv

    out = []
    for exam in exams:
        folder = dst / exam.id
        paths = dict(exam.paths)
        for seq in (*PRE, "T1w_gd"):
            paths[seq] = folder / Path(exam.paths[seq]).name
        if not (folder / ".done").is_file():
            if folder.exists():
                shutil.rmtree(folder)
            folder.mkdir(parents=True)
            ex = rc.load_eval_exam(exam)
            dots = dot_positions(exam, ex, args.offset_mm)
            write_tsv(dst / f"{exam.id}_cue.tsv", dots, ("label", "direction", "x", "y", "z"))
            for seq in (*PRE, "T1w_gd"):
                img, g = read_image(exam.paths[seq])
                ref = "T1w" if seq == "T1w_gd" else seq  # same dot on pre and post T1w
                peak = args.amplitude * float(np.median(ex.images[ref][ex.brain]))
                write_image(paths[seq], add_dots(img, g, dots, args.sigma_mm, peak), g)
            (folder / ".done").write_text("cued\n")
        out.append(replace(exam, paths=paths))
    return out


# --------------------------------------------------------------------------- models and analysis

def train(exams: list, work: Path, name: str, args):
    from gdsynth.models.folder import load_model_folder
    from gdsynth.training.config import apply_overrides, load_config
    from gdsynth.training.run import train_run

    run = work / f"model-{name}"
    if not (run / "model" / "model_card.json").is_file():
        if run.exists():
            shutil.rmtree(run)
        overrides = {"trainer.tracker": "none"}
        if args.steps:
            overrides["trainer.max_steps"] = args.steps
        cfg = apply_overrides(load_config(args.config), **overrides)
        start = time.perf_counter()
        train_run(exams, run, cfg)
        print(f"trained {name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return load_model_folder(run / "model")


def dot_measure(cue_root: Path, radius_mm: float):
    """``extra`` callback of :func:`explain_lesions`: relevance near the lesion's dot."""
    from gdsynth.io import read_tsv

    cache: dict[str, list[dict]] = {}

    def extra(exam, ex, mask, active, info, full):
        if exam.id not in cache:
            path = cue_root / f"{exam.id}_cue.tsv"
            cache[exam.id] = read_tsv(path) if path.is_file() else []
        label = int(float(info.get("label", -1)))
        dots = [d for d in cache[exam.id] if active and int(float(d["label"])) == label]
        if not dots:
            return {"has_dot": False}
        d = dots[0]
        idx = ex.geometry.world_to_index(np.array([float(d["x"]), float(d["y"]), float(d["z"])]),
                                         ras=True)
        grid = np.indices(mask.shape).reshape(3, -1).T
        dist = np.sqrt((((grid - idx) * np.asarray(ex.geometry.spacing)) ** 2).sum(1))
        near = (dist.reshape(mask.shape) <= radius_mm) & ~mask
        r = full.sum(0)
        absr = np.abs(full).sum(0)
        total = float(absr.sum()) or 1.0
        return {"has_dot": True, "dot_abs_share": float(absr[near].sum()) / total,
                "lesion_abs_share": float(absr[mask].sum()) / total,
                "dot_pos": float(np.clip(r[near], 0, None).sum()),
                "lesion_pos": float(np.clip(r[mask], 0, None).sum()),
                "dot_signed": float(r[near].sum()), "lesion_signed": float(r[mask].sum())}

    return extra


def cue_effect(generator, card, clean: list, cued: list) -> tuple[np.ndarray, np.ndarray]:
    """Behavioural check: each active test lesion's explained enhancement (sum over the lesion)
    with the dots and without them (same exams)."""
    import torch

    from gdsynth.explain.attribution import make_forward, slab_of

    with_dot, without = [], []
    for a, b in zip(clean, cued, strict=True):
        ea, eb = rc.load_eval_exam(a, card.inputs), rc.load_eval_exam(b, card.inputs)
        for mask, active, _ in truth_lesions(b, eb, 0):
            if not active:
                continue
            fwd, region = make_forward(generator, mask, mode=card.mode, context=card.context_slices,
                                       residual=card.residual, t1w_index=0)
            with torch.no_grad():
                for ex, out in ((eb, with_dot), (ea, without)):
                    vol = np.stack([ex.images[s] for s in card.inputs])
                    out.append(float(fwd(slab_of(vol, region))[0]))
    return np.array(with_dot), np.array(without)


def summarize(name: str, patterns, clusters) -> list[str]:
    dotted = [p for p in patterns if p.info.get("has_dot")]
    lines = [f"### Model trained {name}", ""]
    if dotted:
        dot_share = np.array([p.info["dot_abs_share"] for p in dotted])
        les_share = np.array([p.info["lesion_abs_share"] for p in dotted])
        dot_pos = np.array([p.info["dot_pos"] for p in dotted])
        les_pos = np.array([p.info["lesion_pos"] for p in dotted])
        dot_sig = np.array([p.info["dot_signed"] for p in dotted])
        out = np.array([p.output for p in dotted])
        lines += [
            f"* {len(dotted)} active test lesions with a dot: share of |R| within the dot ball: "
            f"median {np.median(dot_share):.3f} (in the lesion: {np.median(les_share):.3f});",
            f"* positive R at the dot > in the lesion for {int((dot_pos > les_pos).sum())}/"
            f"{len(dotted)} lesions; cohort Σ positive R at the dot / in the lesion "
            f"{dot_pos.sum() / max(les_pos.sum(), 1e-9):.2f}; signed R at the dot: median "
            f"{np.median(dot_sig):+.3f};",
            f"* mean explained enhancement (sum over the lesion) {out.mean():.2f}.",
        ]
    lines += ["", *cluster_markdown(clusters, PRE, ("kind", "enhancement", "halo_strength")), ""]
    for c in clusters:
        members = [m for m in c.members if m.info.get("has_dot")]
        share = np.mean([m.info["dot_abs_share"] for m in members]) if members else float("nan")
        lines.append(f"* cluster {c.id}: {len(members)}/{c.n} lesions with a dot; mean share of "
                     f"|R| near the dot {share:.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gdsynth.explain.patterns import cluster_patterns
    from gdsynth.io import atomic_write_text
    from gdsynth.io.bids import discover
    from gdsynth.review.patterns import write_pattern_page

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    clean_bids = args.train_bids or training_phantom(args)
    train_subs = most_active(clean_bids, args.train_exams)
    test_subs = sorted({f"sub-{e.subject}" for e in discover(args.test_bids)})[: args.test_exams]
    clean = prep_subjects(clean_bids, train_subs, own_prep(clean_bids, work, "clean"))
    cued = cue_exams(clean, work / "cued-train", args)
    test_clean = prep_subjects(args.test_bids, test_subs, own_prep(args.test_bids, work, "test"))
    test = cue_exams(test_clean, work / "cued-test", args)
    if args.stage == "data":
        return 0
    models = {}
    if args.stage == "train-cue" or (args.stage == "all" and args.models != "clean"):
        models["with the cue"] = train(cued, work, "cue", args)
    if args.stage == "train-clean" or (args.stage == "all" and args.models != "cue"):
        models["without the cue"] = train(clean, work, "clean", args)
    if args.stage != "all":
        return 0
    lines = [f"# Clever-Hans check ({len(test)} cued test exams of {args.test_bids.name}; "
             f"{len(clean)} training exams; dot {args.offset_mm:g} mm from each active lesion, "
             f"σ {args.sigma_mm:g} mm, peak {args.amplitude:g} × median brain intensity; dot "
             f"ball {args.dot_radius_mm:g} mm)", ""]
    for name, (generator, card) in models.items():
        generator.eval()
        start = time.perf_counter()
        if args.effect_only:
            dot, nodot = cue_effect(generator, card, test_clean, test)
            lines += [f"### Model trained {name}: behaviour", "",
                      f"* {len(dot)} active test lesions: explained enhancement (sum over the "
                      f"lesion) with the dots mean {dot.mean():.2f}, without {nodot.mean():.2f}; "
                      f"removing the dot lowers it for {int((nodot < dot).sum())}/{len(dot)} "
                      f"lesions, by {np.mean(dot - nodot):.2f} on average "
                      f"({np.mean((dot - nodot) / np.maximum(np.abs(dot), 1e-9)):.0%} of it)", ""]
            continue
        patterns, _ = explain_lesions(generator, card, test, max_chronic=args.max_chronic,
                                      extra=dot_measure(work / "cued-test", args.dot_radius_mm))
        clusters, info = cluster_patterns(patterns)
        tag = "cue" if "with the" in name else "clean"
        write_pattern_page(work / f"patterns-{tag}", patterns, clusters, card.inputs,
                           clustering=info, title=f"Clever-Hans check: model trained {name}",
                           describe=(*CAUSES, "has_dot", "dot_abs_share"))
        lines += summarize(name, patterns, clusters)
        lines += [f"* explained {len(patterns)} lesions in {time.perf_counter() - start:.0f} s", ""]
    text = "\n".join(lines) + "\n"
    suffix = ("" if args.models == "both" else f"-{args.models}") + ("-effect" if args.effect_only else "")
    atomic_write_text(work / f"clever_hans{suffix}.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
