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

The phantom (``--appearance``, :data:`APPEARANCES`) draws active and chronic lesions alike on the
pre-contrast images, so that the dot, not the lesion, is what tells which lesion will enhance
(``standard``: the default phantom, where the lesion's own halo and border already do; the dot
then adds nothing, and an earlier run showed the model ignoring it). Every generated exam has
>= 1 active lesion; the first ``--subjects`` train, the next ``--test-exams`` are held out.

``--appearance inserted`` (the design that works): the training exams have no lesions; the
library's lesion insertion (:mod:`gdsynth.data.insertion`, a variant this script registers with
``register_insertion``) pastes lesions into them every time an exam is loaded, each drawn as an
active lesion of the ``lookalike`` phantom, half of them then made inactive *twins* (the same draw
without gadolinium), lesion-centred patches on both kinds, and the dot beside each active one for
the cued model. Nothing can be memorized and nothing but the dot tells the kinds apart; the held-out
exams are ``--test-exams`` subjects of the ``lookalike`` phantom (seed ``--seed`` + 1), dotted as
above. (With fixed phantom lesions the models learn which *training* lesions enhance instead.)

Two small models are trained with one recipe (``experiments/clever_hans.yaml``, 2 mm, L1 only) on
the same exams, one with the dots and one without, to each of ``--budgets`` steps in turn (the
run is resumed). At each budget the behaviour is measured on the held-out exams: each lesion's
mean synthetic enhancement with the dots and without them, and how well it separates active from
chronic lesions (AUC). The budgets stop once removing the dots takes ``--enough`` of the cued
model's enhancement at active lesions; at the last budget trained both models are explained by
LRP on the held-out lesions (cued) and the relevance is measured

* in the lesion, within ``--dot-radius-mm`` (4 mm) of the dot and elsewhere (active lesions);
* by spectral relevance analysis (:mod:`gdsynth.explain.patterns`) twice: as ``gdsynth explain
  --patterns`` does by default (whole maps, window scaled to the lesion), and on the lesions'
  *context* (``--pattern-region context --pattern-align mm``: only the relevance beyond
  ``--shell-mm`` of the lesion, in a fixed ±15 mm window, so that a dot 10 mm away lands on the
  same pixels whatever the lesion's size): per cluster the number of dotted lesions and the share
  of |relevance| near the dot, so a cluster "made of the dot" shows up.

The cue is revealed when, for the cued model, the positive relevance near the dot exceeds that in
the lesion, and not for the clean model. Writes ``WORK/clever_hans-behaviour.md``,
``WORK/clever_hans.md``, the pattern pages ``WORK/patterns-{cue,clean}{,-context}/`` and
``WORK/clever_hans_clusters.png`` (each model's most dotted context cluster side by side: the
figure of docs/explain.md); everything is cached under WORK.

    python experiments/clever_hans.py --work /work/cache/hans/ch6
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from dataclasses import dataclass, replace
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
    p.add_argument("--appearance", choices=("alike", "lookalike", "inserted", "standard"),
                   default="lookalike",
                   help="alike, lookalike: active and chronic lesions look alike before contrast "
                        "(APPEARANCES), so only the dot predicts activity; inserted: lesions "
                        "pasted afresh into lesion-free training exams every time an exam is "
                        "loaded (nothing to memorize), the inactive ones twins of active ones "
                        "without gadolinium (nothing but the dot to learn from); standard: the "
                        "default phantom (sites A+B), where the lesions' own look already does")
    p.add_argument("--inserted-lesions", type=int, default=6,
                   help="inserted: lesions per loaded training exam (1..N, half of them active)")
    p.add_argument("--train-bids", type=Path, default=None,
                   help="clean training cohort (read only); default: a phantom of --subjects "
                        "subjects generated under WORK")
    p.add_argument("--train-exams", type=int, default=12,
                   help="training subjects, those with the most active lesions first")
    p.add_argument("--subjects", type=int, default=12, help="generated training subjects")
    p.add_argument("--active-fraction", type=float, default=1.0,
                   help="of the generated phantom (every exam with >= 1 active lesion)")
    p.add_argument("--seed", type=int, default=2100)
    p.add_argument("--resolution", type=float, default=2.0)
    p.add_argument("--test-bids", type=Path, default=None,
                   help="clean test cohort (read only; prepared exams reused when complete); "
                        "default: --test-exams more subjects of the generated phantom (held out)")
    p.add_argument("--test-exams", type=int, default=6)
    p.add_argument("--config", type=Path, default=ROOT / "experiments" / "clever_hans.yaml")
    p.add_argument("--budgets", default="1600,3200",
                   help="training steps, increasing: each model is trained on to the next budget "
                        "(resumed) and its behaviour measured, until the cue effect reaches "
                        "--enough; the relevance analysis runs at the last budget trained")
    p.add_argument("--enough", type=float, default=0.5,
                   help="stop once removing the dots lowers the cued model's mean enhancement at "
                        "active test lesions by this share")
    p.add_argument("--offset-mm", type=float, default=10.0)
    p.add_argument("--sigma-mm", type=float, default=2.5,
                   help="dot Gaussian sigma (2.5 mm: seen on the 2.5D input's slices through most "
                        "of the lesion)")
    p.add_argument("--amplitude", type=float, default=0.6,
                   help="dot peak, fraction of each image's median brain intensity")
    p.add_argument("--dot-radius-mm", type=float, default=4.0)
    p.add_argument("--max-chronic", type=int, default=6, help="chronic lesions per test exam")
    p.add_argument("--shell-mm", type=float, default=3.0,
                   help="context analysis: relevance within this distance of the lesion left out")
    p.add_argument("--effect-only", action="store_true",
                   help="only the behavioural check (no relevance analysis)")
    p.add_argument("--stage", default="all", choices=("all", "data"),
                   help="data: generate, prepare and cue the exams only")
    return p.parse_args(argv)


# --------------------------------------------------------------------------- data and the cue

#: Phantoms of the check where active and chronic lesions look alike on the pre-contrast images,
#: so that only the dot tells which lesion enhances (``--appearance``): no look-alike halos or
#: black holes and one diameter range; no motion and no bias field, so the exams are prepared
#: without registration or N4 (what the CPU time of this check allows).
#:
#: * ``alike``: the perivenular lesion model (site ``siteAltLesion``): active lesions without an
#:   oedema halo, chronic-like borders and T1/T2 changes; faint, patchy enhancement.
#: * ``lookalike``: the standard lesion model (site A) with every chronic lesion a look-alike (an
#:   active-like halo and ill-defined border) and a stronger gadolinium range (0.3-0.6 mM instead
#:   of 0.05-0.3), so the lesion term of the loss is larger.
NO_MOTION = {"blackhole_fraction": 0.0, "diameter_mm": (4.0, 15.0), "motion_max_deg": 0.0,
             "motion_max_mm": 0.0, "bias_scale": 0.0}
APPEARANCES = {
    "alike": ({**NO_MOTION, "lookalike_fraction": 0.0}, ["siteAltLesion"]),
    "lookalike": ({**NO_MOTION, "lookalike_fraction": 1.0, "gd_lesion_mm": (0.3, 0.6)}, ["siteA"]),
    # training exams without lesions; lesions are inserted while training (cued_insertion)
    "inserted": ({**NO_MOTION, "chronic_lesions": (0, 0)}, ["siteA"]),
}
ALIKE = APPEARANCES["alike"][0]
ALIKE_SITES = APPEARANCES["alike"][1]
ALIKE_PREP = {"register": False, "n4": False}


def training_phantom(args) -> Path:
    """The generated phantom (training exams, then ``--test-exams`` held-out ones when alike;
    ``inserted``: training exams only, without lesions)."""
    inserted = args.appearance == "inserted"
    alike = args.appearance in APPEARANCES and not inserted
    n = args.subjects + (args.test_exams if alike and args.test_bids is None else 0)
    return generated_phantom(args, args.appearance, n, args.seed,
                             0.0 if inserted else args.active_fraction)


def generated_phantom(args, appearance: str, n: int, seed: int, active_fraction: float) -> Path:
    """A phantom of ``n`` subjects drawn as ``appearance`` says (cached under WORK)."""
    from gdsynth.phantom import PhantomConfig, generate_dataset

    fields, sites = APPEARANCES.get(appearance, ({}, ["siteA", "siteB"]))
    bids = args.work / (f"phantom-{appearance}-n{n}-s{seed}-r{args.resolution:g}-"
                        + "+".join(sites))
    if not (bids / "dataset_description.json").is_file():
        generate_dataset(bids, subjects=n, seed=seed, resolution=args.resolution,
                         active_fraction=active_fraction, sites=sites,
                         config=PhantomConfig(**fields))
    return bids


def most_active(bids: Path, n: int) -> list[str]:
    """The ``n`` subjects with the most active lesions (participants.tsv), most first, ties by
    name."""
    from gdsynth.io import read_tsv

    rows = read_tsv(bids / "participants.tsv")
    rows.sort(key=lambda r: (-int(float(r.get("n_active_lesions") or 0)), r["participant_id"]))
    return [r["participant_id"] for r in rows[:n]]


def prep_subjects(bids: Path, subjects: list[str], prep_root: Path | None,
                  prep_config: dict | None = None) -> list:
    """Prepared ``TrainingExam`` of ``subjects`` (``prep_root`` None: the cohort's own prepared
    exams, only for a complete cohort, ``.done``, so nothing is written there)."""
    from gdsynth.io.bids import discover
    from gdsynth.training.cohort import prepare_cohort

    exams = [e for e in discover(bids) if f"sub-{e.subject}" in subjects and e.t1w_gd is not None]
    training, outcomes = prepare_cohort(bids, exams, prep_root=prep_root, progress=False,
                                          prep_config=prep_config)
    for o in outcomes:
        if o.status == "failed":
            print(f"preparation failed for {o.case}: {o.error}", file=sys.stderr)
    return training


def own_prep(bids: Path, work: Path, name: str) -> Path | None:
    shared = bids / "derivatives" / "gdsynth-prep"
    return None if (bids / ".done").is_file() and shared.is_dir() else work / f"prep-{name}"


def _truth_rows(exam) -> list[dict]:
    from gdsynth.io import read_tsv

    table = Path(str(exam.truth).replace("_label-L_desc-enhancing_dseg.nii.gz", "_lesions.tsv")
                 .replace("_desc-enhancing_dseg.nii.gz", "_lesions.tsv"))
    return read_tsv(table) if table.is_file() else []


def free_voxel(i: np.ndarray, brain: np.ndarray, near: np.ndarray) -> bool:
    """Can a dot go at voxel ``i``: inside the grid, in ``brain``, not in ``near`` (lesions)?"""
    inside = all(0 <= a < n for a, n in zip(i, brain.shape, strict=True))
    return inside and bool(brain[tuple(i)]) and not near[tuple(i)]


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
            if free_voxel(i, ex.brain, near):
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


def dot_indices(centre_index: np.ndarray, spacing, offset_mm: float, brain: np.ndarray,
                near: np.ndarray) -> np.ndarray | None:
    """Voxel index of a lesion's dot: the first of +x, −x, +y, −y (array axes) at ``offset_mm``
    from ``centre_index`` that is in ``brain`` and not in ``near`` (other lesions); None if none."""
    for d in DIRECTIONS:
        i = np.rint(centre_index + offset_mm * np.asarray(d, float) / np.asarray(spacing))
        if free_voxel(i.astype(int), brain, near):
            return i.astype(int)
    return None


def cued_insertion(cue: bool, args):
    """A :class:`gdsynth.data.insertion.RandomLesionInsertion` for ``--appearance inserted``:
    lesions drawn as active ones (the ``lookalike`` phantom's lesion fields) pasted into each
    training exam every time it is loaded, half of them then made inactive *twins* (the same draw
    without gadolinium: no pre-contrast difference between the kinds at all), lesion-centred
    patches drawn on both kinds (``data.lesion_probability``); with ``cue``, each
    inserted active lesion gets the dot (``--offset-mm`` away, as in the test exams, and with the
    T1w's amplitude in the post-Gd T1w, so the target enhancement is unchanged at the dot)."""
    import torch
    from scipy.ndimage import binary_dilation

    from gdsynth.data.insertion import RandomLesionInsertion, local_geometry
    from gdsynth.data.subjects import ALL_LESIONS, BRAIN, SAMPLING, TARGET
    from gdsynth.phantom.config import PhantomConfig
    from gdsynth.phantom.lesions import Kind, Pattern

    fields = {k: v for k, v in APPEARANCES["lookalike"][0].items()
              if k in PhantomConfig.__dataclass_fields__}

    class CuedInsertion(RandomLesionInsertion):
        def __init__(self, **kwargs):
            kwargs["config"] = PhantomConfig(**fields)
            kwargs["max_lesions"] = args.inserted_lesions
            self.share_active = float(kwargs.pop("active_probability", 0.5))
            super().__init__(active_probability=1.0, **kwargs)
            self.drawn: list = []
            self.maps = None

        def draw_lesions(self, rng, centres, geometry):
            # every lesion is drawn as an active one; the inactive ones are its twins without
            # gadolinium, so that the two kinds cannot differ before contrast
            self.drawn = [les if rng.random() < self.share_active else
                          replace(les, kind=Kind.chronic, gd_mm=0.0, pattern=Pattern.none, label=0)
                          for les in super().draw_lesions(rng, centres, geometry)]
            return self.drawn

        def finish(self, subject, lesions, maps):
            self.maps = maps
            if SAMPLING in subject:
                # lesion-centred patches on every inserted lesion, the inactive twins too: with
                # patches on enhancing lesions only, the twins are rarely seen and "enhance every
                # lesion" is nearly the best answer, with or without the dot
                data = subject[SAMPLING].data.clone()
                data[torch.from_numpy(maps.all_mask > 0)[None] & (data > 0)] = 2
                subject[SAMPLING].set_data(data)
            active = [les for les in lesions if les.label > 0]
            if not cue or not active:
                return subject
            brain = subject[BRAIN].data[0].numpy() > 0
            spacing = subject[BRAIN].spacing
            geometry = local_geometry(brain.shape, spacing)
            # every lesion (the inserted ones and any already there), grown by 2 voxels as for
            # the test exams' dots (dot_positions)
            near = maps.all_mask > 0
            if ALL_LESIONS in subject:
                near = near | (subject[ALL_LESIONS].data[0].numpy() > 0)
            near = binary_dilation(near, iterations=2)
            dots = []
            for les in active:
                i = dot_indices(geometry.world_to_index(les.centre), spacing, args.offset_mm,
                                brain, near)
                if i is not None:
                    x, y, z = geometry.index_to_world(i.astype(float), ras=True)
                    dots.append({"x": x, "y": y, "z": z})
            peaks = {}
            for name in ("T1w", "T2w", "FLAIR"):
                if name in subject:
                    peaks[name] = args.amplitude * float(np.median(
                        subject[name].data[0].numpy()[brain]))
            peaks[TARGET] = peaks["T1w"]
            for name, peak in peaks.items():
                if name in subject:
                    img = subject[name].data[0].numpy()
                    out = add_dots(img, geometry, dots, args.sigma_mm, peak)
                    subject[name].set_data(torch.from_numpy(out[None]))
            return subject

    return CuedInsertion


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

def train(exams: list, work: Path, name: str, steps: int, args):
    """The model ``name`` after ``steps`` training steps: the run ``WORK/run-<name>`` is trained on
    (resumed) to ``steps`` and its export kept as ``WORK/model-<name>-<steps>`` (cached)."""
    from gdsynth.data.insertion import register_insertion
    from gdsynth.models.folder import load_model_folder
    from gdsynth.training.config import apply_overrides, apply_settings, load_config
    from gdsynth.training.run import RunOptions, last_checkpoint, train_run

    snap = work / f"model-{name}-{steps}"
    if not (snap / "model_card.json").is_file():
        run = work / f"run-{name}"
        resume = last_checkpoint(run).is_file()
        if run.exists() and not resume:
            shutil.rmtree(run)
        cfg = apply_overrides(load_config(args.config), **{
            "trainer.tracker": "none", "trainer.max_steps": steps, "trainer.max_time": None})
        if args.appearance == "inserted":
            kind = f"clever-hans-{name}"  # this process's insertion, registered for training
            register_insertion(kind, cued_insertion(name == "cue", args), replace=True)
            cfg = apply_settings(cfg, ["data.augment.lesion_insertion_p=1.0",
                                       "data.augment.lesion_insertion_active=0.5",
                                       "data.augment.lesion_insertion_phantom=true",
                                       f"data.augment.lesion_insertion_kind={kind}"])
        start = time.perf_counter()
        result = train_run(exams, run, cfg, RunOptions(resume=resume))
        print(f"trained {name} to step {result.steps} in {time.perf_counter() - start:.0f} s",
              file=sys.stderr)
        tmp = work / f".model-{name}-{steps}.tmp"
        if tmp.exists():
            shutil.rmtree(tmp)
        shutil.copytree(run / "model", tmp)
        tmp.rename(snap)
    return load_model_folder(snap)


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


@dataclass
class Behaviour:
    """Mean synthetic enhancement (normalized units) in each test lesion: active lesions with their
    dots and without them (same exams), chronic lesions (cued images: no dot near them)."""

    active_dot: np.ndarray
    active_nodot: np.ndarray
    chronic: np.ndarray

    @property
    def effect(self) -> float:
        """Share of the active lesions' mean enhancement that goes when the dots are removed."""
        return float((self.active_dot.mean() - self.active_nodot.mean())
                     / max(abs(self.active_dot.mean()), 1e-9))

    def auc(self, dots: bool) -> float:
        """Active vs chronic lesions by their enhancement (with or without the dots)."""
        from gdsynth.metrics.roc import roc_auc

        active = self.active_dot if dots else self.active_nodot
        y = np.r_[np.ones(len(active)), np.zeros(len(self.chronic))]
        return float(roc_auc(y, np.r_[active, self.chronic]))


def behaviour(generator, card, clean: list, cued: list, max_chronic: int) -> Behaviour:
    """Behavioural check: each test lesion's explained enhancement with and without the dots."""
    import torch

    from gdsynth.explain.attribution import make_forward, slab_of

    dot, nodot, chronic = [], [], []
    for a, b in zip(clean, cued, strict=True):
        ea, eb = rc.load_eval_exam(a, card.inputs), rc.load_eval_exam(b, card.inputs)
        for mask, active, _ in truth_lesions(b, eb, max_chronic):
            fwd, region = make_forward(generator, mask, mode=card.mode, context=card.context_slices,
                                       residual=card.residual, t1w_index=0)
            n = max(float(fwd.mask.sum()), 1.0)
            with torch.no_grad():
                for ex, out in ((eb, dot if active else chronic), (ea, nodot if active else None)):
                    if out is not None:
                        vol = np.stack([ex.images[s] for s in card.inputs])
                        out.append(float(fwd(slab_of(vol, region))[0]) / n)
    return Behaviour(np.array(dot), np.array(nodot), np.array(chronic))


BEHAVIOUR_HEADER = [
    "| steps | model | active lesions | enhancement with dots | without dots | removing the dots "
    "lowers it | AUC active vs chronic, with dots | without dots |",
    "|---|---|---|---|---|---|---|---|"]


def behaviour_row(steps: int, name: str, b: Behaviour) -> str:
    lowered = int((b.active_nodot < b.active_dot).sum())
    return (f"| {steps} | {name} | {len(b.active_dot)} (+{len(b.chronic)} chronic) | "
            f"{b.active_dot.mean():.3f} | {b.active_nodot.mean():.3f} | {b.effect:.0%} "
            f"({lowered}/{len(b.active_dot)} lesions) | {b.auc(True):.2f} | {b.auc(False):.2f} |")


def most_dotted(clusters):
    """The cluster with the largest share of dotted lesions (ties: the larger cluster)."""
    def share(c):
        return sum(bool(m.info.get("has_dot")) for m in c.members) / max(c.n, 1)

    return max(clusters, key=lambda c: (share(c), c.n)) if clusters else None


def cluster_figure(path: Path, panels: list[tuple[str, Path]]) -> Path:
    """The pattern pages' cluster mosaics side by side, each under its title."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.image as mpimg
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(panels), figsize=(5.6 * len(panels), 5.2))
    for ax, (title, png) in zip(np.atleast_1d(axes), panels, strict=True):
        ax.imshow(mpimg.imread(png))
        ax.set_title(title, fontsize=9)
        ax.axis("off")
    fig.tight_layout()
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path


def summarize(name: str, patterns, clusters, title: str = "") -> list[str]:
    dotted = [p for p in patterns if p.info.get("has_dot")]
    lines = [f"### Model trained {name}{title}", ""]
    if dotted:
        dot_share = np.array([p.info["dot_abs_share"] for p in dotted])
        les_share = np.array([p.info["lesion_abs_share"] for p in dotted])
        dot_pos = np.array([p.info["dot_pos"] for p in dotted])
        les_pos = np.array([p.info["lesion_pos"] for p in dotted])
        dot_sig = np.array([p.info["dot_signed"] for p in dotted])
        out = np.array([p.output for p in dotted])
        lines += [
            f"* {len(dotted)} active test lesions with a dot; share of |R| (mean, median): in the "
            f"lesion {les_share.mean():.3f}, {np.median(les_share):.3f}; within the dot ball "
            f"{dot_share.mean():.3f}, {np.median(dot_share):.3f}; elsewhere "
            f"{1 - les_share.mean() - dot_share.mean():.3f}, "
            f"{np.median(1 - les_share - dot_share):.3f};",
            f"* positive R at the dot > in the lesion for {int((dot_pos > les_pos).sum())}/"
            f"{len(dotted)} lesions; cohort Σ positive R at the dot / in the lesion "
            f"{dot_pos.sum() / max(les_pos.sum(), 1e-9):.2f}; signed R at the dot: median "
            f"{np.median(dot_sig):+.3f};",
            f"* mean explained enhancement (sum over the lesion) {out.mean():.2f}.",
        ]
    lines += ["", *cluster_markdown(clusters, PRE, ("kind", "enhancement", "halo_strength")), ""]
    shares = {}
    for c in clusters:
        members = [m for m in c.members if m.info.get("has_dot")]
        share = np.mean([m.info["dot_abs_share"] for m in members]) if members else 0.0
        beyond = np.mean([m.info["dot_abs_share"] / max(_beyond_shell(m), 1e-12)
                          for m in members]) if members else 0.0
        shares[c.id] = (len(members), share)
        lines.append(f"* cluster {c.id}: {c.n} lesions, {len(members)} with a dot; mean share of "
                     f"|R| near the dot (lesions with one) {share:.3f}, of |R| beyond 3 mm of "
                     f"the lesion {beyond:.3f}")
    best = most_dotted(clusters)
    if best is not None and shares[best.id][0]:
        n, share = shares[best.id]
        lines.append(f"* most dotted cluster: {best.id} ({best.n} lesions, {n} with a dot = "
                     f"{n / best.n:.0%}, {n} of the {len(dotted)} dotted lesions; mean |R| share "
                     f"near the dot {share:.3f})")
    return lines


def _beyond_shell(pattern) -> float:
    """Share of the lesion's |R| beyond 3 mm of it (the distance bands of the pattern)."""
    fr = pattern.band_fractions()
    return fr["shell_3_6mm"] + fr["elsewhere"]


def cohort_exams(args) -> tuple[list, list, list, list]:
    """Prepared training exams clean and cued, test exams clean and cued (cached under WORK)."""
    from gdsynth.io.bids import discover

    work = args.work
    generated = args.train_bids is None
    clean_bids = args.train_bids or training_phantom(args)
    alike = args.appearance in APPEARANCES
    prep = ALIKE_PREP if generated and alike else None
    subs = sorted({f"sub-{e.subject}" for e in discover(clean_bids)})
    if generated and args.test_bids is None and args.appearance == "inserted":
        # held out: lookalike lesions drawn by the phantom itself, as in --appearance lookalike
        pool, test_bids = subs, generated_phantom(args, "lookalike", args.test_exams,
                                                  args.seed + 1, args.active_fraction)
        test_subs = sorted({f"sub-{e.subject}" for e in discover(test_bids)})
    elif generated and args.test_bids is None and alike:
        pool, test_subs = subs[: args.subjects], subs[args.subjects:]
        test_bids = clean_bids
    else:
        if args.test_bids is None:
            raise SystemExit("--test-bids is needed with --appearance standard or --train-bids")
        pool, test_bids = subs, args.test_bids
        test_subs = sorted({f"sub-{e.subject}" for e in discover(test_bids)})[: args.test_exams]
    train_subs = [s for s in most_active(clean_bids, len(subs)) if s in pool][: args.train_exams]
    train_subs = sorted(train_subs)
    clean = prep_subjects(clean_bids, train_subs, own_prep(clean_bids, work, "clean"), prep)
    test_clean = prep_subjects(test_bids, test_subs, own_prep(test_bids, work, "test"),
                               prep if args.test_bids is None else None)
    # inserted: the training exams have no lesions; the cue comes with the inserted ones
    cued = clean if args.appearance == "inserted" else cue_exams(clean, work / "cued-train", args)
    return clean, cued, test_clean, cue_exams(test_clean, work / "cued-test", args)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    from gdsynth.explain.patterns import cluster_patterns
    from gdsynth.io import atomic_write_text
    from gdsynth.review.patterns import write_pattern_page

    work = args.work
    work.mkdir(parents=True, exist_ok=True)
    cohorts = cohort_exams(args)
    if args.stage == "data":
        return 0
    clean, cued, test_clean, test = cohorts
    budgets = sorted(int(b) for b in args.budgets.split(","))
    header = [f"# Clever-Hans check ({args.appearance} lesions; {len(clean)} training exams, "
              f"{len(test)} cued test exams; dot {args.offset_mm:g} mm from each active lesion, "
              f"σ {args.sigma_mm:g} mm, peak {args.amplitude:g} × median brain intensity; dot "
              f"ball {args.dot_radius_mm:g} mm)", "", "## Behaviour", "",
              "Mean synthetic enhancement (normalized units) in the test lesions; the two models "
              "are trained with one recipe on the same exams, with and without the dots.", "",
              *BEHAVIOUR_HEADER]
    rows: list[str] = []
    models = {}
    for steps in budgets:
        models = {"with the cue": train(cued, work, "cue", steps, args),
                  "without the cue": train(clean, work, "clean", steps, args)}
        effects = {}
        for name, (generator, card) in models.items():
            generator.eval()
            b = behaviour(generator, card, test_clean, test, args.max_chronic)
            effects[name] = b.effect
            rows.append(behaviour_row(steps, name, b))
            print(rows[-1], flush=True)
        atomic_write_text(work / "clever_hans-behaviour.md", "\n".join([*header, *rows]) + "\n")
        if effects["with the cue"] >= args.enough:
            break
    lines = [*header, *rows, "", f"Relevance analysis at {steps} steps.", ""]
    panels: list[tuple[str, Path]] = []
    for name, (generator, card) in models.items():
        if args.effect_only:
            break
        tag = "cue" if "with the" in name else "clean"
        for align, region, suffix, title in (
                ("lesion", "all", "", " — whole maps, window scaled to the lesion"),
                ("mm", "context", "-context",
                 f" — context: relevance beyond {args.shell_mm:g} mm of the lesion, ±15 mm window")):
            start = time.perf_counter()
            patterns, _ = explain_lesions(
                generator, card, test, max_chronic=args.max_chronic, alignment=align,
                extra=dot_measure(work / "cued-test", args.dot_radius_mm))
            clusters, info = cluster_patterns(patterns, region=region, shell_mm=args.shell_mm)
            write_pattern_page(work / f"patterns-{tag}{suffix}", patterns, clusters, card.inputs,
                               clustering=info, title=f"Clever-Hans check: model trained {name}",
                               describe=(*CAUSES, "has_dot", "dot_abs_share"))
            lines += summarize(name, patterns, clusters, title)
            lines += [f"* explained {len(patterns)} lesions in "
                      f"{time.perf_counter() - start:.0f} s", ""]
            best = most_dotted(clusters) if region == "context" else None
            if best is not None:
                dots = sum(bool(m.info.get("has_dot")) for m in best.members)
                panels.append((f"model trained {name}, {steps} steps: its most dotted context "
                               f"cluster\n({best.n} lesions, {dots} with a dot)",
                               work / f"patterns-{tag}{suffix}" / "img" / f"cluster-{best.id}.png"))
    if panels:
        cluster_figure(work / "clever_hans_clusters.png", panels)
    text = "\n".join(lines) + "\n"
    atomic_write_text(work / "clever_hans.md", text)
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
