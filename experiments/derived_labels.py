#!/usr/bin/env python
"""Training on enhancing labels derived from the real post − pre vs on the phantom truth (#22).

Usage::

    python experiments/derived_labels.py [--train COHORT] [--test COHORT] [--work DIR]
        [--recipe experiments/phantom.yaml] [--steps 500] [--seed 0] [--json OUT]

Steps (each cached under ``--work``; a rerun redoes nothing that is complete):

1. ``gdsynth label TRAIN -o WORK/<train>-derived``: the difference module on the real post-Gd of
   every training exam (no truth used), then ``gdsynth evaluate`` of those labels against the
   phantom truth (``WORK/eval-labels-<train>``): how good the training signal is;
2. two ``gdsynth train`` runs, identical (recipe, ``--steps``, seed, exams, split) but for the
   labels: ``truth`` (the phantom truth, the default) and ``derived`` (``--labels`` the folder of
   step 1; its card must record 0 exams labelled by the truth) in ``WORK/s<steps>/<name>``;
3. ``gdsynth predict`` of the test cohort (pre-contrast inputs only) with each model's own card
   (no recalibration), and ``gdsynth evaluate`` against the phantom truth;
4. one table: lesion sensitivity, PPV, F1, FP/scan (MSSEG rule) and exam AUC, with their 95 % CIs
   (exam bootstrap), printed and written to ``--json``.

The cohorts are read only; training reads the preparation cache in ``TRAIN/derivatives`` (as
``gdsynth train`` does by default); prediction prepares the test exams once into
``WORK/<test>-prep``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from gdsynth.cli.main import main as gdsynth  # noqa: E402


def run(*args: str | Path) -> None:
    """One gdsynth command; stop on failure."""
    argv = [str(a) for a in args]
    print("$ gdsynth " + " ".join(argv), flush=True)
    code = gdsynth(argv)
    if code:
        raise SystemExit(f"gdsynth {argv[0]} failed (exit code {code})")


def evaluate(pred: Path, reference: Path, out: Path) -> dict[str, Any]:
    """``gdsynth evaluate`` (cached) and its ``summary.json``."""
    if not (out / "summary.json").is_file():
        run("evaluate", pred, "-r", reference, "-o", out)
    return json.loads((out / "summary.json").read_text())


def figures(summary: dict[str, Any]) -> dict[str, Any]:
    """Lesion and exam figures of one evaluation summary, with their 95 % CIs."""
    les, pat = summary["lesions"], summary["patient"]
    ci = les.get("ci95_exam_bootstrap", {})
    row: dict[str, Any] = {"exams": summary["n_evaluated"], "lesions": les["n_reference"],
                           "detected": les["n_detected"], "false_positives": les["n_false_positive"]}
    for key in ("sensitivity", "ppv", "f1", "fp_per_scan"):
        row[key] = les[key]
        row[key + "_ci95"] = ci.get(key)
    row["auc"] = pat.get("auc")
    row["auc_ci95"] = pat.get("auc_ci95")
    syn = summary.get("synthesis", {})
    for key in ("ssim", "mae_enhancing", "bias_enhancing"):  # absent for label folders
        if isinstance(syn.get(key), dict):
            row[key] = syn[key]["mean"]
    return row


def _fmt(value: float | None, ci: list | None = None) -> str:
    if value is None:
        return "n/a"
    text = f"{value:.2f}"
    if ci and None not in ci:
        text += f" [{ci[0]:.2f}, {ci[1]:.2f}]"
    return text


def table(rows: dict[str, dict[str, Any]]) -> str:
    synthesis = all("ssim" in r for r in rows.values())
    lines = ["| model | exams | lesions found | sensitivity | PPV | F1 | FP/scan | exam AUC |"
             + (" SSIM | MAE / bias in enhancing lesions |" if synthesis else ""),
             "|---|---|---|---|---|---|---|---|" + ("---|---|" if synthesis else "")]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['exams']} | {r['detected']}/{r['lesions']} | "
            f"{_fmt(r['sensitivity'], r['sensitivity_ci95'])} | {_fmt(r['ppv'], r['ppv_ci95'])} | "
            f"{_fmt(r['f1'], r['f1_ci95'])} | {_fmt(r['fp_per_scan'], r['fp_per_scan_ci95'])} | "
            f"{_fmt(r['auc'], r['auc_ci95'])} |"
            + (f" {r['ssim']:.3f} | {r['mae_enhancing']:.3f} / {r['bias_enhancing']:+.3f} |"
               if synthesis else ""))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path, default=Path("work/cohorts/train-2mm"))
    ap.add_argument("--test", type=Path, default=Path("work/cohorts/siteC-2mm"))
    ap.add_argument("--work", type=Path, default=Path("work/derived_labels"))
    ap.add_argument("--recipe", type=Path, default=ROOT / "experiments" / "phantom.yaml")
    ap.add_argument("--steps", type=int, default=500)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", type=Path, default=None)
    args = ap.parse_args(argv)
    work = args.work
    derived = work / f"{args.train.name}-derived"

    # 1. labels derived from the real post − pre, and how they compare with the truth
    run("label", args.train, "-o", derived)
    signal = figures(evaluate(derived, args.train, work / f"eval-labels-{args.train.name}"))

    # 2-3. two runs identical but for the labels; each predicts and is scored on the test site
    runs = work / f"s{args.steps}"
    results: dict[str, dict[str, Any]] = {}
    for name, extra in (("truth", []), ("derived", ["--labels", derived])):
        folder = runs / name
        if not (folder / "model" / "model_card.json").is_file():
            run("train", args.train, "-o", folder, "-c", args.recipe, "--max-steps", args.steps,
                "--seed", args.seed, "--tracker", "none", "--set", "trainer.max_time=null", *extra)
        card = json.loads((folder / "model" / "model_card.json").read_text())
        sources = card["training"].get("labels", {}).get("counts")  # None: a card from before
        if name == "derived" and (sources is None or sources["truth"]):
            raise SystemExit(f"{folder}: {sources['truth']} exam(s) were labelled by the truth")
        pred = runs / f"pred-{name}"
        run("predict", args.test, "-m", folder / "model", "-o", pred, "--compile", "off",
            "--prep", work / f"{args.test.name}-prep")  # prepared once, for both models
        results[name] = {**figures(evaluate(pred, args.test, runs / f"eval-{name}")),
                         "label_sources": sources}

    report = {"train": str(args.train), "test": str(args.test), "recipe": str(args.recipe),
              "steps": args.steps, "seed": args.seed, "derived_labels_vs_truth": signal,
              "models": results}
    print(f"\nderived labels on {args.train.name} vs the phantom truth:")
    print(table({"gdsynth label": signal}))
    print(f"\n{args.steps} batches of {args.recipe.name}, scored on {args.test.name}:")
    print(table({f"trained on {k} labels": v for k, v in results.items()}))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps(report, indent=2) + "\n")
    return report


if __name__ == "__main__":
    main()
