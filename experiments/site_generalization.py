#!/usr/bin/env python
"""Generalization to phantom sites never seen in training (issue #16): one row per held-out site kind.

Usage::

    python experiments/site_generalization.py --work /work/cache/sites/generalization \
        --model shipped=phantom --model robust-2mm=DIR --model AB-2mm=DIR \
        --subjects 1=3 --subjects 2=4 [--stage cohorts|all] [--out-table T.md] [--out-json T.json]

For every held-out site kind (:data:`HELD_OUT`: the same-simulator unseen site C, 1.5 T, MPRAGE-like
T1w, 5 mm thick-slice FLAIR/T2w, the alternative lesion model, and all of these at once) and every
model, at the model card's resolution:

1. a phantom cohort of that site kind (seed :data:`SEED`, ``--subjects RES=N`` subjects at RES mm,
   half of them with enhancing lesions), prepared with ``prepare_cohort_to_folder`` (the synthesis
   reference);
2. ``gdsynth predict`` (``run_cohort``, 1 MC sample, the card's own detection parameters) and the
   ``post = pre`` baseline (the input T1w as the synthetic) on the same exams;
3. ``evaluate_folder`` of both: SSIM / PSNR in the brain (normalized units, NAWM = 1), lesion F1,
   FP per scan, exam AUC; plus the normalization check: median prepared post − pre in the phantom's
   true normal-appearing white matter and in its true enhancing lesions, and how many exams the
   out-of-domain quality flag referred (``quality: out of domain``);
4. deliberately foreign exams made from the first site-C exam (:data:`FOREIGN`: every sequence's
   contrast inverted inside the head; a CT-like image, 30/40/8 "HU" + 100 in WM/GM/CSF from the
   phantom's tissue maps, given as every sequence), predicted like the others: the OOD flag must
   refer them.

``--domain-from NAME=BIDS`` first stores a domain reference (``gdsynth.preprocess.domain``) in model
NAME's card from the prepared exams of BIDS (``derivatives/gdsynth-prep`` or ``prep`` next to it),
for models trained before training recorded it (the card is updated in place: use it on your own
model folders only).

Everything is cached under ``--work`` (one folder per cohort); a rerun redoes only what is missing.
The functions of ``experiments/phantom_results.py`` (cohorts, cached preparation, prediction,
baselines, evaluation) are reused.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(Path(__file__).resolve().parent))
import phantom_results as PR  # noqa: E402, N812 - the sibling script's cohort/predict/evaluate helpers

#: Row label -> phantom site kind (gdsynth.phantom.config.SITES).
HELD_OUT = {
    "same simulator, unseen site C": "siteC",
    "1.5 T": "site15T",
    "MPRAGE-like T1w": "siteMPRAGE",
    "thick-slice 5 mm FLAIR/T2w": "siteThick",
    "alternative lesion model": "siteAltLesion",
    "all of these at once": "siteAll",
}
SEED = 1600
#: Foreign exams (row label -> kind).
FOREIGN = {"foreign: inverted contrast": "inverted", "foreign: CT-like": "ct"}
#: Table columns: header -> (path in evaluate_folder's summary.json, digits).
COLUMNS = {
    "exams": ("n_evaluated", 0),
    "SSIM": ("synthesis.ssim.mean", 3),
    "PSNR (dB)": ("synthesis.psnr.mean", 2),
    "lesion F1": ("lesions.f1", 3),
    "FP/scan": ("lesions.fp_per_scan", 2),
    "exam AUC": ("patient.auc", 3),
}


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, default=Path("work/site_generalization"))
    p.add_argument("--model", action="append", default=[], help="NAME=FOLDER (repeatable)")
    p.add_argument("--subjects", action="append", default=[],
                   help="RES=N: subjects per site kind at RES mm (default 1=3, 2=4)")
    p.add_argument("--sites", default=",".join(HELD_OUT.values()),
                   help="comma-separated held-out site kinds to run")
    p.add_argument("--stage", choices=("cohorts", "ood", "all"), default="all")
    p.add_argument("--domain-from", action="append", default=[], help="NAME=BIDS (see above)")
    p.add_argument("--workers", type=int, default=1)
    p.add_argument("--out-table", type=Path, default=None)
    p.add_argument("--out-json", type=Path, default=None)
    return p.parse_args(argv)


def normalization_check(exams: list, bids: Path) -> dict[str, float]:
    """Median prepared post − pre (NAWM-normalized) in the true NAWM and true enhancing lesions,
    pooled over the exams (truth resampled onto the prepared grid, nearest neighbour)."""
    from gdsynth.io import read_image
    from gdsynth.io.bids import find_derivative
    from gdsynth.preprocess import load_prepared, open_prepared
    from gdsynth.preprocess.resample import resample

    nawm_vals, les_vals = [], []
    for exam in exams:
        vols = load_prepared(open_prepared(exam, bids / "derivatives" / "gdsynth-prep"))
        diff = vols.images["T1w_gd"] - vols.images["T1w"]

        def truth(suffix: str, exam=exam, target=vols.geometry, **ent: str) -> np.ndarray:
            arr, geo = read_image(find_derivative(bids / "derivatives" / "phantom", exam, suffix,
                                                  **ent), allow_constant=True)
            return resample(arr.astype(np.float32), geo, target, interpolation="nearest")

        wm = truth("probseg", label="WM") > 0.9
        normal = wm & (truth("mask", label="L", desc="all") == 0) & (truth("mask", label="vessel") == 0)
        enh = truth("dseg", desc="enhancing") > 0
        nawm_vals.append(diff[normal & vols.mask])
        les_vals.append(diff[enh & vols.mask])
    les = np.concatenate(les_vals) if les_vals else np.zeros(0)
    return {"nawm_enhancement": float(np.median(np.concatenate(nawm_vals))),
            "lesion_enhancement": float(np.median(les)) if les.size else float("nan")}


def store_domain_reference(model_dir: Path, bids: Path, prep_root: Path) -> None:
    """Write a domain reference from the prepared exams of ``bids`` into ``model_dir``'s card."""
    from gdsynth.io.bids import discover
    from gdsynth.models.card import CARD_NAME, ModelCard
    from gdsynth.preprocess import open_prepared
    from gdsynth.preprocess.domain import reference_from_files

    card = ModelCard.load(model_dir / CARD_NAME)
    exams = [open_prepared(e, prep_root).paths for e in discover(bids)]
    card.normalization["domain"] = reference_from_files(exams, card.inputs)
    card.save(model_dir / CARD_NAME)


def ood_check(model_dir: Path, bids: Path, exams: list) -> list[list[str]]:
    """The out-of-domain flags of each prepared exam against the model card's reference (what
    ``predict`` adds to the summary), without predicting again."""
    from gdsynth.models.card import CARD_NAME, ModelCard
    from gdsynth.preprocess import load_prepared, open_prepared
    from gdsynth.preprocess.domain import domain_flags

    card = ModelCard.load(model_dir / CARD_NAME)
    out = []
    for exam in exams:
        vols = load_prepared(open_prepared(exam, bids / "derivatives" / "gdsynth-prep"))
        inputs = {k: v for k, v in vols.images.items() if k in card.inputs}
        out.append(domain_flags(inputs, vols.mask, card.normalization.get("domain")))
    return out


def make_foreign(src_bids: Path, exam, out: Path, kind: str) -> list:
    """A one-exam BIDS dataset: ``exam`` of ``src_bids`` made foreign (``inverted`` or ``ct``)."""
    from gdsynth.io import read_image, write_image, write_json
    from gdsynth.io.bids import discover
    from gdsynth.phantom import truth_path
    from gdsynth.phantom.dataset import raw_paths
    from gdsynth.phantom.metadata import raw_description

    if (out / "dataset_description.json").is_file():
        return discover(out)
    target = raw_paths(out, exam)
    t1w, geo = read_image(exam.t1w)
    rng = np.random.default_rng(0)
    if kind == "ct":
        tissue = {k: read_image(truth_path(src_bids, exam, "probseg", label=k))[0]
                  for k in ("WM", "GM", "CSF")}
        ct = 100 + 30 * tissue["WM"] + 40 * tissue["GM"] + 8 * tissue["CSF"]
        ct = np.where(sum(tissue.values()) > 0.5, ct + 3 * rng.standard_normal(ct.shape), 0)
    for seq in ("T1w", "T2w", "FLAIR", "T1w_gd"):
        if kind == "ct":
            arr, g = ct, geo
        else:
            arr, g = read_image(exam.path(seq))
            head = arr > 0.05 * np.percentile(arr[arr > 0], 50)
            arr = np.where(head, np.percentile(arr[head], 99.9) - arr, 0).clip(0)
        write_image(target.path(seq), np.rint(arr).astype(np.int16), g, dtype=np.int16)
    write_json(out / "dataset_description.json", raw_description(0))
    return discover(out)


def ood_referrals(pred: Path, exams: list) -> int:
    """Exams whose summary carries the out-of-domain quality flag."""
    n = 0
    for path in pred.glob("sub-*/**/*.json"):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            continue
        flags = data.get("detection", {}).get("quality_flags", []) if isinstance(data, dict) else []
        n += any("out of domain" in str(f) for f in flags)
    return n


def main(argv: Sequence[str] | None = None) -> int:
    from gdsynth.evaluation.report import summary_value
    from gdsynth.io import atomic_write_text, write_json
    from gdsynth.models.card import CARD_NAME, ModelCard
    from gdsynth.models.folder import resolve_model_dir
    from gdsynth.preprocess import PrepConfig, prepare_cohort_to_folder

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    work = args.work.resolve()
    given = {float(k): int(v) for k, v in (s.split("=") for s in args.subjects)}
    subjects = {1.0: 3, 2.0: 4, **given}
    models = dict(m.split("=", 1) for m in args.model)
    specs = {}
    for name, folder in models.items():
        src = resolve_model_dir(folder)
        specs[name] = (src, float(ModelCard.load(src / CARD_NAME).spacing_mm or 1.0))
    resolutions = sorted({r for _, r in specs.values()} or given or subjects)
    timings = PR.Timings.load(work / "state" / "timings.json")
    for item in args.domain_from:
        name, src_bids = item.split("=", 1)
        root = Path(src_bids)
        prep = root / "derivatives" / "gdsynth-prep"
        store_domain_reference(specs[name][0], root, prep if prep.is_dir() else root.parent / "prep")
    kinds = [s for s in args.sites.split(",") if s]
    cohorts: dict[tuple[str, float], tuple[Path, list]] = {}
    for res in resolutions:
        for kind in kinds:
            bids = work / f"phantom-{kind}-r{res:g}"
            exams = PR.make_cohort(bids, subjects[res], SEED, res, [kind], args.workers, timings,
                                   f"{kind} {res:g} mm")
            PR.prepare(exams, bids, res, args.workers, timings, f"{kind} {res:g} mm")
            cohorts[(kind, res)] = (bids, exams)
    if args.stage == "cohorts":
        return 0
    if args.stage == "ood":
        result = {}
        for name, (src, res) in specs.items():
            for kind in kinds:
                bids, exams = cohorts[(kind, res)]
                result[f"{name} {kind}"] = ood_check(src, bids, exams)
            for kind in FOREIGN.values():
                bids = work / f"foreign-{kind}-r{res:g}"
                if bids.is_dir():
                    from gdsynth.io.bids import discover

                    result[f"{name} foreign-{kind}"] = ood_check(src, bids, discover(bids))
        for key, flags in result.items():
            print(f"{key}: {sum(bool(f) for f in flags)}/{len(flags)} flagged "
                  f"{[f[:1] for f in flags]}")
        if args.out_json:
            write_json(args.out_json, result)
        return 0
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    for name, (src, res) in specs.items():
        for label, kind in HELD_OUT.items():
            if kind not in kinds:
                continue
            bids, exams = cohorts[(kind, res)]
            cwork = work / "state" / f"{kind}-r{res:g}"
            pred = bids / "derivatives" / f"pred-{PR.slug(name)}"
            cfg = PR.run_config(pred, src, "predict", 1, args.workers, bids=bids)
            failures += PR.run(exams, cfg, bids, timings, f"predict {name} {kind}")
            base = PR.write_baseline("post=pre", exams, bids, cwork, timings, failures)
            model_sum = PR.evaluate(f"{name}-{kind}", pred, bids, exams, cwork, timings)
            base_sum = PR.evaluate(f"post-pre-{kind}-r{res:g}", base, bids, exams, cwork, timings)
            norm = normalization_check(exams, bids)
            row = {"model": name, "site": label, "kind": kind, "resolution_mm": res,
                   **{k: summary_value(model_sum, p) for k, (p, _) in COLUMNS.items()},
                   "post=pre SSIM": summary_value(base_sum, COLUMNS["SSIM"][0]),
                   "post=pre PSNR (dB)": summary_value(base_sum, COLUMNS["PSNR (dB)"][0]),
                   "OOD referred": ood_referrals(pred, exams), **norm}
            rows.append(row)
            log_row = {k: (round(v, 3) if isinstance(v, float) else v) for k, v in row.items()}
            logging.info("%s", log_row)
    for name, (src, res) in specs.items():
        if ("siteC", res) not in cohorts:
            continue
        c_bids, c_exams = cohorts[("siteC", res)]
        for label, kind in FOREIGN.items():
            bids = work / f"foreign-{kind}-r{res:g}"
            exams = make_foreign(c_bids, c_exams[0], bids, kind)
            prepare_cohort_to_folder(exams, bids / "derivatives" / "gdsynth-prep",
                                     PrepConfig(spacing=res))
            pred = bids / "derivatives" / f"pred-{PR.slug(name)}"
            cfg = PR.run_config(pred, src, "predict", 1, args.workers, bids=bids)
            fails = PR.run(exams, cfg, bids, timings, f"predict {name} {kind}")
            # a foreign exam may fail preparation outright: that is a refusal too, and reported
            rows.append({"model": name, "site": label, "kind": kind, "resolution_mm": res,
                         "exams": len(exams), "OOD referred": ood_referrals(pred, exams),
                         "failed": fails})
            logging.info("%s: %s", label, rows[-1])
    header = ["model", "held-out site", "mm", "exams", "SSIM", "post=pre SSIM", "PSNR (dB)",
              "post=pre PSNR (dB)", "lesion F1", "FP/scan", "exam AUC", "OOD referred",
              "NAWM enh.", "lesion enh."]
    keys = ["model", "site", "resolution_mm", "exams", "SSIM", "post=pre SSIM", "PSNR (dB)",
            "post=pre PSNR (dB)", "lesion F1", "FP/scan", "exam AUC", "OOD referred",
            "nawm_enhancement", "lesion_enhancement"]
    digits = {"SSIM": 3, "post=pre SSIM": 3, "PSNR (dB)": 2, "post=pre PSNR (dB)": 2,
              "lesion F1": 3, "FP/scan": 2, "exam AUC": 3, "nawm_enhancement": 3,
              "lesion_enhancement": 3, "resolution_mm": 0, "exams": 0, "OOD referred": 0}
    lines = ["| " + " | ".join(header) + " |", "|---|---|" + "---:|" * (len(header) - 2)]
    for r in rows:
        lines.append("| " + " | ".join(PR.fmt(r.get(k), digits[k]) if k in digits
                                       else str(r.get(k, "")) for k in keys) + " |")
    table = "\n".join(lines) + "\n"
    print(table)
    for f in failures:
        print(f, file=sys.stderr)
    if args.out_table:
        atomic_write_text(args.out_table, table)
    if args.out_json:
        write_json(args.out_json, {"rows": rows, "failures": failures, "seed": SEED,
                                   "subjects": {str(k): v for k, v in subjects.items()}})
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
