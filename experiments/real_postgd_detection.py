"""The real registered post-Gd through the difference module, scored against the phantom truth.

For every exam of one or more prepared phantom cohorts (BIDS folders holding
``derivatives/gdsynth-prep`` from ``gdsynth prepare`` and ``derivatives/phantom`` truth; read only),
the prepared real post − pre is run through :func:`gdsynth.detection.detect_real_post` (the
difference module, default :func:`gdsynth.detection.real_post_params`) and matched to the enhancing
truth with the MSSEG rule (``gdsynth.evaluation``). Prints pooled lesion sensitivity, PPV, F1 and
false positives per scan, per size class (< 70, 70–500, > 500 mm³) and per enhancement pattern
(nodular, ring = ring + open ring), and with ``--diagnose`` where each missed true lesion was lost
(no seed, trimmed, too small, suppressed by which rule, rejected by the matching rule).

Arrays loaded from a cohort are cached as ``.npz`` under ``WORK/arrays`` (nothing is written into
the cohorts)::

    python experiments/real_postgd_detection.py /work/cache/cohorts/siteC-2mm \
        --work work/real_postgd [--set key=value ...] [--diagnose] [--json out.json]
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PATTERNS = {"nodular": "nodular", "ring": "ring", "open-ring": "ring"}


def _truth_paths(bids: Path, exam) -> tuple[Path, Path]:
    from gdsynth.io.bids import find_derivative

    root = bids / "derivatives" / "phantom"
    return (find_derivative(root, exam, "dseg", desc="enhancing"),
            find_derivative(root, exam, "lesions", ".tsv"))


def load_cohort(bids: Path, cache: Path, prep: Path | None = None) -> list[dict]:
    """Per exam with a prepared real post-Gd (in ``prep``, default
    ``bids/derivatives/gdsynth-prep``): arrays on the prepared grid (cached as npz)."""
    from gdsynth import preprocess
    from gdsynth.io import read_image
    from gdsynth.io.bids import discover
    from gdsynth.preprocess.resample import resample

    out = []
    cache.mkdir(parents=True, exist_ok=True)
    config = preprocess.PrepConfig(use_post=True)
    for exam in discover(bids):
        if exam.t1w_gd is None:
            continue
        npz = cache / f"{exam.id}.npz"
        dseg, table = _truth_paths(bids, exam)
        if not npz.is_file():
            root = prep or bids / "derivatives" / "gdsynth-prep"
            found = preprocess.find_prepared(exam, root, config)
            if found.prepared is None:
                print(f"{exam.id}: no prepared post-Gd ({found.reason}); skipped", file=sys.stderr)
                continue
            vols = preprocess.load_prepared(found.prepared)
            truth, tgeo = read_image(dseg, allow_constant=True)
            truth = resample(truth.astype(np.float32), tgeo, vols.geometry, interpolation="nearest")
            np.savez_compressed(
                npz, **{k: v.astype(np.float32) for k, v in vols.images.items()},
                brain=vols.mask, truth=np.rint(truth).astype(np.int32),
                spacing=np.asarray(vols.geometry.spacing, float))
        with np.load(npz) as z:
            ex = {k: z[k] for k in z.files}
        with open(table, newline="") as fh:
            rows = list(csv.DictReader(fh, delimiter="\t"))
        ex["patterns"] = {int(r["label"]): r["enhancement"] for r in rows if int(r["label"]) > 0}
        ex["id"] = exam.id
        out.append(ex)
    return out


def detect(ex: dict, params):
    from gdsynth.detection import detect_real_post

    return detect_real_post(ex["T1w"], ex["T1w_gd"], brain_mask=ex["brain"],
                            spacing=tuple(ex["spacing"]), params=params, flair=ex.get("FLAIR"),
                            t2w=ex.get("T2w"))


def evaluate(exams: list[dict], params, diagnose: bool = False) -> dict:
    """Pooled figures (overall, by size, by pattern) and per-lesion rows."""
    from gdsynth.evaluation.aggregate import lesion_summary
    from gdsynth.evaluation.exam import evaluate_arrays

    results, rows = [], []
    for ex in exams:
        det = detect(ex, params)
        sp = tuple(float(s) for s in ex["spacing"])
        res = evaluate_arrays(ex["truth"], det.labels, sp, exam=ex["id"],
                              scores={les["label"]: les["score"] for les in det.lesions})
        results.append(res)
        for ref in res.match.reference:
            row = {"exam": ex["id"], "truth_label": ref["source_label"],
                   "volume_mm3": ref["volume_mm3"], "size_class": ref["size_class"],
                   "pattern": PATTERNS.get(ex["patterns"].get(ref["source_label"], ""), "other"),
                   "detected": ref["detected"], "coverage": ref["coverage"]}
            if diagnose and not ref["detected"]:
                row["lost_at"] = lost_at(ex, det, ref["source_label"], params)
            rows.append(row)
        if diagnose:
            for p in res.match.predicted:
                if not p["true_positive"]:
                    les = next(x for x in det.lesions if x["label"] == p["source_label"])
                    print(f"  FP {ex['id']} label {p['source_label']}: {p['volume_mm3']:.0f} mm3 "
                          f"max {les['max_enhancement']:.2f} flair {les['flair_contrast']} "
                          f"surf {les['dist_surface_mm']:.1f} csf {les['dist_csf_mm']} "
                          f"elong {les['elongation']:.1f} loc {les['location']}")
    summary = lesion_summary(results)
    by_pattern = {}
    for pat in ("nodular", "ring"):
        rr = [r for r in rows if r["pattern"] == pat]
        d = sum(r["detected"] for r in rr)
        by_pattern[pat] = {"n_reference": len(rr), "n_detected": d,
                           "sensitivity": d / len(rr) if rr else float("nan")}
    summary["by_pattern"] = by_pattern
    summary["n_active_exams"] = sum(bool(ex["truth"].any()) for ex in exams)
    return {"summary": summary, "lesions": rows}


def lost_at(ex: dict, det, truth_label: int, params) -> str:
    """Where a missed true lesion was lost: ``matching`` (a kept detection overlaps it but fails
    the MSSEG rule), the suppression rule of the candidate that overlaps it most, ``too-small``
    (a candidate under ``min_volume_mm3``), ``trimmed`` (the hysteresis region reached it but
    trimming to the peak removed it), ``no-seed`` (no hysteresis region reached it)."""
    from gdsynth.detection.candidates import (
        difference_candidates,
        remove_small,
    )

    les = ex["truth"] == truth_label
    if (det.labels[les] > 0).any():
        return "matching"
    sp = tuple(float(s) for s in ex["spacing"])
    enh = ex["T1w_gd"] - ex["T1w"]
    brain = ex["brain"].astype(bool)
    cand = difference_candidates(enh, brain, sp, params)
    small = remove_small(cand, params.min_volume_mm3, sp)
    best, reason = 0, None
    for s in det.suppressed:
        n = int(((small == s["label"]) & les).sum())
        if n > best:
            best, reason = n, s["reason"]
    if reason is not None:
        return reason
    if (cand[les] > 0).any():
        return "too-small"
    untrimmed = difference_candidates(enh, brain, sp, params.replace(peak_fraction=0.0))
    return "trimmed" if (untrimmed[les] > 0).any() else "no-seed"


def print_table(name: str, res: dict) -> None:
    s = res["summary"]
    print(f"\n{name}: {s['n_exams']} exams ({s['n_active_exams']} active), "
          f"{s['n_reference']} enhancing lesions")
    print(f"  sensitivity {s['sensitivity']:.3f}  PPV {s['ppv']:.3f}  F1 {s['f1']:.3f}  "
          f"FP/scan {s['fp_per_scan']:.2f}  ({s['n_detected']}/{s['n_reference']} found, "
          f"{s['n_false_positive']} FP)")
    for k, v in s["by_size"].items():
        print(f"  size {k:6s} {v['n_detected']:3d}/{v['n_reference']:3d} found "
              f"(sens {v['sensitivity']:.3f}), {v['n_false_positive']} FP")
    for k, v in s["by_pattern"].items():
        print(f"  pattern {k:8s} {v['n_detected']:3d}/{v['n_reference']:3d} found "
              f"(sens {v['sensitivity']:.3f})")
    lost = [r for r in res["lesions"] if not r["detected"]]
    for r in lost:
        print(f"  missed {r['exam']} label {r['truth_label']} {r['volume_mm3']:.0f} mm3 "
              f"{r['pattern']} coverage {r['coverage']:.2f} lost at {r.get('lost_at', '?')}")


def main(argv: list[str] | None = None) -> int:
    from gdsynth.detection import real_post_params

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("cohorts", nargs="+", type=Path, help="prepared phantom BIDS folders (read only)")
    p.add_argument("--work", type=Path, default=Path("work/real_postgd"))
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a DetectionParams field (JSON value)")
    p.add_argument("--diagnose", action="store_true", help="where each missed lesion was lost")
    p.add_argument("--json", type=Path, default=None)
    p.add_argument("--prep", type=Path, default=None,
                   help="preparation folder (default COHORT/derivatives/gdsynth-prep; with one "
                        "cohort only)")
    args = p.parse_args(argv)
    overrides = {}
    for kv in args.set:
        key, value = kv.split("=", 1)
        overrides[key] = json.loads(value)
    params = real_post_params(**overrides)
    report = {"params": overrides, "cohorts": {}}
    pooled = []
    for bids in args.cohorts:
        exams = load_cohort(bids, args.work / "arrays" / bids.name, args.prep)
        res = evaluate(exams, params, args.diagnose)
        print_table(str(bids), res)
        report["cohorts"][str(bids)] = res
        pooled += exams
    if args.json:
        args.json.write_text(json.dumps(report, indent=1, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
