#!/usr/bin/env python
"""Measure the learned lesion stage on the phantom's unseen site, next to the baselines.

Usage::

    python experiments/detection_stage.py --model MODEL --fit-bids CAL_BIDS --test-bids TEST_BIDS \
        --work DIR [--mc-samples 1] [--target-sensitivity 0.95] [--out-json F] [--out-table F]

Steps (public API only; every step cached in ``DIR``):

1. ``MODEL`` is copied to ``DIR/model``; both cohorts are synthesized with it
   (``gdsynth.inference.run_cohort``, step ``synthesize``, preparation read from each dataset's
   ``derivatives/gdsynth-prep``) into ``DIR/synth-{fit,test}``;
2. the stage is fitted on the FIT cohort (exams the generator never trained on), cross-fitted
   (``gdsynth.inference.fit_stage.fit_model_stage``, what ``gdsynth fit-detector`` runs) into
   ``DIR/model``;
3. on the TEST cohort (phantom site C: never in training nor in the fit), per exam on the
   prepared grid: the stage (``detect_lesions(..., stage=...)``), the card's hand-set detector
   on the same maps (before this stage), ``post = pre`` (a zero enhancement map through that
   detector), the FLAIR heuristic (``gdsynth.evaluation.baselines.flair_heuristic``) and the
   *pre-contrast ceiling*: the same kind of classifier, fitted the same way on the FIT cohort,
   given the TRUE lesion masks (all lesions, ``_label-L_desc-all_mask``) as candidates and only
   the pre-contrast images (:data:`gdsynth.detection.stage_features.PRECONTRAST_FEATURES`);
4. metrics: lesions matched with the MSSEG rule (``gdsynth.metrics.lesions.match_lesions``)
   on the ``_dseg`` content (the lesion operating point): pooled sensitivity, PPV, F1, FP per
   scan, sensitivity and F1 per size class and sensitivity per enhancement pattern (phantom
   ``_lesions.tsv``); exams: AUC with its DeLong CI and sensitivity/specificity (Wilson CI) at
   the stored refer threshold (``gdsynth.evaluation.patient.patient_metrics``).
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--fit-bids", type=Path, required=True)
    p.add_argument("--test-bids", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--mc-samples", type=int, default=1)
    p.add_argument("--fit-subjects", nargs="*", default=None, help="only these FIT subjects")
    p.add_argument("--test-subjects", nargs="*", default=None, help="only these TEST subjects")
    p.add_argument("--target-sensitivity", type=float, default=0.95)
    p.add_argument("--refit", action="store_true", help="fit the stage again")
    p.add_argument("--native-spacing", action="store_true",
                   help="set the copy's card spacing_mm to None (prepare on the native grid): "
                        "reuses the cohorts' gdsynth-prep caches when the phantom is already "
                        "at the model's resolution")
    p.add_argument("--out-json", type=Path, default=None)
    p.add_argument("--out-table", type=Path, default=None)
    return p.parse_args(argv)


def synthesize(bids: Path, exams: list, out: Path, model: Path, mc: int) -> None:
    from gdsynth.inference.cohort import RunConfig, Step, run_cohort
    from gdsynth.inference.pipeline import SynthesisSettings
    from gdsynth.inference.prep import PrepCache
    res = run_cohort(exams, RunConfig(out=out, model=model, step=Step.synthesize,
                                      settings=SynthesisSettings(mc_samples=mc, compile="off"),
                                      device="cpu",
                                      prep_cache=PrepCache(bids / "derivatives" / "gdsynth-prep")),
                     bids_root=bids)
    bad = [r for r in res if r.status == "failed"]
    if bad:
        raise RuntimeError(f"synthesis failed: {[(r.case, r.error) for r in bad]}")


def patterns(bids: Path, exam) -> dict[int, str]:
    """Phantom lesion label → enhancement pattern (nodular, ring, open-ring)."""
    from gdsynth.io import read_tsv
    from gdsynth.io.bids import derivative_path

    path = derivative_path(bids / "derivatives" / "phantom", exam, "lesions", ".tsv")
    return {int(r["label"]): r["enhancement"] for r in read_tsv(path) if int(r["label"]) > 0}


def read_truth(bids: Path, exam, prep, kind: str) -> np.ndarray:
    from gdsynth.io import read_image
    from gdsynth.io.bids import find_derivative
    from gdsynth.preprocess import move_to_grid

    root = bids / "derivatives" / "phantom"
    path = find_derivative(root, exam, "dseg", desc="enhancing") if kind == "enhancing" \
        else find_derivative(root, exam, "mask", label="L", desc="all")
    arr, geometry = read_image(path, allow_constant=True)
    arr = move_to_grid(arr, geometry, prep.geometry, interpolation="nearest")
    return arr.round().astype(np.int32)


def ceiling_case(exam, prep, all_lesions: np.ndarray, truth: np.ndarray):
    """Candidates = true lesion components; pre-contrast features only."""
    import cc3d

    from gdsynth.detection.context import tissue_context
    from gdsynth.detection.params import DetectionParams
    from gdsynth.detection.stage_features import stage_features
    from gdsynth.detection.stage_fit import label_case

    labels = cc3d.connected_components((all_lesions > 0).astype(np.uint8),
                                       connectivity=26).astype(np.int32)
    sp = prep.geometry.spacing
    images = {k: prep.volumes.get(k) for k in ("FLAIR", "T2w", "T1w")}
    ctx = tissue_context(prep.brain_mask, sp, DetectionParams(), t1w=images["T1w"],
                         t2w=images["T2w"], flair=images["FLAIR"])
    feats = stage_features(labels, np.zeros(labels.shape, np.float32), ctx, images=images)
    return label_case(exam.id, labels, feats, truth, sp), labels


class Tally:
    """Per-method lesion and exam results over the test cohort."""

    def __init__(self) -> None:
        self.ref: list[dict] = []
        self.pred: list[dict] = []
        self.y: list[bool] = []
        self.prob: list[float] = []
        self.refer: list[bool] = []
        self.n = 0

    def add(self, truth, labels, spacing, pattern_of, prob: float, refer: bool) -> None:
        from gdsynth.metrics.lesions import match_lesions

        m = match_lesions(truth, labels, tuple(spacing))
        for r in m.reference:
            self.ref.append({**r, "pattern": pattern_of.get(r["source_label"], "unknown")})
        self.pred.extend(m.predicted)
        self.y.append(bool(m.reference))
        self.prob.append(float(prob))
        self.refer.append(bool(refer))
        self.n += 1

    def summary(self) -> dict[str, Any]:
        from gdsynth.evaluation.patient import patient_metrics
        from gdsynth.metrics.lesions import SIZE_CLASSES

        def f1(refs, preds) -> dict[str, Any]:
            det = sum(r["detected"] for r in refs)
            tp = sum(p["true_positive"] for p in preds)
            sens = det / len(refs) if refs else float("nan")
            ppv = tp / len(preds) if preds else float("nan")
            ok = refs and preds and sens + ppv > 0
            return {"n_reference": len(refs), "n_detected": det, "n_predicted": len(preds),
                    "sensitivity": sens, "ppv": ppv,
                    "f1": 2 * sens * ppv / (sens + ppv) if ok else 0.0}

        out = {"lesions": {**f1(self.ref, self.pred),
                           "fp_per_scan": sum(not p["true_positive"] for p in self.pred) / self.n}}
        out["by_size"] = {name: f1([r for r in self.ref if r["size_class"] == name],
                                   [p for p in self.pred if p["size_class"] == name])
                          for name, _, _ in SIZE_CLASSES}
        pats = sorted({r["pattern"] for r in self.ref})
        out["by_pattern"] = {p: f1([r for r in self.ref if r["pattern"] == p], [])["sensitivity"]
                             for p in pats}
        out["by_pattern_n"] = {p: sum(r["pattern"] == p for r in self.ref) for p in pats}
        pm = patient_metrics(np.array(self.y), np.array(self.prob), np.array(self.refer))
        pm.pop("roc")
        pm.pop("calibration")
        out["exam"] = pm
        return out


def main(argv=None) -> int:
    from gdsynth.detection import DetectionParams, detect_lesions
    from gdsynth.detection.stage_features import PRECONTRAST_FEATURES
    from gdsynth.detection.stage_fit import fit_stage
    from gdsynth.evaluation.baselines import flair_heuristic
    from gdsynth.evaluation.report import jsonable
    from gdsynth.inference.fit_stage import FitOptions, describe, fit_model_stage
    from gdsynth.inference.pipeline import SynthesisSettings, read_synthesis
    from gdsynth.inference.prep import PrepCache
    from gdsynth.io import write_json
    from gdsynth.io.bids import discover
    from gdsynth.models.card import CARD_NAME, ModelCard
    from gdsynth.models.folder import resolve_model_dir

    args = parse_args(argv)
    work = args.work.resolve()
    model = work / "model"
    src = resolve_model_dir(args.model)
    if not (model / CARD_NAME).is_file():
        model.mkdir(parents=True, exist_ok=True)
        for name in ("generator.safetensors", CARD_NAME):
            shutil.copyfile(src / name, model / name)
        copy = ModelCard.load(model / CARD_NAME)
        copy.lesion_stage = {}  # fitted below on the FIT cohort
        if args.native_spacing:
            copy.spacing_mm = None
        copy.save(model / CARD_NAME)
    fit_exams = discover(args.fit_bids, args.fit_subjects)
    test_exams = discover(args.test_bids, args.test_subjects)
    synth = {"fit": work / "synth-fit", "test": work / "synth-test"}
    synthesize(args.test_bids, test_exams, synth["test"], model, args.mc_samples)
    synthesize(args.fit_bids, fit_exams, synth["fit"], model, args.mc_samples)
    card = ModelCard.load(model / CARD_NAME)
    if args.refit or not card.lesion_stage:
        stage, failed = fit_model_stage(model, fit_exams, FitOptions(
            settings=SynthesisSettings(mc_samples=args.mc_samples), device="cpu",
            synthesis_dir=synth["fit"], target_sensitivity=args.target_sensitivity),
            bids_root=args.fit_bids)
        card = ModelCard.load(model / CARD_NAME)
    from gdsynth.detection.stage import load_stage

    stage = load_stage(model, card.lesion_stage)
    print(describe(stage))
    base_params = DetectionParams.from_dict(dict(card.detection or {}))
    if "enhancing" not in card.heads:
        base_params = base_params.replace(detector="difference")

    # the pre-contrast ceiling: fitted on the FIT cohort's true lesions
    fit_cache = PrepCache(args.fit_bids / "derivatives" / "gdsynth-prep")
    ceiling_cases = []
    for exam in fit_exams:
        prep = fit_cache.prepare(exam, card)
        case, _ = ceiling_case(exam, prep, read_truth(args.fit_bids, exam, prep, "all"),
                               read_truth(args.fit_bids, exam, prep, "enhancing"))
        ceiling_cases.append(case)
    ceiling, _ = fit_stage(ceiling_cases, features=PRECONTRAST_FEATURES,
                           target_sensitivity=args.target_sensitivity)

    methods = ["stage", "hand-set detector", "post=pre", "FLAIR heuristic", "pre-contrast ceiling"]
    tallies = {m: Tally() for m in methods}
    cache = PrepCache(args.test_bids / "derivatives" / "gdsynth-prep")
    for exam in test_exams:
        prep = cache.prepare(exam, card)
        s = read_synthesis(synth["test"], exam, prep, card)
        truth = read_truth(args.test_bids, exam, prep, "enhancing")
        pat = patterns(args.test_bids, exam)
        sp = prep.geometry.spacing
        inputs = {"brain_mask": prep.brain_mask, "spacing": sp, "flair": prep.volumes.get("FLAIR"),
                  "t1w": prep.volumes.get("T1w"), "t2w": prep.volumes.get("T2w"),
                  "uncertainty": s.uncertainty, "heads": s.heads}
        r = detect_lesions(s.enhancement, params=base_params, stage=stage, **inputs)
        tallies["stage"].add(truth, r.labels, sp, pat, r.summary["probability_active"],
                             r.summary["refer_for_gadolinium"])
        r = detect_lesions(s.enhancement, params=base_params, **inputs)
        tallies["hand-set detector"].add(truth, r.labels, sp, pat, r.summary["probability_active"],
                                         r.summary["refer_for_gadolinium"])
        r = detect_lesions(np.zeros_like(s.enhancement), params=base_params, **inputs)
        tallies["post=pre"].add(truth, r.labels, sp, pat, r.summary["probability_active"],
                                r.summary["refer_for_gadolinium"])
        b = flair_heuristic(prep.volumes["FLAIR"], prep.brain_mask, sp)
        tallies["FLAIR heuristic"].add(truth, b.labels, sp, pat, b.probability_active, b.refer)
        case, labels = ceiling_case(exam, prep, read_truth(args.test_bids, exam, prep, "all"), truth)
        sc = ceiling.lesion_scores(case.features)
        keep = np.zeros(int(labels.max()) + 1, np.int32)
        for f, v in zip(case.features, sc, strict=True):
            if v >= ceiling.lesion_threshold:
                keep[f["label"]] = f["label"]
        prob = ceiling.exam_probability(sc)
        tallies["pre-contrast ceiling"].add(truth, keep[labels], sp, pat, prob,
                                            prob >= ceiling.refer_threshold)
        print(f"{exam.id}: stage P={tallies['stage'].prob[-1]:.3f} ceiling P={prob:.3f} "
              f"active={tallies['stage'].y[-1]}", flush=True)
    results = {m: t.summary() for m, t in tallies.items()}
    report = {"model": str(src), "fit_bids": str(args.fit_bids), "test_bids": str(args.test_bids),
              "mc_samples": args.mc_samples, "stage": stage.to_dict()["heldout"],
              "stage_operating_point": {"lesion_threshold": stage.lesion_threshold,
                                        "refer_threshold": stage.refer_threshold},
              "ceiling_heldout": ceiling.heldout, "results": results}
    table = render(results)
    print(table)
    (args.out_table or work / "results.md").write_text(table, encoding="utf-8")
    write_json(args.out_json or work / "results.json", jsonable(json.loads(json.dumps(
        report, default=str))))
    return 0


def render(results: dict[str, dict[str, Any]]) -> str:
    def f(v, d=3):
        return "n/a" if v is None or v != v else f"{v:.{d}f}"

    head = ("| method | lesion sens. | PPV | F1 | FP/scan | sens. <70 | 70-500 | >500 | F1 <70 | "
            "70-500 | >500 | sens. nodular | ring | open-ring | exam AUC (95% CI) | exam sens. "
            "| exam spec. |")
    lines = [head, "|---" + "|---:" * 16 + "|"]
    for name, r in results.items():
        les, bs, bp, ex = r["lesions"], r["by_size"], r["by_pattern"], r["exam"]
        op = ex["operating_point"]
        ci = ex["auc_ci95"]
        lines.append(
            f"| {name} | {f(les['sensitivity'])} | {f(les['ppv'])} | {f(les['f1'])} | "
            f"{f(les['fp_per_scan'], 2)} | "
            + " | ".join(f(bs[k]["sensitivity"]) for k in ("small", "medium", "large")) + " | "
            + " | ".join(f(bs[k]["f1"]) for k in ("small", "medium", "large")) + " | "
            + " | ".join(f(bp.get(k)) for k in ("nodular", "ring", "open-ring")) + " | "
            f"{f(ex['auc'])} ({f(ci[0], 2)}-{f(ci[1], 2)}) | "
            f"{f(op['sensitivity']['value'])} ({op['sensitivity']['k']}/{op['sensitivity']['n']}) | "
            f"{f(op['specificity']['value'])} ({op['specificity']['k']}/{op['specificity']['n']}) |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    sys.exit(main())
