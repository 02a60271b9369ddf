#!/usr/bin/env python
"""Fine-tuning the shipped model to a new phantom site (issue #18): ``--init-from phantom`` on a
few exams of that site, against training from scratch with the same budget and against the
shipped model unchanged, on held-out exams of the same site.

Usage::

    python experiments/finetune_site.py --work /work/cache/finetune/site15T --site site15T \
        --train-subjects 4 --test-subjects 6 --steps 400 [--max-time 20] \
        [--out-table T.md] [--out-json T.json]

1. a phantom cohort of site kind ``--site`` (:data:`gdsynth.phantom.config.SITES`; seed
   ``--seed``, ``--train-subjects`` + ``--test-subjects`` subjects at ``--resolution`` mm, half
   of them with enhancing lesions), prepared at that spacing (the model's: the shipped one is
   1 mm); the first ``--train-subjects`` are the site's training exams, the rest are held out;
2. two runs of ``gdsynth train`` on the training exams (``collect_training_set`` +
   ``train_from_set``, the recipe's train/validation split), with the same recipe (``--recipe``,
   default the shipped model's ``experiments/phantom.yaml``), seed and budget (``--steps``,
   ``--max-time`` minutes): ``fine-tuned`` starts from ``--init-from`` (default ``phantom``),
   ``scratch`` from random weights;
3. the lesion stage (``gdsynth fit-detector``) of both, and of a copy of the source model
   (``+ site stage``), fitted on the site's training exams (4 exams leave one validation exam
   after the split, too few for ``gdsynth train``'s own fit, which needs two); the source
   ``unchanged`` keeps its own stage;
4. ``gdsynth predict`` (1 MC sample) with each of these models on the held-out exams, and
   ``evaluate_folder``: SSIM / PSNR in the brain (normalized units), lesion F1, FP per scan,
   exam AUC.

Everything is cached under ``--work``: the cohort and its preparation, each run (a run stopped
half-way resumes from its last.ckpt; another budget or seed trains into another folder), the
predictions; a rerun redoes only what is missing (the evaluations, a few seconds, are redone).
Wall seconds of each stage go to ``--work/state/timings.json`` (a cached stage keeps its first
record).
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

sys.path.insert(0, str(Path(__file__).resolve().parent))
import phantom_results as PR  # noqa: E402, N812 - the sibling script's stage timings
from site_generalization import COLUMNS  # noqa: E402 - the same table columns as the site table


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("work/finetune_site"))
    p.add_argument("--site", default="site15T", help="phantom site kind of the new site")
    p.add_argument("--train-subjects", type=int, default=4)
    p.add_argument("--test-subjects", type=int, default=6)
    p.add_argument("--resolution", type=float, default=1.0,
                   help="phantom and prepared spacing (mm); must be the source model's")
    p.add_argument("--seed", type=int, default=1800, help="phantom seed (the site's subjects)")
    p.add_argument("--train-seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=400, help="training batches of each run")
    p.add_argument("--max-time", type=float, default=None, help="minutes per run (cap)")
    p.add_argument("--recipe", type=Path, default=ROOT / "experiments" / "phantom.yaml")
    p.add_argument("--init-from", default="phantom", help="source model (name or folder)")
    p.add_argument("--set", dest="settings", action="append", default=[], metavar="KEY=VALUE",
                   help="recipe change for both runs (repeatable), e.g. optim.lr_g=1e-4")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out-table", type=Path, default=None)
    p.add_argument("--out-json", type=Path, default=None)
    return p.parse_args(argv)


def make_cohort(args: argparse.Namespace, bids: Path, timings: PR.Timings) -> list:
    """The site's phantom cohort (cached), prepared at ``--resolution`` mm into
    ``bids/derivatives/gdsynth-prep`` (cached by provenance)."""
    from gdsynth.errors import GdsynthError
    from gdsynth.phantom import generate_dataset
    from gdsynth.preprocess import PrepConfig, prepare_cohort_to_folder

    with timings.stage(f"phantom {bids.name}") as info:
        status: list[str] = []
        exams = generate_dataset(bids, subjects=args.train_subjects + args.test_subjects,
                                 seed=args.seed, resolution=args.resolution, sites=[args.site],
                                 workers=args.workers, on_result=lambda r: status.append(r.status))
        info["work"] = any(s != "skipped" for s in status)
    with timings.stage(f"prepare {bids.name}") as info:
        results = prepare_cohort_to_folder(exams, bids / "derivatives" / "gdsynth-prep",
                                           PrepConfig(spacing=args.resolution),
                                           workers=args.workers)
        info["work"] = any(r.status != "skipped" for r in results)
    failed = [f"{r.case}: {r.error}" for r in results if r.status == "failed"]
    if failed:
        raise GdsynthError(bids, "preparation failed: " + "; ".join(failed))
    return exams


def run_recipe(args: argparse.Namespace, run_dir: Path, init: str | None, resume: bool):
    """The recipe both runs share (budget, seed, spacing, no tracker), ``init`` for one of them;
    when resuming, the run's own config.yaml."""
    from gdsynth.training.launch import load_run_config

    overrides = {"trainer.max_steps": args.steps, "trainer.seed": args.train_seed,
                 "trainer.tracker": "none", "trainer.max_time": args.max_time}
    settings = [*args.settings, f"prep={{spacing: {args.resolution:g}}}"]
    if resume:
        return load_run_config(None, run_dir, resume=True, overrides=overrides)
    return load_run_config(args.recipe, run_dir, resume=False, settings=settings,
                           overrides=overrides, init_from=init)


def predict_and_evaluate(name: str, model: Path, bids: Path, test: list, work: Path,
                         timings: PR.Timings) -> tuple[dict[str, Any], list[str]]:
    """``gdsynth predict`` (1 MC sample; exams already predicted are skipped) of ``model`` on
    the held-out exams, then ``evaluate_folder``; (its summary, failure lines)."""
    from gdsynth.evaluation import ReferenceSpec, evaluate_folder
    from gdsynth.inference.cohort import RunConfig, Step, run_cohort
    from gdsynth.inference.pipeline import SynthesisSettings
    from gdsynth.inference.prep import PrepCache

    pred = work / "predictions" / name
    cfg = RunConfig(out=pred, model=model, step=Step.predict,
                    settings=SynthesisSettings(mc_samples=1, seed=0),
                    prep_cache=PrepCache(bids / "derivatives" / "gdsynth-prep"))
    with timings.stage(f"predict {name}") as info:
        results = run_cohort(test, cfg, bids_root=bids)
        info["work"] = any(r.status != "skipped" for r in results)
    failures = [f"predict {name}: {r.case}: {r.error}" for r in results if r.status == "failed"]
    report = evaluate_folder(pred, ReferenceSpec(root=bids), work / "evaluation" / name,
                             participant_labels=[e.subject for e in test], progress=False)
    return report.summary, failures


def slug(name: str) -> str:
    """A file-name-safe form of a model name."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in name).strip("-").lower()


def fmt(value: Any, digits: int) -> str:
    if value is None:
        return "–"
    return f"{value:.{digits}f}" if isinstance(value, float) else str(value)


def train_arm(args: argparse.Namespace, bids: Path, train_ids: list[str], run_dir: Path,
              init: str | None, timings) -> tuple[Path, dict[str, Any]]:
    """Train one arm into ``run_dir`` (skipped when its model is there, resumed when a
    last.ckpt is); returns the model folder and what its card says about the run."""
    from gdsynth.io import write_json
    from gdsynth.models.card import CARD_NAME, ModelCard
    from gdsynth.training.launch import collect_training_set, train_from_set
    from gdsynth.training.run import last_checkpoint

    model, done = run_dir / "model", run_dir / "finetune_site_done.json"
    with timings.stage(f"train {run_dir.name}") as info:
        if (model / CARD_NAME).is_file() and done.is_file():
            info["work"] = False
        else:
            resume = last_checkpoint(run_dir).is_file()
            cfg = run_recipe(args, run_dir, init, resume)
            data = collect_training_set(bids, run_dir, cfg, participant_labels=train_ids)
            result = train_from_set(data, run_dir, cfg, resume=resume, fit_detector=False)
            write_json(done, {"steps": result.steps})
    card = ModelCard.load(model / CARD_NAME)
    return model, {"steps": card.training.get("steps"),
                   "init_from": card.training.get("init_from"),
                   "split": card.training.get("split"),
                   "train_wall_s": timings.stages[f"train {run_dir.name}"]["wall_s"]}


def fit_site_stage(model: Path, exams: list, bids: Path, timings: PR.Timings) -> str:
    """Fit ``model``'s lesion stage (``gdsynth fit-detector``) on the site's training exams
    (skipped when done); the lines it printed."""
    from gdsynth.inference.fit_stage import FitOptions, fit_after_training
    from gdsynth.io import write_json

    done = model / "finetune_site_stage.json"
    with timings.stage(f"fit stage {model.parent.name}/{model.name}") as info:
        if done.is_file():
            info["work"] = False
            return json.loads(done.read_text(encoding="utf-8"))["lines"]
        lines = fit_after_training(model, exams, FitOptions(), bids_root=bids)
        write_json(done, {"lines": lines, "exams": [e.id for e in exams]})
    logging.info("%s", lines)
    return lines


def table(rows: list[dict[str, Any]]) -> str:
    keys = ["model", "steps", *COLUMNS]
    lines = ["| " + " | ".join(keys) + " |", "|---|" + "---:|" * (len(keys) - 1)]
    for r in rows:
        lines.append("| " + " | ".join(
            fmt(r.get(k), COLUMNS[k][1]) if k in COLUMNS else str(r.get(k, ""))
            for k in keys) + " |")
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> int:
    from gdsynth.evaluation.report import summary_value
    from gdsynth.io import atomic_write_text, write_json
    from gdsynth.models.folder import resolve_model_dir

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    work = args.work.resolve()
    timings = PR.Timings.load(work / "state" / "timings.json")
    bids = work / f"phantom-{args.site}-r{args.resolution:g}-seed{args.seed}"
    exams = make_cohort(args, bids, timings)
    train_ids = sorted({e.subject for e in exams})[:args.train_subjects]
    test = [e for e in exams if e.subject not in train_ids]
    tag = f"{args.site}-n{args.train_subjects}-s{args.steps}-t{args.max_time}-seed{args.train_seed}"
    source = resolve_model_dir(args.init_from)
    refit = work / "models" / f"{slug(args.init_from)}-site-stage-{tag}"
    if not (refit / "finetune_site_stage.json").is_file():
        shutil.rmtree(refit, ignore_errors=True)
        shutil.copytree(source, refit)  # the source itself is never changed
    models: dict[str, tuple[Path, dict[str, Any]]] = {
        "fine-tuned": train_arm(args, bids, train_ids, work / "runs" / f"finetuned-{tag}",
                                args.init_from, timings),
        "scratch": train_arm(args, bids, train_ids, work / "runs" / f"scratch-{tag}", None,
                             timings),
        f"{args.init_from} + site stage": (refit, {"steps": 0}),
        f"{args.init_from} unchanged": (source, {"steps": 0, "stage": "its own"}),
    }
    site_train = [e for e in exams if e.subject in train_ids]
    for name, (model, info) in models.items():
        if name != f"{args.init_from} unchanged":
            info["stage"] = fit_site_stage(model, site_train, bids, timings)
    rows, failures = [], []
    for name, (model, info) in models.items():
        key = slug(f"{name}-{tag}" if name != f"{args.init_from} unchanged" else name)
        summary, failed = predict_and_evaluate(key, model, bids, test, work, timings)
        failures += failed
        rows.append({"model": name, **info,
                     **{k: summary_value(summary, p) for k, (p, _) in COLUMNS.items()}})
        logging.info("%s", rows[-1])
    text = table(rows)
    print(f"site {args.site}, {args.resolution:g} mm: {len(train_ids)} training exams "
          f"({', '.join(train_ids)}), {len(test)} held-out exams; budget {args.steps} steps"
          + (f" / {args.max_time:g} min" if args.max_time else ""))
    print(text)
    for f in failures:
        print(f, file=sys.stderr)
    if args.out_table:
        atomic_write_text(args.out_table, text)
    if args.out_json:
        write_json(args.out_json, {"rows": rows, "failures": failures, "site": args.site,
                                   "resolution_mm": args.resolution, "train": train_ids,
                                   "test": [e.subject for e in test], "steps": args.steps,
                                   "max_time_min": args.max_time, "timings": timings.stages})
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
