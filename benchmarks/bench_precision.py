#!/usr/bin/env python
"""bf16 (autocast + channels-last) versus fp32, every ratio measured in one process.

* training: samples per CPU second of the bare D+G step (phantom recipe), fp32 and bf16
  interleaved ``repeats`` times (median ratio), and a short ``train_run`` of the same number of
  batches in each precision on phantom exams (one seed each): samples per CPU second of the whole
  run and the validation SSIM/MAE reached (validation itself runs in fp32);
* inference: one exam with 1 and ``mc`` MC-dropout samples, eager and compiled, in bf16 versus
  fp32 eager, and the generator's GFLOP/s versus the fp32 and bf16 matmul peaks of this process;
* agreement: the shipped model on phantom exams, synthetic maps bf16 vs fp32 (SSIM in the brain)
  and the detection outputs (lesion label maps, counts, patient probability).

    python benchmarks/bench_precision.py [--part training|inference|agreement] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from _common import ROOT, SHAPE_1MM, Timer, matmul_gflops

PRECISIONS = ("fp32", "bf16")


def _cpu_tree() -> float:
    """CPU seconds of this process and its reaped children (data-loader workers)."""
    import resource

    me, kids = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return me.ru_utime + me.ru_stime + kids.ru_utime + kids.ru_stime


def training_precision(work: Path, *, resolution: float = 2.0, subjects: int = 4, batches: int = 100,
                       bare_steps: int = 6, repeats: int = 3, threads: int | None = None
                       ) -> dict[str, Any]:
    """Bare-step ratio (median of ``repeats`` interleaved runs) and short training runs."""
    import pytorch_lightning as pl
    import torch
    from bench_training import bare_throughput
    from run import phantom_cohort

    from gdsynth.data.module import GdsynthDataModule
    from gdsynth.io.bids import discover
    from gdsynth.training.cohort import prepare_cohort
    from gdsynth.training.config import load_config
    from gdsynth.training.module import Pix2PixModule
    from gdsynth.training.run import RunOptions, train_run

    cfg = load_config(ROOT / "experiments" / "phantom.yaml")
    cfg.trainer.tracker, cfg.trainer.max_time, cfg.validation.panels = "none", None, False
    cfg.trainer.max_steps, cfg.trainer.num_threads = batches, threads
    root = phantom_cohort(resolution, subjects, work)
    exams, _ = prepare_cohort(root, discover(root), prep_root=work / f"prep-{resolution:g}mm",
                              prep_config=cfg.prep, inputs=cfg.data.inputs, progress=False)
    train, val = exams[:-1], exams[-1:]
    if threads:
        torch.set_num_threads(threads)
    pl.seed_everything(0, verbose=False)
    dm = GdsynthDataModule(exams=train, config=cfg.data, seed=0)
    loader = iter(dm.train_dataloader())
    data = [next(loader) for _ in range(4)]
    bare: dict[str, list[float]] = {p: [] for p in PRECISIONS}
    for _ in range(repeats):
        for p in PRECISIONS:
            torch.manual_seed(0)
            bare[p].append(bare_throughput(Pix2PixModule(cfg.to_dict()), data, bare_steps, p)[1])
    ratios = [b / f for f, b in zip(bare["fp32"], bare["bf16"], strict=True)]
    runs = {}
    for p in PRECISIONS:
        cfg.trainer.precision = p
        run_dir = Path(tempfile.mkdtemp(prefix=f"gdsynth-bench-train-{p}-", dir=work))
        cpu0 = _cpu_tree()
        with Timer() as t:
            result = train_run(train, run_dir, cfg, RunOptions(val_exams=val, export=False))
        cpu = _cpu_tree() - cpu0
        runs[p] = {"wall": t.wall, "cpu": cpu, "batches": result.steps,
                   "samples_per_cpu_s": result.steps * cfg.data.batch_size / cpu,
                   "ssim": result.metrics.get("val/ssim_brain_2d_slices"),
                   "mae": result.metrics.get("val/mae_brain")}
    return {"bare_cpu": bare, "bare_ratio": statistics.median(ratios), "bare_ratios": ratios,
            "runs": runs, "resolution": resolution, "threads": torch.get_num_threads(),
            "recipe": f"phantom.yaml at {resolution:g} mm, {len(train)} training + 1 validation "
                      f"phantom exams, {batches} batches of {cfg.data.batch_size}"}


def inference_precision(shape=SHAPE_1MM, *, mc: int = 10, mc_slices: int | None = 24,
                        one_slices: int | None = None, batch: int = 8, compile: bool = True,
                        repeats: int = 1) -> dict[str, Any]:
    """Seconds per exam, fp32 eager versus bf16 eager and compiled (compile time excluded: the
    first batch is run once before timing), and GFLOP/s versus both matmul peaks. The 1-sample
    run is timed on ``one_slices`` central slices and the MC run on ``mc_slices`` (None: all),
    scaled to the exam (whole padded slices: each costs the same)."""
    import torch
    from bench_inference import brain_like, build_model, flops_per_slice, time_ours

    volume = brain_like(shape)
    n_z = shape[2]
    k = min(n_z, mc_slices or n_z)
    slab = volume[..., (n_z - k) // 2:(n_z - k) // 2 + k]
    k1 = min(n_z, one_slices or n_z)
    slab1 = volume[..., (n_z - k1) // 2:(n_z - k1) // 2 + k1]
    out: dict[str, Any] = {"shape": list(shape), "mc": mc, "batch": batch, "slices_timed": k,
                           "one_slices_timed": k1,
                           "matmul_fp32": matmul_gflops(), "matmul_bf16": matmul_gflops(dtype="bfloat16")}
    model, card = build_model(None)
    out["gflop_per_exam"] = flops_per_slice(model, card, shape) * n_z / 1e9
    variants = [("fp32", "off"), ("bf16", "off")] + ([("bf16", "on")] if compile else [])
    for precision, comp in variants:
        model, card = build_model(None)  # a fresh copy: bf16 converts the model to channels-last

        def run(vol, n, precision=precision, comp=comp, model=model, card=card) -> Timer:
            return time_ours(model, card, vol, mc=n, batch=batch, channels_last=None,
                             compile=comp, precision=precision)

        run(volume[..., :batch], 1)  # warm-up: oneDNN primitives, or compiling
        if mc > 1:
            run(slab[..., :batch], mc)
        one = min((run(slab1, 1) for _ in range(repeats)), key=lambda t: t.cpu).per(k1 / n_z)
        many = run(slab, mc).per(k / n_z)
        key = precision + ("_compiled" if comp == "on" else "")
        out[key] = {"one": {"wall": one.wall, "cpu": one.cpu},
                    "mc_run": {"wall": many.wall, "cpu": many.cpu}}
    out["threads"] = torch.get_num_threads()
    return out


def agreement(work: Path, *, resolution: float = 1.0, exams: int = 2) -> dict[str, Any]:
    """The shipped model on ``exams`` phantom exams (with enhancing lesions): SSIM of the bf16
    synthetic map against the fp32 one inside the brain, and whether detection agrees."""
    import numpy as np
    import torch
    from run import phantom_cohort

    from gdsynth.detection.params import DetectionParams
    from gdsynth.inference.pipeline import SynthesisSettings, detect_synthesis, synthesize_prepared
    from gdsynth.inference.prep import prepare_exam
    from gdsynth.io.bids import discover
    from gdsynth.models.folder import load_model_folder
    from gdsynth.training.metrics import masked_ssim

    rows = []
    for exam in discover(phantom_cohort(resolution, exams, work))[:exams]:
        card = load_model_folder("phantom")[1]
        prep = prepare_exam(exam, card)
        params = DetectionParams.from_dict(dict(card.detection or {}))
        synth, det = {}, {}
        for p in PRECISIONS:
            generator = load_model_folder("phantom")[0]
            synth[p] = synthesize_prepared(prep, generator, card,
                                           SynthesisSettings(precision=p, compile="off"))
            det[p] = detect_synthesis(prep, synth[p], params)
        brain = torch.from_numpy(prep.brain_mask.astype(np.float32))
        a, b = (torch.from_numpy(synth[p].synthetic) for p in PRECISIONS)
        rows.append({
            "exam": exam.id,
            "ssim_brain": masked_ssim(b, a, brain),
            "max_abs_diff_brain": float((a - b).abs()[brain > 0].max()),
            "lesions": [len(det[p].lesions) for p in PRECISIONS],
            "labels_identical": bool(np.array_equal(det["fp32"].labels > 0, det["bf16"].labels > 0)),
            "label_voxels_differing": int(((det["fp32"].labels > 0) != (det["bf16"].labels > 0)).sum()),
            "probability_active": [float(det[p].summary["probability_active"]) for p in PRECISIONS],
            "refer": [bool(det[p].summary["refer_for_gadolinium"]) for p in PRECISIONS],
        })
    return {"resolution": resolution, "exams": rows,
            "ssim_min": min(r["ssim_brain"] for r in rows),
            "detection_identical": all(r["labels_identical"] and r["lesions"][0] == r["lesions"][1]
                                       and r["refer"][0] == r["refer"][1] for r in rows)}


def main() -> None:
    from run import WORK

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--part", choices=("training", "inference", "agreement"), required=True)
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--batches", type=int, default=100, help="training: batches per run")
    ap.add_argument("--mc-slices", type=int, default=24, help="inference: MC run on N slices")
    ap.add_argument("--no-compile", action="store_true")
    args = ap.parse_args()
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    WORK.mkdir(parents=True, exist_ok=True)
    if args.part == "training":
        out = training_precision(WORK, batches=args.batches, threads=args.threads)
    elif args.part == "inference":
        out = inference_precision(mc_slices=args.mc_slices, compile=not args.no_compile)
    else:
        out = agreement(WORK)
    print(json.dumps(out))


if __name__ == "__main__":
    main()


# ------------------------------------------------------------------------- rows of benchmarks/run.py
def precision_rows(step: str, r: dict[str, Any], res: str, row) -> list[dict[str, Any]]:
    """Table rows of one ``precision-*`` step's result; ``row`` is ``run._row``."""
    rss = r.get("peak_rss_gb")
    if step == "precision-training":
        f, b = r["runs"]["fp32"], r["runs"]["bf16"]
        bare = {p: statistics.median(v) for p, v in r["bare_cpu"].items()}
        dssim = None if f["ssim"] is None or b["ssim"] is None else b["ssim"] - f["ssim"]
        dmae = None if f["mae"] is None or b["mae"] is None else b["mae"] - f["mae"]
        return [
            row(f"training bare step bf16 vs fp32 {res}", None, bare["bf16"], "samples/CPU s",
                ratio=r["bare_ratio"], ratio_of="bf16/fp32 (CPU), median", target=">= 2.0",
                note=f"fp32 {bare['fp32']:.1f} samples/CPU s; ratios "
                     + ", ".join(f"{x:.2f}" for x in r["bare_ratios"]) + "; channels-last both; "
                     f"{r['threads']} thread(s)"),
            row(f"training run bf16 vs fp32 {res}", b["wall"], b["samples_per_cpu_s"],
                "samples/CPU s", ratio=b["samples_per_cpu_s"] / f["samples_per_cpu_s"],
                ratio_of="bf16/fp32 (CPU)", target=">= 2.0", rss=rss,
                note=f"{r['recipe']}; fp32 {f['samples_per_cpu_s']:.1f} samples/CPU s"),
            row(f"validation after {b['batches']} batches bf16 - fp32 {res}", dssim, dmae,
                "dSSIM / dMAE", note=f"SSIM fp32 {f['ssim']:.4f}, bf16 {b['ssim']:.4f}; MAE fp32 "
                f"{f['mae']:.4f}, bf16 {b['mae']:.4f}; target |dSSIM| <= 0.005, |dMAE| <= 0.003; "
                "wall = dSSIM, CPU = dMAE"),
        ]
    if step == "precision-inference":
        rows = []
        base = r["fp32"]
        gf = r["gflop_per_exam"]
        k1 = r.get("one_slices_timed", r["shape"][2])
        note = (f"{tuple(r['shape'])} voxels; timed on {k1} (1 sample) and {r['slices_timed']} "
                f"(MC) of {r['shape'][2]} slices, scaled")
        for key, label in (("fp32", "fp32 eager"), ("bf16", "bf16 eager"),
                           ("bf16_compiled", "bf16 compiled")):
            if key not in r:
                continue
            for part, n in (("one", "1 sample"), ("mc_run", f"{r['mc']} MC samples")):
                t = r[key][part]
                rows.append(row(f"synthesis {n} {label} {res}", t["wall"], t["cpu"], "s/exam",
                                ratio=base[part]["cpu"] / t["cpu"], ratio_of="fp32 eager / this (CPU)",
                                target=">= 2.0" if key != "fp32" else "",
                                note=note if key == "fp32" and part == "one" else ""))
            ach = gf / r[key]["one"]["cpu"]
            peak = "matmul_bf16" if key.startswith("bf16") else "matmul_fp32"
            rows.append(row(f"generator GFLOP/s {label} {res}", gf / r[key]["one"]["wall"], ach,
                            "GFLOP/s", ratio=ach / r[peak]["cpu"],
                            ratio_of=f"/ {peak.split('_')[1]} matmul (CPU)",
                            target=">= 0.50" if key.startswith("bf16") else ""))
        for peak in ("matmul_fp32", "matmul_bf16"):
            mm = r[peak]
            rows.append(row(f"{peak.replace('_', ' ')} peak {res}", mm["wall"], mm["cpu"], "GFLOP/s",
                            ratio=mm["cpu"] / r["matmul_fp32"]["cpu"], ratio_of="/ fp32 matmul (CPU)"))
        return rows
    if step == "precision-agreement":
        notes = "; ".join(
            f"{e['exam']}: max |diff| {e['max_abs_diff_brain']:.3g}, lesions {e['lesions'][0]}/"
            f"{e['lesions'][1]}, label voxels differing {e['label_voxels_differing']}, "
            f"p(active) {e['probability_active'][0]:.3f}/{e['probability_active'][1]:.3f}"
            for e in r["exams"])
        return [row(f"bf16 vs fp32 maps, shipped model, phantom exams {res}", None, None, "SSIM",
                    ratio=r["ssim_min"], ratio_of="min SSIM in the brain", target=">= 0.999",
                    rss=rss, note=f"min SSIM {r['ssim_min']:.5f}; detection identical: "
                                  f"{r['detection_identical']}; {notes}")]
    raise ValueError(f"unknown step {step!r}")
