#!/usr/bin/env python
"""Missing inputs: one model trained with input drop-out against one model per input subset.

Usage::

    python experiments/missing_inputs.py --train-bids TRAIN --fit-bids CAL --test-bids TEST \
        --work DIR [--config experiments/phantom.yaml] [--max-steps 800] \
        [--models dropout,all,noT2w,noFLAIR,T1w] [--out-table F] [--out-json F]

Models (the recipe ``--config``, same ``--max-steps`` batches each, all training exams, no
validation split, no tracker): ``dropout`` (inputs T1w, T2w, FLAIR with input drop-out:
``data.input_dropout`` ``--input-dropout``, default 0.25 as experiments/phantom.yaml, on
``data.optional_inputs`` T2w, FLAIR) and one model per input subset trained without drop-out: ``all`` (T1w, T2w, FLAIR),
``noT2w`` (T1w, FLAIR), ``noFLAIR`` (T1w, T2w), ``T1w`` (T1w only).

Steps (public API only; every step cached in ``DIR``):

1. training (``gdsynth.training.launch``: :func:`load_run_config`, :func:`collect_training_set`,
   :func:`train_from_set` without the stage fit) into ``DIR/runs/NAME``; the exams are prepared
   with the model's own inputs (``DIR/prep/COHORT/SUBSET``; the complete-exam preparation is the
   training cohort's own ``derivatives/gdsynth-prep`` when it holds a valid entry, read only);
2. the model is copied to ``DIR/models/NAME`` (card ``spacing_mm`` set to None: the phantom is
   already at the training resolution, so the prepared grid is the T1w grid, as in training) and
   its learned lesion stage is fitted on the FIT cohort
   (:func:`gdsynth.inference.fit_stage.fit_model_stage`: complete exams for the drop-out model,
   the model's own inputs for a subset model);
3. every TEST exam is prepared for each subset as ``gdsynth predict`` prepares an exam that lacks
   the other sequences (:func:`gdsynth.inference.prep.prep_config` with ``missing=``, with the
   real post-Gd T1w: ``use_post``), and ``DIR/prep_check.json`` records how these arrays differ
   from the complete exam's preparation with the sequences removed (the brain mask and the NAWM
   normalization are computed from the sequences present, so they differ when FLAIR is missing);
4. each model runs on each subset it supports (the drop-out model: all four, the missing ones
   zero-filled as in training; a subset model: its own), detection through
   :func:`gdsynth.inference.pipeline.detect_synthesis` with the model's stage (no domain check);
5. metrics (:func:`gdsynth.evaluation.evaluate_arrays`, :func:`gdsynth.evaluation.summarize`):
   synthesis SSIM, PSNR and MAE against the real post-Gd (of the same preparation) inside the
   complete exam's brain mask (the same voxels for every row), MAE in the enhancing lesions;
   lesions matched with the MSSEG rule to the phantom's enhancing truth: pooled sensitivity, PPV,
   F1, FP per scan (exam-bootstrap CIs); exams: AUC with its DeLong CI, sensitivity and
   specificity at the stage's stored refer threshold.

Writes the Markdown table (``--out-table``, default ``DIR/results.md``) and the JSON report
(``--out-json``, default ``DIR/results.json``); ``--report-only`` writes them from the results
already in ``DIR`` (a run in progress: the pairs finished so far), computing nothing.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gdsynth.evaluation.report import jsonable

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

FULL = ("T1w", "T2w", "FLAIR")
#: input subset → the sequences it lacks
SUBSETS: dict[str, tuple[str, ...]] = {"all": (), "noT2w": ("T2w",), "noFLAIR": ("FLAIR",),
                                       "T1w": ("T2w", "FLAIR")}
DROPOUT = "dropout"
MODELS = (DROPOUT, *SUBSETS)


def model_inputs(name: str) -> list[str]:
    """The inputs of model ``name`` (``dropout``: every input; a subset name: that subset's)."""
    if name == DROPOUT:
        return list(FULL)
    if name not in SUBSETS:
        raise ValueError(f"unknown model {name!r}; valid: {', '.join(MODELS)}")
    return [s for s in FULL if s not in SUBSETS[name]]


def plan(models: list[str]) -> list[tuple[str, str]]:
    """``(subset, model)`` pairs to test, subset by subset: the drop-out model on every subset,
    a subset model on its own subset only."""
    pairs = []
    for subset in SUBSETS:
        pairs += [(subset, m) for m in models if m == DROPOUT or m == subset]
    return pairs


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-bids", type=Path, required=True)
    p.add_argument("--fit-bids", type=Path, required=True)
    p.add_argument("--test-bids", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--config", type=Path, default=ROOT / "experiments" / "phantom.yaml")
    p.add_argument("--max-steps", type=int, default=800)
    p.add_argument("--models", default=",".join(MODELS),
                   help=f"comma-separated, among {', '.join(MODELS)}")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--input-dropout", type=float, default=0.25,
                   help="the drop-out model's data.input_dropout (on T2w and FLAIR)")
    p.add_argument("--test-subjects", nargs="*", default=None, help="only these TEST subjects")
    p.add_argument("--check-exams", type=int, default=8,
                   help="TEST exams on which each subset's preparation is compared with the "
                        "complete exam's")
    p.add_argument("--report-only", action="store_true",
                   help="only write the table and JSON of the results already in --work")
    p.add_argument("--out-json", type=Path, default=None)
    p.add_argument("--out-table", type=Path, default=None)
    return p.parse_args(argv)


# ---------------------------------------------------------------- preparation


def subset_config(missing: tuple[str, ...]):  # -> gdsynth.preprocess.PrepConfig
    """What ``gdsynth predict`` prepares for an exam lacking ``missing`` (with the real post-Gd)."""
    from gdsynth.inference.prep import prep_config
    from gdsynth.models.card import ModelCard

    card = ModelCard(architecture={"name": "unet", "kwargs": {}}, inputs=list(FULL),
                     optional_inputs=["T2w", "FLAIR"])
    return prep_config(card, use_post=True, missing=missing)


class Preparations:
    """Prepared exams of one cohort per input subset, as ``gdsynth predict`` prepares an exam
    lacking the subset's missing sequences: the cohort's own ``gdsynth-prep`` entry when valid for
    that configuration (read only), else prepared into ``WORK/prep/COHORT/SUBSET`` (cached).
    A subset in ``as_complete`` (its preparation measured identical to the complete exam's, see
    :func:`check_preparations`) is read from the complete preparation, the missing images
    removed."""

    def __init__(self, bids: Path, work: Path, as_complete: tuple[str, ...] = ()) -> None:
        self.bids = bids
        self.shared = bids / "derivatives" / "gdsynth-prep"
        self.work = work / "prep" / bids.name
        self.as_complete = set(as_complete)

    def complete(self, subset: str) -> bool:
        return subset == "all" or subset in self.as_complete

    def folder(self, exams: list, subset: str) -> Path:
        """The cache folder holding every exam of ``exams`` prepared for ``subset`` (prepared
        afresh; the complete preparation for a subset of ``as_complete``)."""
        from gdsynth.preprocess import prepare_to_folder

        name = "all" if self.complete(subset) else subset
        config = subset_config(SUBSETS[name])
        if all(self._cached(e, self.shared, config) for e in exams):
            return self.shared
        for exam in exams:
            prepare_to_folder(exam, self.work / name, config)  # cached
        return self.work / name

    @staticmethod
    def _cached(exam, root: Path, config) -> bool:
        from gdsynth.preprocess import find_prepared

        return find_prepared(exam, root, config).prepared is not None

    def fresh(self, exam, subset: str):  # -> gdsynth.preprocess.PreparedVolumes
        """``exam`` prepared from the sequences of ``subset`` only (cached)."""
        from gdsynth.preprocess import find_prepared, load_prepared, prepare_to_folder

        config = subset_config(SUBSETS[subset])
        found = find_prepared(exam, self.shared, config)
        if found.prepared is None:
            found = find_prepared(exam, self.work / subset, config)
        return load_prepared(found.prepared or prepare_to_folder(exam, self.work / subset, config))

    def load(self, exam, subset: str):  # -> gdsynth.preprocess.PreparedVolumes
        """``exam`` prepared for ``subset`` (without the images of its missing sequences)."""
        if not self.complete(subset) or subset == "all":
            return self.fresh(exam, subset)
        vols = self.fresh(exam, "all")
        return replace(vols, images={k: v for k, v in vols.images.items()
                                     if k not in SUBSETS[subset]})

    def prepare(self, subset: str, missing: tuple[str, ...] = ()):
        """A ``prepare(exam, card)`` (:data:`gdsynth.inference.prep.Prepare`) of ``subset``."""
        from gdsynth.inference.prep import from_volumes

        return lambda exam, card: from_volumes(exam, self.load(exam, subset), missing=missing)


def prep_difference(full, part) -> dict[str, Any]:
    """How a subset's preparation differs from the complete exam's (both PreparedVolumes): max
    |difference| of each image they share (normalized units) and the brain masks' Dice."""
    a, b = np.asarray(full.mask, bool), np.asarray(part.mask, bool)
    out: dict[str, Any] = {"mask_dice": float(2 * (a & b).sum() / max(a.sum() + b.sum(), 1)),
                           "mask_voxels": [int(a.sum()), int(b.sum())]}
    for k in part.images:
        out[f"max_abs_{k}"] = float(np.abs(full.images[k] - part.images[k]).max())
    return out


# ---------------------------------------------------------------- training and stage


def train(name: str, args, work: Path, train_prep: Preparations) -> dict[str, Any]:
    """Train model ``name`` into ``WORK/runs/NAME`` (cached); returns its training record."""
    from gdsynth.io import write_json
    from gdsynth.io.bids import discover
    from gdsynth.training.launch import collect_training_set, load_run_config, train_from_set

    run = work / "runs" / name
    record_path = work / "runs" / f"{name}.json"
    if (run / "model" / "model_card.json").is_file() and record_path.is_file():
        return json.loads(record_path.read_text(encoding="utf-8"))
    if run.exists():
        shutil.rmtree(run)  # an interrupted run: start again
    inputs = model_inputs(name)
    overrides: dict[str, Any] = {"trainer.max_steps": args.max_steps, "trainer.tracker": "none",
                                 "trainer.seed": args.seed, "data.val_fraction": 0.0,
                                 "data.inputs": inputs}
    overrides.update({"data.input_dropout": args.input_dropout, "data.optional_inputs": ["T2w", "FLAIR"]}
                     if name == DROPOUT else {"data.input_dropout": 0.0, "data.optional_inputs": []})
    cfg = load_run_config(args.config, run, resume=False, overrides=overrides)
    subset = next(s for s in SUBSETS if model_inputs(s) == inputs)
    exams = [e for e in discover(args.train_bids) if e.t1w_gd is not None]
    prep_dir = train_prep.folder(exams, subset)
    if train_prep.complete(subset):  # the complete preparation, the model reads its inputs only
        cfg.prep = {**cfg.prep, "sequences": list(FULL)}
    data = collect_training_set(args.train_bids, run, cfg, prep_dir=prep_dir)
    t0 = time.perf_counter()
    result = train_from_set(data, run, cfg, prep_dir=prep_dir, fit_detector=False)
    record = {"model": name, "inputs": inputs, "input_dropout": cfg.data.input_dropout,
              "optional_inputs": list(cfg.data.optional_inputs), "max_steps": args.max_steps,
              "steps": result.steps,
              "train_s": round(time.perf_counter() - t0, 1), "n_exams": len(data.training),
              "prep_dir": str(prep_dir), "prep_sequences": cfg.prep.get("sequences", inputs)}
    write_json(record_path, record)
    return record


def fitted_model(name: str, args, work: Path, fit_prep: Preparations):
    """``WORK/models/NAME``: the trained model with its lesion stage fitted on the FIT cohort."""
    from gdsynth.errors import ConfigError
    from gdsynth.inference.fit_stage import FitOptions, describe, fit_model_stage
    from gdsynth.inference.pipeline import SynthesisSettings
    from gdsynth.io.bids import discover
    from gdsynth.models.card import CARD_NAME, ModelCard

    model = work / "models" / name
    card_path = model / CARD_NAME
    if not card_path.is_file():
        model.mkdir(parents=True, exist_ok=True)
        run = work / "runs" / name / "model"
        shutil.copyfile(run / "generator.safetensors", model / "generator.safetensors")
        card = ModelCard.load(run / CARD_NAME)
        card.spacing_mm, card.lesion_stage = None, {}
        card.save(card_path)
    if not ModelCard.load(card_path).lesion_stage:
        exams = discover(args.fit_bids)
        subset = next(s for s in SUBSETS if model_inputs(s) == model_inputs(name))
        fit_prep.folder(exams, subset)
        prepare = fit_prep.prepare(subset)  # complete exams for the drop-out model
        try:
            stage, failed = fit_model_stage(model, exams, FitOptions(
                settings=SynthesisSettings(mc_samples=1, compile="off"), device="cpu"),
                bids_root=args.fit_bids, prepare=prepare)
        except ConfigError as exc:  # e.g. no true candidate: the hand-set detector is tested
            card = ModelCard.load(card_path)
            card.lesion_stage = {"status": "not fitted", "reason": exc.problem}
            card.save(card_path)
            print(f"{name}: lesion stage not fitted ({exc.problem})", flush=True)
        else:
            print(f"{name}: {describe(stage)}" + (f" (failed: {failed})" if failed else ""),
                  flush=True)
    return model


# ---------------------------------------------------------------- test


def truth(bids: Path, exam, geometry, kind: str) -> np.ndarray:
    """Phantom truth on ``geometry``: enhancing lesions (``_dseg``) or all lesions (mask)."""
    from gdsynth.io import read_image
    from gdsynth.io.bids import find_derivative
    from gdsynth.preprocess import move_to_grid

    root = bids / "derivatives" / "phantom"
    path = find_derivative(root, exam, "dseg", desc="enhancing") if kind == "enhancing" \
        else find_derivative(root, exam, "mask", label="L", desc="all")
    arr, g = read_image(path, allow_constant=True)
    return move_to_grid(arr, g, geometry, interpolation="nearest").round().astype(np.int32)


def evaluate_pair(subset: str, name: str, model: Path, exams: list, args, test_prep: Preparations,
                  work: Path) -> dict[str, Any]:
    """Summary of model ``name`` on the TEST exams lacking ``SUBSETS[subset]`` (cached)."""
    from gdsynth.detection.params import DetectionParams
    from gdsynth.detection.stage import load_stage
    from gdsynth.evaluation import evaluate_arrays, summarize
    from gdsynth.inference.pipeline import SynthesisSettings, detect_synthesis, synthesize_prepared
    from gdsynth.inference.prep import from_volumes
    from gdsynth.io import write_json
    from gdsynth.models.folder import load_model_folder

    out = work / "eval" / f"{subset}__{name}.json"
    if out.is_file():
        return json.loads(out.read_text(encoding="utf-8"))
    generator, card = load_model_folder(model)
    stage = load_stage(model, card.lesion_stage)
    params = DetectionParams.from_dict(dict(card.detection or {}))
    missing = tuple(s for s in SUBSETS[subset] if s in card.inputs)
    card.split_inputs([s for s in FULL if s not in SUBSETS[subset]])  # refuses what it cannot do
    settings = SynthesisSettings(mc_samples=1, compile="off")
    results, rows = [], []
    t0 = time.perf_counter()
    for exam in exams:
        full = test_prep.load(exam, "all")
        vols = test_prep.load(exam, subset)
        prep = from_volumes(exam, vols, missing=missing)
        synth = synthesize_prepared(prep, generator, card, settings)
        det = detect_synthesis(prep, synth, params, stage=stage)
        r = evaluate_arrays(
            truth(args.test_bids, exam, prep.geometry, "enhancing"), det.labels,
            prep.geometry.spacing, exam=exam.id,
            scores={les["label"]: les["score"] for les in det.lesions},
            synthetic=synth.synthetic, real_post=vols.images["T1w_gd"],
            brain=np.asarray(full.mask, bool),
            all_lesions=truth(args.test_bids, exam, prep.geometry, "all"),
            probability_active=det.summary["probability_active"],
            refer=det.summary["refer_for_gadolinium"])
        results.append(r)
        rows.append(r.row())
    summary = summarize(results)
    summary.pop("froc", None)
    summary["patient"].pop("roc", None)
    summary["patient"].pop("calibration", None)
    report = jsonable({"subset": subset, "model": name, "inputs_used": prep.inputs_used(card.inputs),
                     "missing": list(missing), "stage": bool(stage),
                     "stage_status": card.lesion_stage.get("status", "fitted"),
                     "stage_reason": card.lesion_stage.get("reason"),
                     "refer_threshold": None if stage is None else stage.refer_threshold,
                     "lesion_threshold": None if stage is None else stage.lesion_threshold,
                     "eval_s": round(time.perf_counter() - t0, 1), "summary": summary,
                     "per_exam": rows})
    write_json(out, report)
    return report


def table_row(report: dict[str, Any]) -> dict[str, Any]:
    """The table's figures of one (subset, model) report."""
    s = report["summary"]
    syn, les, pat = s["synthesis"], s["lesions"], s["patient"]
    ci = les.get("ci95_exam_bootstrap", {}).get("f1") or [None, None]
    op = pat.get("operating_point") or {}
    return {"subset": report["subset"], "model": report["model"],
            "inputs": "+".join(report["inputs_used"]),
            "detector": "stage" if report.get("stage") else "hand-set",
            "ssim": (syn.get("ssim") or {}).get("mean"), "ssim_sd": (syn.get("ssim") or {}).get("sd"),
            "psnr": (syn.get("psnr") or {}).get("mean"),
            "mae_enhancing": (syn.get("mae_enhancing") or {}).get("mean"),
            "sensitivity": les.get("sensitivity"), "ppv": les.get("ppv"), "f1": les.get("f1"),
            "f1_ci95": ci, "fp_per_scan": les.get("fp_per_scan"),
            "n_detected": les.get("n_detected"), "n_reference": les.get("n_reference"),
            "auc": pat.get("auc"), "auc_ci95": pat.get("auc_ci95") or [None, None],
            "exam_sensitivity": op.get("sensitivity"), "exam_specificity": op.get("specificity")}


def render(rows: list[dict[str, Any]]) -> str:
    """Markdown table of :func:`table_row` rows (n/a for an undefined figure)."""
    def f(v, d=3):
        return "n/a" if v is None or v != v else f"{v:.{d}f}"

    def frac(op):
        if not isinstance(op, dict):
            return "n/a"
        return f"{f(op.get('value'), 2)} ({op.get('k')}/{op.get('n')})"

    lines = ["| inputs given | model | detector | SSIM (brain) | PSNR dB | MAE enh. | lesion sens. | PPV | "
             "F1 (95% CI) | FP/scan | exam AUC (95% CI) | exam sens. | exam spec. |",
             "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in rows:
        lines.append(
            f"| {r['subset']} ({r['inputs']}) | {r['model']} | {r['detector']} | {f(r['ssim'])} ± {f(r['ssim_sd'])} "
            f"| {f(r['psnr'], 2)} | {f(r['mae_enhancing'])} | {f(r['sensitivity'], 2)} "
            f"({r['n_detected']}/{r['n_reference']}) | {f(r['ppv'], 2)} | {f(r['f1'], 2)} "
            f"({f(r['f1_ci95'][0], 2)}-{f(r['f1_ci95'][1], 2)}) | {f(r['fp_per_scan'], 2)} | "
            f"{f(r['auc'], 2)} ({f(r['auc_ci95'][0], 2)}-{f(r['auc_ci95'][1], 2)}) | "
            f"{frac(r['exam_sensitivity'])} | {frac(r['exam_specificity'])} |")
    return "\n".join(lines) + "\n"


def check_preparations(exams: list, test_prep: Preparations, work: Path) -> dict[str, Any]:
    """Per subset: how its preparation from the sequences present differs from the complete
    exam's (worst over ``exams``), and whether it is identical (then the complete preparation,
    missing images removed, stands for it)."""
    from gdsynth.io import write_json

    out: dict[str, Any] = {}
    for subset in SUBSETS:
        if subset == "all":
            continue
        diffs = [prep_difference(test_prep.fresh(e, "all"), test_prep.fresh(e, subset))
                 for e in exams]
        keys = sorted({k for d in diffs for k in d if k.startswith("max_abs_")})
        worst = {k: max(d[k] for d in diffs) for k in keys}
        dice = min(d["mask_dice"] for d in diffs)
        out[subset] = {"n_exams": len(diffs), "min_mask_dice": dice, **worst,
                       "identical": dice == 1.0 and not any(worst.values())}
    write_json(work / "prep_check.json", out)
    return out


def cached_results(work: Path, models: list[str]) -> tuple[dict, dict, list]:
    """``(training records, preparation check, reports)`` already in ``work`` (nothing run)."""
    def read(path: Path) -> Any:
        return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None

    records = {m: r for m in models if (r := read(work / "runs" / f"{m}.json")) is not None}
    reports = [r for s, m in plan(models) if (r := read(work / "eval" / f"{s}__{m}.json"))]
    return records, read(work / "prep_check.json") or {}, reports


def write_outputs(args, work: Path, records: dict, prep_check: dict, reports: list) -> str:
    """Write the table and the JSON report of ``reports`` (in :func:`plan` order)."""
    from gdsynth.io import write_json

    rows = [table_row(r) for r in reports]
    table = render(rows)
    (args.out_table or work / "results.md").write_text(table, encoding="utf-8")
    write_json(args.out_json or work / "results.json", jsonable({
        "train_bids": str(args.train_bids), "fit_bids": str(args.fit_bids),
        "test_bids": str(args.test_bids), "config": str(args.config),
        "max_steps": args.max_steps, "training": records, "prep_check": prep_check,
        "rows": rows, "reports": [{k: v for k, v in r.items() if k != "per_exam"}
                                  for r in reports]}))
    return table


def main(argv=None) -> int:
    from gdsynth.io.bids import discover

    args = parse_args(argv)
    work = args.work.resolve()
    models = [m for m in args.models.split(",") if m]
    for m in models:
        model_inputs(m)  # a bad name fails here
    if args.report_only:
        print(write_outputs(args, work, *cached_results(work, models)))
        return 0
    test_exams = discover(args.test_bids, args.test_subjects)
    prep_check = check_preparations(test_exams[:args.check_exams],
                                    Preparations(args.test_bids, work), work)
    print("preparation vs complete exam:", json.dumps(prep_check), flush=True)
    same = tuple(s for s, c in prep_check.items() if c["identical"])
    test_prep, train_prep, fit_prep = (Preparations(b, work, same) for b in (
        args.test_bids, args.train_bids, args.fit_bids))
    records, reports = {}, []
    for name in models:
        records[name] = train(name, args, work, train_prep)
        print(f"trained {name}: {records[name]}", flush=True)
        model = fitted_model(name, args, work, fit_prep)
        for subset, m in plan(models):
            if m == name:
                reports.append(evaluate_pair(subset, name, model, test_exams, args, test_prep, work))
                print(render([table_row(reports[-1])]), flush=True)
    order = {pair: i for i, pair in enumerate(plan(models))}
    reports.sort(key=lambda r: order[(r["subset"], r["model"])])
    print(write_outputs(args, work, records, prep_check, reports))
    return 0


if __name__ == "__main__":
    sys.exit(main())
