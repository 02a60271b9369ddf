#!/usr/bin/env python
"""Clever-Hans check: do the relevance maps reveal a spurious cue that predicts activity?

A phantom cohort gets, post hoc, a faint bright dot ``--offset-mm`` (10 mm) from the centre of
every *active* lesion (none near chronic ones), in the pre-contrast T1w, T2w and FLAIR — and,
with the T1w's amplitude, in the post-Gd T1w, so the target enhancement (post − pre) is unchanged
at the dot: the dot only *predicts* activity, like an artefact that happens to co-occur with it.
The dot sits along the +x axis of the world (RAS: to the subject's left) when that point is in
the brain and away from other lesions, else along −x, +y or −y (recorded per lesion in
``derivatives/cue/<sub>_cue.tsv``). Two small models are trained with the same recipe
(``experiments/clever_hans.yaml``, 2 mm): one on the cued cohort, one on the clean one. Both are
then explained by LRP on the truth lesions of a cued test cohort (by default the first exams of
the unseen site C, copied and cued the same way), and the relevance is measured

* in the lesion, and within ``--dot-radius-mm`` (4 mm) of the dot (active lesions);
* by spectral relevance analysis (:mod:`gdsynth.explain.patterns`): per cluster the mean share of
  |relevance| near the dot, so a cluster "made of the dot" shows up.

The cue is revealed when, for the cued model, the positive relevance near the dot exceeds that in
the lesion (most of the evidence for enhancement is outside the lesion, at the dot), and not for the
clean model. Everything is cached under WORK (phantom, cued copies, prepared exams, models).

    python experiments/clever_hans.py --work /work/cache/lrp/ch --steps 800
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import research_common as rc  # noqa: E402
from relevance_patterns import CAUSES, cluster_markdown, explain_lesions  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PRE = ("T1w", "T2w", "FLAIR")
DIRECTIONS = ((1, 0, 0), (-1, 0, 0), (0, 1, 0), (0, -1, 0))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--subjects", type=int, default=16, help="training phantom subjects (A+B)")
    p.add_argument("--seed", type=int, default=2100)
    p.add_argument("--resolution", type=float, default=2.0)
    p.add_argument("--test-bids", type=Path, default=Path("/work/cache/cohorts/siteC-2mm"),
                   help="clean test cohort (read only; its first --test-exams exams are copied "
                        "and cued); generated under WORK when absent")
    p.add_argument("--test-exams", type=int, default=12)
    p.add_argument("--config", type=Path, default=ROOT / "experiments" / "clever_hans.yaml")
    p.add_argument("--steps", type=int, default=None, help="training steps (default: recipe)")
    p.add_argument("--offset-mm", type=float, default=10.0)
    p.add_argument("--sigma-mm", type=float, default=1.5, help="dot Gaussian sigma")
    p.add_argument("--amplitude", type=float, default=0.4,
                   help="dot peak, fraction of each image's median brain intensity")
    p.add_argument("--dot-radius-mm", type=float, default=4.0)
    p.add_argument("--max-chronic", type=int, default=6, help="chronic lesions per test exam")
    p.add_argument("--stage", choices=("all", "data", "train"), default="all")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- the cue transform

def _lesion_rows(bids: Path, sub: str) -> list[dict]:
    from gdsynth.io import read_tsv

    table = bids / "derivatives" / "phantom" / sub / "anat" / f"{sub}_lesions.tsv"
    return read_tsv(table) if table.is_file() else []


def dot_positions(bids: Path, sub: str, offset_mm: float) -> list[dict]:
    """World (RAS) positions of the dots of one subject's active lesions (see module doc)."""
    from gdsynth.io import read_image

    rows = _lesion_rows(bids, sub)
    anat = bids / "derivatives" / "phantom" / sub / "anat"
    brain, bg = read_image(anat / f"{sub}_desc-brain_mask.nii.gz", allow_constant=True)
    lesions, lg = read_image(anat / f"{sub}_label-L_desc-all_mask.nii.gz", allow_constant=True)
    from scipy.ndimage import binary_dilation

    near = binary_dilation(lesions > 0, iterations=2)
    out = []
    for r in rows:
        if r.get("kind") != "active":
            continue
        centre = np.array([float(r["centre_x"]), float(r["centre_y"]), float(r["centre_z"])])
        for d in DIRECTIONS:
            pos = centre + offset_mm * np.asarray(d, float)
            i = np.rint(bg.world_to_index(pos, ras=True)).astype(int)
            j = np.rint(lg.world_to_index(pos, ras=True)).astype(int)
            inside = all(0 <= a < s for a, s in zip(i, brain.shape, strict=True)) and \
                all(0 <= a < s for a, s in zip(j, lesions.shape, strict=True))
            if inside and brain[tuple(i)] > 0 and not near[tuple(j)]:
                out.append({"label": int(float(r["label"])), "direction": "xyz"[int(np.argmax(np.abs(d)))]
                            + ("+" if sum(d) > 0 else "-"), "x": pos[0], "y": pos[1], "z": pos[2]})
                break
    return out


def add_dots(image: np.ndarray, geometry, dots: list[dict], sigma_mm: float, peak: float
             ) -> np.ndarray:
    """``image`` plus a Gaussian of height ``peak`` at each dot (world RAS)."""
    out = image.astype(np.float32, copy=True)
    half = int(np.ceil(3 * sigma_mm / min(geometry.spacing))) + 1
    for d in dots:
        c = geometry.world_to_index(np.array([d["x"], d["y"], d["z"]]), ras=True)
        lo = np.maximum(np.floor(c).astype(int) - half, 0)
        hi = np.minimum(np.floor(c).astype(int) + half + 1, image.shape)
        if np.any(hi <= lo):
            continue
        idx = np.stack(np.meshgrid(*[np.arange(a, b) for a, b in zip(lo, hi, strict=True)],
                                   indexing="ij"), -1).reshape(-1, 3)
        w = geometry.index_to_world(idx, ras=True) - np.array([d["x"], d["y"], d["z"]])
        g = peak * np.exp(-(w**2).sum(1) / (2 * sigma_mm**2))
        out[tuple(idx.T)] += g.astype(np.float32)
    return out


def cue_dataset(src: Path, dst: Path, subjects: list[str], args) -> Path:
    """Copy ``subjects`` of ``src`` (images, phantom truth) to ``dst`` with the dots added."""
    from gdsynth.io import read_image, write_image, write_tsv

    if (dst / ".done").is_file():
        return dst
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in ("dataset_description.json", "participants.tsv", "participants.json", "README"):
        if (src / f).is_file():
            shutil.copy2(src / f, dst / f)
    for sub in subjects:
        shutil.copytree(src / sub, dst / sub)
        shutil.copytree(src / "derivatives" / "phantom" / sub, dst / "derivatives" / "phantom" / sub)
        dots = dot_positions(src, sub, args.offset_mm)
        write_tsv(dst / "derivatives" / "cue" / f"{sub}_cue.tsv", dots,
                  ("label", "direction", "x", "y", "z"))
        anat = dst / sub / "anat"
        brain, _ = read_image(src / "derivatives" / "phantom" / sub / "anat"
                              / f"{sub}_desc-brain_mask.nii.gz", allow_constant=True)
        t1_peak = None
        for seq in (*PRE, "ce-gadolinium_T1w"):
            name = f"{sub}_{seq}.nii.gz"
            img, g = read_image(anat / name)
            if seq == "ce-gadolinium_T1w":
                peak = t1_peak  # the same dot as on the pre-contrast T1w: no change of post − pre
            else:
                vals = img[img > np.percentile(img, 60)]  # roughly the brain, whatever the grid
                peak = args.amplitude * float(np.median(vals))
                if seq == "T1w":
                    t1_peak = peak
            write_image(anat / name, add_dots(img, g, dots, args.sigma_mm, peak), g)
    (dst / ".done").write_text("cued\n")
    return dst


def subset(src: Path, dst: Path, subjects: list[str]) -> Path:
    """A clean copy of ``subjects`` of ``src`` (so both models see the same exams)."""
    if (dst / ".done").is_file():
        return dst
    if dst.exists():
        shutil.rmtree(dst)
    dst.mkdir(parents=True)
    for f in ("dataset_description.json", "participants.tsv", "participants.json", "README"):
        if (src / f).is_file():
            shutil.copy2(src / f, dst / f)
    for sub in subjects:
        shutil.copytree(src / sub, dst / sub)
        shutil.copytree(src / "derivatives" / "phantom" / sub, dst / "derivatives" / "phantom" / sub)
    (dst / ".done").write_text("subset\n")
    return dst


# --------------------------------------------------------------------------- models and analysis

def train(bids: Path, work: Path, name: str, args):
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
        exams = rc.prepared_exams(bids, work / f"prep-{name}", cfg.data.inputs)
        start = time.perf_counter()
        train_run(exams, run, cfg)
        print(f"trained {name} in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    return load_model_folder(run / "model")


def dot_measure(cue_root: Path, radius_mm: float):
    """``extra`` callback of :func:`explain_lesions`: relevance near the lesion's dot."""
    from gdsynth.io import read_tsv

    cache: dict[str, list[dict]] = {}

    def extra(exam, ex, mask, active, info, full):
        sub = exam.id.split("_")[0]
        if sub not in cache:
            path = cue_root / "derivatives" / "cue" / f"{sub}_cue.tsv"
            cache[sub] = read_tsv(path) if path.is_file() else []
        dots = [d for d in cache[sub] if active and int(float(d["label"])) == int(float(info.get("label", -1)))]
        if not dots:
            return {"has_dot": False}
        d = dots[0]
        c = ex.geometry.index_to_world(np.zeros((1, 3)), ras=True)  # noqa: F841 - grid check
        idx = ex.geometry.world_to_index(np.array([float(d["x"]), float(d["y"]), float(d["z"])]),
                                         ras=True)
        grid = np.indices(mask.shape).reshape(3, -1).T
        dist = np.sqrt((((grid - idx) * np.asarray(ex.geometry.spacing)) ** 2).sum(1)).reshape(mask.shape)
        near = (dist <= radius_mm) & ~mask
        r = full.sum(0)
        absr = np.abs(full).sum(0)
        total = float(absr.sum()) or 1.0
        return {"has_dot": True, "dot_abs_share": float(absr[near].sum()) / total,
                "lesion_abs_share": float(absr[mask].sum()) / total,
                "dot_pos": float(np.clip(r[near], 0, None).sum()),
                "lesion_pos": float(np.clip(r[mask], 0, None).sum()),
                "dot_signed": float(r[near].sum()), "lesion_signed": float(r[mask].sum())}

    return extra


def summarize(name: str, patterns, clusters) -> list[str]:
    dotted = [p for p in patterns if p.info.get("has_dot")]
    lines = [f"### model trained {name}", ""]
    if dotted:
        dot_share = np.array([p.info["dot_abs_share"] for p in dotted])
        les_share = np.array([p.info["lesion_abs_share"] for p in dotted])
        dot_pos = np.array([p.info["dot_pos"] for p in dotted])
        les_pos = np.array([p.info["lesion_pos"] for p in dotted])
        out = np.array([p.output for p in dotted])
        lines += [
            f"* {len(dotted)} active lesions with a dot: share of |R| within the dot ball "
            f"median {np.median(dot_share):.3f} (lesion {np.median(les_share):.3f}); positive R "
            f"at the dot > in the lesion for {int((dot_pos > les_pos).sum())}/{len(dotted)}; "
            f"Σ positive R dot / lesion (cohort) {dot_pos.sum() / max(les_pos.sum(), 1e-9):.2f}; "
            f"mean explained enhancement (sum over the lesion) {out.mean():.2f}",
        ]
    lines += ["", *cluster_markdown(clusters, ("T1w", "T2w", "FLAIR"), ("kind", "enhancement",
                                                                       "halo_strength")), ""]
    for c in clusters:
        members = [m for m in c.members if m.info.get("has_dot")]
        if members:
            lines.append(f"* cluster {c.id}: {len(members)}/{c.n} lesions with a dot, mean share "
                         f"of |R| near the dot {np.mean([m.info['dot_abs_share'] for m in members]):.3f}")
    return lines


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gdsynth.explain.patterns import cluster_patterns
    from gdsynth.io import atomic_write_text
    from gdsynth.io.bids import discover
    from gdsynth.review.patterns import write_pattern_page

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    phantom = rc.phantom_cohort(work, args.subjects, args.seed, args.resolution, ("siteA", "siteB"))
    train_subs = sorted({f"sub-{e.subject}" for e in discover(phantom)})
    clean_train = phantom
    cued_train = cue_dataset(phantom, work / "train-cue", train_subs, args)
    test_src = args.test_bids if (args.test_bids / "dataset_description.json").is_file() else \
        rc.phantom_cohort(work, args.test_exams, args.seed + 1000, args.resolution, ("siteC",))
    test_subs = sorted({f"sub-{e.subject}" for e in discover(test_src)})[: args.test_exams]
    cued_test = cue_dataset(test_src, work / "test-cue", test_subs, args)
    if args.stage == "data":
        return 0
    models = {"with the cue": train(cued_train, work, "cue", args),
              "without the cue": train(clean_train, work, "clean", args)}
    if args.stage == "train":
        return 0
    test_exams = rc.prepared_exams(cued_test, work / "prep-test-cue")
    lines = [f"# Clever-Hans check ({len(test_exams)} cued test exams of {test_src.name}; "
             f"dot {args.offset_mm:g} mm from each active lesion, σ {args.sigma_mm:g} mm, "
             f"peak {args.amplitude:g} × median brain intensity; dot ball {args.dot_radius_mm:g} mm)",
             ""]
    for name, (generator, card) in models.items():
        generator.eval()
        start = time.perf_counter()
        patterns, _ = explain_lesions(generator, card, test_exams, max_chronic=args.max_chronic,
                                      extra=dot_measure(cued_test, args.dot_radius_mm))
        clusters, info = cluster_patterns(patterns)
        tag = "cue" if "with the" in name else "clean"
        write_pattern_page(work / f"patterns-{tag}", patterns, clusters, card.inputs,
                           clustering=info, title=f"Clever-Hans check: model trained {name}",
                           describe=(*CAUSES, "has_dot", "dot_abs_share"))
        lines += summarize(name, patterns, clusters)
        lines.append(f"* explained {len(patterns)} lesions in {time.perf_counter() - start:.0f} s")
        lines.append("")
    text = "\n".join(lines) + "\n"
    atomic_write_text(work / "clever_hans.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
