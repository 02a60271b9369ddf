#!/usr/bin/env python
"""How many exams does the learned lesion stage need? Fit it on the first N exams of a FIT cohort,
score the unseen TEST cohort.

Usage::

    python experiments/stage_learning_curve.py --model MODEL --fit-bids FIT --test-bids TEST \
        --work DIR [--sizes 12,24,36] [--out-table F]

``MODEL`` is a model folder (e.g. ``DIR/model`` of ``experiments/detection_stage.py
--native-spacing``, whose card reads the cohorts' preparation caches); the maps are read from
``DIR/synth-fit`` and ``DIR/synth-test`` when they hold a synthesis of the exam (as
``detection_stage.py`` writes them), else synthesized (1 MC sample). Every exam's candidates and
their match to the phantom truth (:func:`gdsynth.inference.fit_stage.collect_cases`, what
``gdsynth fit-detector`` fits on) are cached as JSON in ``DIR/cases-{fit,test}.json``.

For each N of ``--sizes`` and each classifier kind, and for the automatic choice (the kind with
the lower out-of-fold log-loss, what ``fit-detector`` ships), the stage is fitted on the first N
FIT exams (:func:`gdsynth.detection.stage_fit.fit_stage`, 5 folds) and its lesion threshold and
exam model are applied to the TEST exams: pooled lesion sensitivity, PPV, F1 and FP per scan
(:func:`gdsynth.detection.stage_fit.lesion_counts`: a reference lesion is found when kept
candidates cover > 10 % of it; the candidate-level MSSEG match of the fit) and the exam AUC of
``probability_active``, next to the out-of-fold figures of the fit itself.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT / "experiments") not in sys.path:
    sys.path.insert(0, str(ROOT / "experiments"))


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, required=True)
    p.add_argument("--fit-bids", type=Path, required=True)
    p.add_argument("--test-bids", type=Path, required=True)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--sizes", default="12,24,36", help="numbers of FIT exams, comma-separated")
    p.add_argument("--out-table", type=Path, default=None)
    return p.parse_args(argv)


def case_to_json(case) -> dict[str, Any]:
    return {"id": case.id, "features": case.features, "tp": [bool(v) for v in case.tp],
            "cover": [[[int(c), float(f)] for c, f in cov] for cov in case.cover],
            "reference": case.reference}


def case_from_json(data: dict[str, Any]):
    from gdsynth.detection.stage_fit import StageCase

    features = [{k: float("nan") if v is None else v for k, v in f.items()}  # JSON null = NaN
                for f in data["features"]]
    return StageCase(data["id"], features, np.array(data["tp"], dtype=bool),
                     [[(int(c), float(f)) for c, f in cov] for cov in data["cover"]],
                     data["reference"])


def cohort_cases(model: Path, bids: Path, synth: Path, cache: Path) -> list:
    """The cohort's StageCases (cached in ``cache``)."""
    from detection_stage import synthesize

    from gdsynth.evaluation.report import jsonable
    from gdsynth.inference.fit_stage import TRUTH_FOLDER, FitOptions, collect_cases
    from gdsynth.inference.pipeline import SynthesisSettings
    from gdsynth.io import atomic_write_text
    from gdsynth.io.bids import discover

    if cache.is_file():
        return [case_from_json(c) for c in json.loads(cache.read_text(encoding="utf-8"))]
    exams = discover(bids)
    synthesize(bids, exams, synth, model, 1)
    options = FitOptions(settings=SynthesisSettings(mc_samples=1), device="cpu",
                         synthesis_dir=synth, prep_dir=bids / "derivatives" / "gdsynth-prep",
                         truth_dir=bids / TRUTH_FOLDER)
    cases, failed = collect_cases(model, exams, options)
    if failed:
        raise RuntimeError(f"{bids}: exams without candidates: {failed}")
    atomic_write_text(cache, json.dumps(jsonable([case_to_json(c) for c in cases])))
    return cases


def measure(fit: list, test: list, kinds: tuple[str, ...]) -> dict[str, Any]:
    """Fit on ``fit`` (classifier among ``kinds``), score ``test``."""
    from gdsynth.detection.stage_features import STAGE_FEATURES
    from gdsynth.detection.stage_fit import fit_stage, lesion_counts
    from gdsynth.inference.fit_stage import UNCERTAINTY_FEATURES
    from gdsynth.metrics.roc import auc_ci_delong, roc_auc

    features = [f for f in STAGE_FEATURES if f not in UNCERTAINTY_FEATURES]
    stage, _ = fit_stage(fit, features=features, kinds=kinds)
    scores = [stage.lesion_scores(c.features) if c.features else np.zeros(0) for c in test]
    counts = lesion_counts(test, scores, stage.lesion_threshold)
    y = np.array([c.positive for c in test])
    prob = np.array([stage.exam_probability(s) for s in scores])
    return {"classifier": stage.heldout["classifier"], "lesion_threshold": stage.lesion_threshold,
            "oof_log_loss": stage.heldout["classifiers_tried"][stage.heldout["classifier"]][
                "oof_log_loss"],
            "oof": {"lesion_f1": stage.heldout["lesion"]["lesion_f1"],
                    "exam_auc": stage.heldout["exam_auc"]},
            "test": {**counts, "exam_auc": roc_auc(y, prob),
                     "exam_auc_ci95": list(auc_ci_delong(y, prob))}}


def render(rows: list[dict[str, Any]], n_test: int, n_active: int, n_ref: int) -> str:
    lines = [f"Test: {n_test} exams ({n_active} active), {n_ref} enhancing lesions.", "",
             "| fit exams | classifier | OOF log-loss | OOF lesion F1 | OOF exam AUC | test lesion "
             "sens. | PPV | F1 | FP/scan | test exam AUC (95 % CI) |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        t = r["test"]
        lo, hi = t["exam_auc_ci95"]
        lines.append(
            f"| {r['n_fit']} | {r['label']} | {r['oof_log_loss']:.4f} | {r['oof']['lesion_f1']:.2f} "
            f"| {r['oof']['exam_auc']:.2f} | {t['lesion_sensitivity']:.2f} "
            f"({t['n_detected']}/{t['n_reference']}) | {t['lesion_ppv']:.2f} | "
            f"**{t['lesion_f1']:.2f}** | {t['fp_per_scan']:.2f} | **{t['exam_auc']:.2f}** "
            f"({lo:.2f}–{hi:.2f}) |")
    return "\n".join(lines) + "\n"


def main(argv=None) -> int:
    from gdsynth.io import atomic_write_text, write_json

    args = parse_args(argv)
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    fit = cohort_cases(args.model, args.fit_bids, work / "synth-fit", work / "cases-fit.json")
    test = cohort_cases(args.model, args.test_bids, work / "synth-test", work / "cases-test.json")
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        if n > len(fit):
            raise SystemExit(f"--sizes {n}: the FIT cohort has {len(fit)} exams")
        for label, kinds in (("logistic", ("logistic",)), ("trees", ("trees",)),
                             ("chosen (lower OOF log-loss)", ("logistic", "trees"))):
            r = measure(fit[:n], test, kinds)
            if label.startswith("chosen"):
                label = f"chosen: {r['classifier']}"
            rows.append({"n_fit": n, "label": label, **r})
            print(rows[-1]["n_fit"], label, f"test F1 {r['test']['lesion_f1']:.3f} "
                  f"AUC {r['test']['exam_auc']:.3f}", flush=True)
    table = render(rows, len(test), sum(c.positive for c in test),
                   sum(len(c.reference) for c in test))
    print(table)
    atomic_write_text(args.out_table or work / "learning_curve.md", table)
    write_json(work / "learning_curve.json", {"model": str(args.model), "fit": str(args.fit_bids),
                                              "test": str(args.test_bids), "rows": rows})
    return 0


if __name__ == "__main__":
    sys.exit(main())
