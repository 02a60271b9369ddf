#!/usr/bin/env python
"""Mixed datasets (issue #18): N exams with a post-Gd T1w plus M lesion-mask-only exams from
another phantom site, against the N exams alone, same recipe, seed and budget; scored on the
unseen site.

Usage::

    python experiments/mixed_datasets.py --train TRAIN_BIDS --cal CAL_BIDS --test TEST_BIDS \
        --work DIR [--n-gd 4] [--n-mask 8] [--steps 800] [--max-time MIN] [--spacing 2] \
        [--n-cal 0] [--n-test 0] [--recipe experiments/multitask.yaml] [--set KEY=VALUE ...]

The cohorts are phantoms made by ``gdsynth phantom`` (``participants.tsv`` with ``site`` and
``n_active_lesions``; phantom truth under ``derivatives/phantom``), e.g. a training cohort of
sites A and B, a calibration cohort of A+B with another seed, and a test cohort of the unseen
site C, all at ``--spacing`` mm.

Data (views of TRAIN, symlinks, nothing copied or modified):

* ``gd``: the first ``--n-gd`` siteA subjects of TRAIN with active lesions (post-Gd T1w);
* ``maskonly``: the first ``--n-mask`` siteB subjects of TRAIN without their post-Gd T1w
  (their all-lesion mask is the phantom truth ``_label-L_desc-all_mask``: one case of the
  ``--labels`` rule of ``gdsynth train``).

Arms: ``gd-only`` = ``collect_training_set([gd])``; ``mixed`` = ``collect_training_set([gd,
maskonly])``; both with ``--recipe`` (default multitask: heads enhancing + lesions; an exam
without post-Gd trains only the lesions head), ``data.val_fraction=0``, ``--steps`` batches,
seed 0. The lesion stage of each is fitted on CAL (the same exams for both,
``fit_after_training``); then ``run_cohort`` (``gdsynth predict``, 1 MC sample) and
``evaluate_folder`` on TEST: SSIM / PSNR in the brain, lesion F1 with its exam-bootstrap CI, FP
per scan, exam AUC with its DeLong CI. Own preparation caches under ``--work``; a trained arm,
a fitted stage and the test preparation are reused by a rerun with the same ``--steps``.
Writes ``DIR/table-sSTEPS.md`` and ``DIR/result-sSTEPS.json``.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = {  # header -> (summary path, digits)
    "exams": ("n_evaluated", 0),
    "SSIM": ("synthesis.ssim.mean", 3),
    "PSNR (dB)": ("synthesis.psnr.mean", 2),
    "lesion F1": ("lesions.f1", 3),
    "F1 95% CI": ("lesions.ci95_exam_bootstrap.f1", 3),
    "FP/scan": ("lesions.fp_per_scan", 2),
    "exam AUC": ("patient.auc", 3),
    "AUC 95% CI": ("patient.auc_ci95", 3),
}


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("work/mixed_datasets"))
    p.add_argument("--train", type=Path, required=True, help="phantom cohort with sites A and B")
    p.add_argument("--cal", type=Path, required=True, help="calibration cohort (lesion stage)")
    p.add_argument("--test", type=Path, required=True, help="test cohort (unseen site)")
    p.add_argument("--recipe", type=Path, default=ROOT / "experiments" / "multitask.yaml")
    p.add_argument("--n-gd", type=int, default=4)
    p.add_argument("--n-mask", type=int, default=8)
    p.add_argument("--n-cal", type=int, default=0, help="calibration exams (0: all)")
    p.add_argument("--n-test", type=int, default=0, help="test exams (0: all)")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--max-time", type=float, default=None, help="minutes per arm")
    p.add_argument("--spacing", type=float, default=2.0, help="the cohorts' (and models') mm")
    p.add_argument("--set", dest="settings", action="append", default=[])
    return p.parse_args(argv)


def _participants(bids: Path) -> list[dict]:
    from gdsynth.io import read_tsv

    return read_tsv(bids / "participants.tsv")


def make_view(src: Path, dst: Path, subjects: list[str], *, drop_post: bool) -> Path:
    """``dst``: a BIDS folder of symlinks to ``subjects`` of ``src`` (raw files, phantom truth),
    without the post-Gd T1w when ``drop_post``; a finished view of the same subjects is reused,
    another one is rebuilt."""
    stamp = json.dumps({"subjects": list(subjects), "drop_post": drop_post})
    if (dst / ".done").is_file() and (dst / ".done").read_text() == stamp:
        return dst  # the same view, finished earlier
    shutil.rmtree(dst, ignore_errors=True)
    for sub in subjects:
        for f in (src / sub).rglob("*"):
            if f.is_file() and not (drop_post and "ce-gadolinium" in f.name):
                target = dst / f.relative_to(src)
                target.parent.mkdir(parents=True, exist_ok=True)
                target.symlink_to(f)
        truth = src / "derivatives" / "phantom" / sub
        (dst / "derivatives" / "phantom").mkdir(parents=True, exist_ok=True)
        (dst / "derivatives" / "phantom" / sub).symlink_to(truth)
    (dst / ".done").write_text(stamp)
    return dst


def train_arm(name: str, datasets: list[Path], work: Path, args) -> tuple[Path, dict, float]:
    from gdsynth.models.card import CARD_NAME, ModelCard
    from gdsynth.training.launch import collect_training_set, load_run_config, train_from_set

    run = work / "runs" / f"{name}-s{args.steps}"
    t0 = time.time()
    if not (run / "model" / CARD_NAME).is_file():
        shutil.rmtree(run, ignore_errors=True)
        overrides = {"trainer.max_steps": args.steps, "trainer.seed": 0,
                     "trainer.tracker": "none", "trainer.max_time": args.max_time}
        cfg = load_run_config(args.recipe, run, resume=False, overrides=overrides,
                              settings=["data.val_fraction=0", *args.settings])
        prep = work / "prep-train" if len(datasets) > 1 else work / "prep-train" / "gd"
        data = collect_training_set(datasets, run, cfg, prep_dir=prep)
        train_from_set(data, run, cfg, prep_dir=prep, fit_detector=False)
    card = ModelCard.load(run / "model" / CARD_NAME)
    return run / "model", card.training, time.time() - t0


def fit_stage(model: Path, cal_exams: list, args, work: Path) -> str:
    from gdsynth.inference.fit_stage import FitOptions, fit_after_training

    done = model / "mixed_run_stage.json"
    if done.is_file():
        return json.loads(done.read_text())["lines"]
    lines = fit_after_training(model, cal_exams, FitOptions(prep_dir=work / "prep-cal"),
                               bids_root=args.cal)
    done.write_text(json.dumps({"lines": lines}))
    return lines


def score(name: str, model: Path, test_exams: list, args, work: Path) -> dict:
    from gdsynth.evaluation import ReferenceSpec, evaluate_folder
    from gdsynth.inference.cohort import RunConfig, Step, run_cohort
    from gdsynth.inference.pipeline import SynthesisSettings
    from gdsynth.inference.prep import PrepCache

    pred = work / "predictions" / f"{name}-s{args.steps}"
    cfg = RunConfig(out=pred, model=model, step=Step.predict,
                    settings=SynthesisSettings(mc_samples=1, seed=0),
                    prep_cache=PrepCache(work / "prep-test"))
    results = run_cohort(test_exams, cfg, bids_root=args.test)
    failed = [f"{r.case}: {r.error}" for r in results if r.status == "failed"]
    report = evaluate_folder(pred, ReferenceSpec(root=args.test, prep_dir=work / "prep-test"),
                             work / "evaluation" / f"{name}-s{args.steps}",
                             participant_labels=[e.subject for e in test_exams], progress=False)
    return {"summary": report.summary, "failed": failed}


def fmt(v, digits: int) -> str:
    if v is None:
        return "–"
    if isinstance(v, list):
        return "[" + ", ".join(fmt(x, digits) for x in v) + "]"
    return f"{v:.{digits}f}" if isinstance(v, float) else str(v)


def main(argv=None) -> int:
    from gdsynth.evaluation.report import summary_value
    from gdsynth.io.bids import discover

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    args = parse_args(argv)
    work = args.work.resolve()
    rows = _participants(args.train)
    gd_subs = [r["participant_id"] for r in rows
               if r["site"] == "siteA" and int(r["n_active_lesions"]) > 0][:args.n_gd]
    mask_subs = [r["participant_id"] for r in rows if r["site"] == "siteB"][:args.n_mask]
    gd = make_view(args.train, work / "views" / "gd", gd_subs, drop_post=False)
    masks = make_view(args.train, work / "views" / "maskonly", mask_subs, drop_post=True)
    cal = discover(args.cal)[:args.n_cal or None]
    test = discover(args.test)[:args.n_test or None]
    from gdsynth.training.cohort import prepare_cohort

    for src, exams, dst in ((args.cal, cal, work / "prep-cal"), (args.test, test, work / "prep-test")):
        # prepared once, as the models need them (their spacing), with the real post-Gd (which
        # evaluation scores against): inference and evaluation then read this cache
        prepare_cohort(src, exams, prep_root=dst, prep_config={"spacing": args.spacing},
                       progress=False)
    timings, out = {}, []
    for name, datasets in (("gd-only", [gd]), ("mixed", [gd, masks])):
        model, training, wall = train_arm(name, datasets, work, args)
        timings[f"train {name}"] = wall
        t0 = time.time()
        stage = fit_stage(model, cal, args, work)
        timings[f"stage {name}"] = time.time() - t0
        t0 = time.time()
        scored = score(name, model, test, args, work)
        timings[f"score {name}"] = time.time() - t0
        row = {"model": name, "n_gd": training["data"].get("n_with_target"),
               "n_mask_only": training["data"].get("n_mask_only"), "steps": training["steps"],
               **{k: summary_value(scored["summary"], p) for k, (p, _) in COLUMNS.items()},
               "failed": scored["failed"], "stage": stage}
        out.append(row)
        logging.info("%s", {k: v for k, v in row.items() if k != "stage"})
    keys = ["model", "n_gd", "n_mask_only", "steps", *COLUMNS]
    lines = ["| " + " | ".join(keys) + " |", "|---" * len(keys) + "|"]
    for r in out:
        lines.append("| " + " | ".join(fmt(r.get(k), COLUMNS[k][1]) if k in COLUMNS
                                       else str(r.get(k)) for k in keys) + " |")
    text = "\n".join(lines)
    print(f"gd exams: {gd_subs}; mask-only exams (siteB, post-Gd dropped): {mask_subs}; "
          f"cal: {len(cal)} exams of {args.cal.name}; test: {len(test)} exams of {args.test.name}")
    print(text)
    (work / f"table-s{args.steps}.md").write_text(text + "\n")
    (work / f"result-s{args.steps}.json").write_text(json.dumps(
        {"rows": out, "timings_s": timings, "gd": gd_subs, "mask_only": mask_subs,
         "recipe": str(args.recipe), "steps": args.steps}, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
