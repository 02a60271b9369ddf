"""Cohort summary: pooled lesion-wise metrics (overall and by size), FROC, patient-level metrics
and synthesis statistics, from a list of :class:`~gdsynth.evaluation.exam.ExamResult`.

Lesion-wise numbers are **pooled** over exams (sum of detected / sum of reference lesions, sum
of TP / sum of predicted lesions), F1 = 2 PPV Sens / (PPV + Sens), false positives per scan =
false positives / scored exams (exams without lesions included). Voxel Dice is given both pooled
(all voxels of all exams) and as the mean over exams that have a reference lesion.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict

import numpy as np

from gdsynth.evaluation.exam import ExamResult
from gdsynth.evaluation.froc import froc_curve, froc_summary
from gdsynth.evaluation.patient import operating_point, patient_metrics
from gdsynth.evaluation.synthesis import DATA_RANGE
from gdsynth.metrics.lesions import SIZE_CLASSES, DetectionCriteria


def _ratio(k: int, n: int) -> float:
    return k / n if n else float("nan")


def f1_score(ppv: float, sensitivity: float) -> float:
    """2 PPV Sens / (PPV + Sens), i.e. 2 TP / (2 TP + FP + FN).

    0 when both are 0, and also when one is undefined and the other is 0: a method that detects
    nothing while there are reference lesions (PPV undefined, sensitivity 0), or whose every
    detection is false while there is none to find, has no true positive, so F1 = 0. NaN when both
    are undefined (nothing to find, nothing found) or the pair is inconsistent (one undefined,
    the other positive)."""
    nan_p, nan_s = math.isnan(ppv), math.isnan(sensitivity)
    if nan_p or nan_s:
        return 0.0 if (nan_p and sensitivity == 0) or (nan_s and ppv == 0) else float("nan")
    return 0.0 if ppv + sensitivity == 0 else 2 * ppv * sensitivity / (ppv + sensitivity)


def lesion_summary(results: Sequence[ExamResult]) -> dict:
    """Pooled lesion-wise detection metrics with counts, overall and by size class."""
    ok = [r for r in results if r.ok]
    refs = [row for r in ok for row in r.match.reference]  # type: ignore[union-attr]
    preds = [row for r in ok for row in r.match.predicted]  # type: ignore[union-attr]
    n_det = sum(row["detected"] for row in refs)
    n_tp = sum(row["true_positive"] for row in preds)
    sens, ppv = _ratio(n_det, len(refs)), _ratio(n_tp, len(preds))
    voxels = {k: sum(r.voxels.get(k, 0) for r in ok) for k in ("reference", "predicted", "overlap")}
    dices = [r.match.voxel_dice for r in ok if r.voxels.get("reference", 0) > 0]  # type: ignore[union-attr]
    by_size = {}
    for name, lo, hi in SIZE_CLASSES:
        rr = [row for row in refs if row["size_class"] == name]
        pp = [row for row in preds if row["size_class"] == name]
        d = sum(row["detected"] for row in rr)
        fp = sum(not row["true_positive"] for row in pp)
        by_size[name] = {
            "volume_mm3": [lo, hi if math.isfinite(hi) else None],
            "n_reference": len(rr), "n_detected": d, "sensitivity": _ratio(d, len(rr)),
            "n_predicted": len(pp), "n_false_positive": fp,
            "ppv": _ratio(len(pp) - fp, len(pp)),
        }
    return {
        "n_exams": len(ok),
        "n_reference": len(refs), "n_detected": n_det,
        "n_predicted": len(preds), "n_true_positive": n_tp, "n_false_positive": len(preds) - n_tp,
        "sensitivity": sens, "ppv": ppv, "f1": f1_score(ppv, sens),
        "fp_per_scan": _ratio(len(preds) - n_tp, len(ok)),
        "dice_pooled": _ratio(2 * voxels["overlap"], voxels["reference"] + voxels["predicted"]),
        "dice_mean": float(np.mean(dices)) if dices else float("nan"),
        "n_exams_dice": len(dices),
        "by_size": by_size,
    }


def lesion_bootstrap(results: Sequence[ExamResult], n_boot: int = 2000, seed: int = 0,
                     level: float = 0.95) -> dict:
    """Percentile CIs of pooled lesion sensitivity, PPV, F1 and FP/scan, resampling **exams**
    with replacement (lesions of one exam are not independent), fixed seed for reproducibility."""
    ok = [r for r in results if r.ok]
    if len(ok) < 2:
        return {}
    c = np.array([[r.match.n_reference, r.match.n_detected, r.match.n_predicted,  # type: ignore[union-attr]
                   r.match.n_true_positive] for r in ok], dtype=float)  # type: ignore[union-attr]
    idx = np.random.default_rng(seed).integers(0, len(ok), size=(n_boot, len(ok)))
    ref, det, pred, tp = (c[idx, k].sum(axis=1) for k in range(4))
    with np.errstate(divide="ignore", invalid="ignore"):
        sens = np.where(ref > 0, det / ref, np.nan)
        ppv = np.where(pred > 0, tp / pred, np.nan)
        f1 = np.where(sens + ppv > 0, 2 * sens * ppv / (sens + ppv), 0.0)
        f1 = np.where(np.isnan(sens) | np.isnan(ppv), np.nan, f1)
        f1 = np.where((ref > 0) & (tp == 0), 0.0, f1)  # nothing found of what there was: F1 = 0
    fp = (pred - tp) / len(ok)
    q = [50 * (1 - level), 50 * (1 + level)]

    def ci(v: np.ndarray) -> list[float]:
        v = v[np.isfinite(v)]
        return [float(x) for x in np.percentile(v, q)] if v.size else [float("nan")] * 2

    return {"n_boot": n_boot, "seed": seed, "level": level, "sensitivity": ci(sens),
            "ppv": ci(ppv), "f1": ci(f1), "fp_per_scan": ci(fp)}


def synthesis_summary(results: Sequence[ExamResult]) -> dict:
    """Mean, SD, median and n (finite values only) of each synthesis metric over exams."""
    rows = [r.synthesis for r in results if r.ok and r.synthesis]
    out: dict = {"n_exams": len(rows), "data_range": DATA_RANGE}
    keys = sorted({k for row in rows for k in row if not k.startswith("voxels_")})
    for k in keys:
        vals = np.array([row[k] for row in rows if k in row], dtype=float)
        vals = vals[np.isfinite(vals)]
        out[k] = {
            "mean": float(vals.mean()) if vals.size else float("nan"),
            "sd": float(vals.std(ddof=1)) if vals.size > 1 else float("nan"),
            "median": float(np.median(vals)) if vals.size else float("nan"),
            "n": int(vals.size),
        }
    return out


def patient_summary(results: Sequence[ExamResult], n_bins: int = 10) -> dict:
    """Patient-level metrics over exams that have a reference and an activity summary."""
    usable = [r for r in results if r.ok and r.probability_active is not None]
    if not usable:
        return {"n_exams": 0, "note": "no activity summaries found"}
    y = np.array([bool(r.active) for r in usable])
    p = np.array([r.probability_active for r in usable], dtype=float)
    has = np.array([r.refer is not None for r in usable])
    refer = np.array([bool(r.refer) for r in usable])
    out = patient_metrics(y, p, refer, n_bins)
    # the stored operating point only where the summary records one (never a made-up threshold)
    out["operating_point"] = operating_point(y[has], refer[has])
    out["n_missing_refer"] = int((~has).sum())
    out["missed_active"] = [r.exam for r, h in zip(usable, has, strict=True)
                            if h and r.active and not r.refer]
    out["false_referrals"] = [r.exam for r, h in zip(usable, has, strict=True)
                              if h and not r.active and r.refer]
    return out


def summarize(results: Sequence[ExamResult], criteria: DetectionCriteria = DetectionCriteria()) -> dict:
    """The whole ``summary.json`` content (NaN allowed here; see ``report.jsonable``)."""
    ok = [r for r in results if r.ok]
    statuses: dict[str, int] = {}
    for r in results:
        statuses[r.status] = statuses.get(r.status, 0) + 1
    froc = froc_curve([r.match for r in ok])  # type: ignore[misc]
    return {
        "n_exams": len(results),
        "n_evaluated": len(ok),
        "status_counts": statuses,
        "criteria": asdict(criteria),
        "lesions": {**lesion_summary(results), "ci95_exam_bootstrap": lesion_bootstrap(results)},
        "froc": {"points": froc, **froc_summary(froc)},
        "patient": patient_summary(results),
        "synthesis": synthesis_summary(results),
    }
