"""Reader-study statistics: the visual Turing test and lesion detection on real vs synthetic.

* accuracy of the real/synthetic call per reader and pooled, Wilson 95 % CI, exact two-sided
  binomial test against chance (0.5): accuracy near 0.5 means the synthetic images are not told
  apart from real ones;
* Cohen's kappa of the calls between each pair of readers, on the cases both answered;
* Likert (quality, confidence) counts for real vs synthetic cases, Mann-Whitney U test;
* lesion-level sensitivity: a reference lesion counts as found when a click lies within
  ``radius_mm`` of its centre (world RAS mm); clicks near no reference lesion are false positives.
"""

from __future__ import annotations

import csv
import io
import itertools
import json
import math
from pathlib import Path

import numpy as np

from gdsynth.errors import InputFileMissingError
from gdsynth.io import atomic_write_text, write_json
from gdsynth.review.store import Answer, AnswerStore
from gdsynth.review.study import KEY

Z95 = 1.959963984540054


def wilson(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval of a proportion k/n (NaN, NaN when n == 0)."""
    if n == 0:
        return math.nan, math.nan
    p = k / n
    denom = 1 + z**2 / n
    centre = (p + z**2 / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z**2 / (4 * n**2)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def accuracy(correct: list[bool]) -> dict:
    """Accuracy, Wilson CI and exact binomial p-value against 0.5."""
    from scipy.stats import binomtest

    n, k = len(correct), int(sum(correct))
    low, high = wilson(k, n)
    p = binomtest(k, n, 0.5).pvalue if n else math.nan
    return {"n": n, "correct": k, "accuracy": k / n if n else math.nan,
            "ci_low": low, "ci_high": high, "p_value": float(p)}


def cohen_kappa(a: list[str], b: list[str]) -> float:
    """Cohen's kappa of two raters' labels on the same items (NaN when undefined)."""
    if not a or len(a) != len(b):
        return math.nan
    labels = sorted(set(a) | set(b))
    n = len(a)
    po = sum(x == y for x, y in zip(a, b, strict=True)) / n
    pe = sum((a.count(c) / n) * (b.count(c) / n) for c in labels)
    return math.nan if pe == 1 else (po - pe) / (1 - pe)


def likert(values_real: list[int], values_synth: list[int]) -> dict:
    """Counts 1..5 for real and synthetic cases, medians and a two-sided Mann-Whitney U test."""
    from scipy.stats import mannwhitneyu

    out: dict = {}
    for name, vals in (("real", values_real), ("synthetic", values_synth)):
        out[name] = {"counts": {str(v): vals.count(v) for v in range(1, 6)},
                     "median": float(np.median(vals)) if vals else math.nan, "n": len(vals)}
    if values_real and values_synth and len(set(values_real + values_synth)) > 1:
        test = mannwhitneyu(values_real, values_synth, alternative="two-sided")
        out["mann_whitney_u"], out["p_value"] = float(test.statistic), float(test.pvalue)
    else:
        out["mann_whitney_u"], out["p_value"] = math.nan, math.nan
    return out


def match_clicks(clicks: list[list[float]], reference: list[dict], radius_mm: float) -> tuple[int, int]:
    """(reference lesions found, false-positive clicks) for one case."""
    if not reference:
        return 0, len(clicks)
    centres = np.asarray([r["centre"] for r in reference], float)
    pts = np.asarray(clicks, float).reshape(-1, 3)
    if len(pts) == 0:
        return 0, 0
    dist = np.linalg.norm(pts[:, None, :] - centres[None, :, :], axis=-1)
    near = dist <= radius_mm
    return int(near.any(axis=0).sum()), int((~near.any(axis=1)).sum())


def _lesion_stats(rows: list[tuple[Answer, dict]], radius_mm: float) -> dict:
    out = {}
    for kind in ("real", "synthetic"):
        n_ref = found = fp = cases = 0
        for ans, key in rows:
            refs = key.get("reference_lesions")
            if key["kind"] != kind or refs is None:
                continue
            hit, false = match_clicks(ans.lesions, refs, radius_mm)
            n_ref, found, fp, cases = n_ref + len(refs), found + hit, fp + false, cases + 1
        out[kind] = {"cases": cases, "reference_lesions": n_ref, "found": found,
                     "sensitivity": found / n_ref if n_ref else math.nan,
                     "false_positive_clicks": fp,
                     "false_positives_per_case": fp / cases if cases else math.nan}
    return out


def analyze_answers(answers: list[Answer], key: dict[str, dict], radius_mm: float = 5.0) -> dict:
    """All statistics from answers and the unblinding key (``case_id -> {kind, exam, ...}``)."""
    rows = [(a, key[a.case_id]) for a in answers if a.case_id in key]
    readers = sorted({a.reader for a, _ in rows})
    groups = {r: [(a, k) for a, k in rows if a.reader == r] for r in readers}
    groups["pooled"] = rows
    result: dict = {"readers": readers, "n_answers": len(rows), "radius_mm": radius_mm,
                    "accuracy": {}, "lesions": {}, "likert": {}, "kappa": []}
    for name, group in groups.items():
        result["accuracy"][name] = accuracy([a.call == k["kind"] for a, k in group])
        result["lesions"][name] = _lesion_stats(group, radius_mm)
    for field in ("quality", "confidence"):
        real = [getattr(a, field) for a, k in rows if k["kind"] == "real"]
        synth = [getattr(a, field) for a, k in rows if k["kind"] == "synthetic"]
        result["likert"][field] = likert(real, synth)
    calls = {r: {a.case_id: a.call for a, _ in groups[r]} for r in readers}
    for r1, r2 in itertools.combinations(readers, 2):
        common = sorted(set(calls[r1]) & set(calls[r2]))
        a, b = [calls[r1][c] for c in common], [calls[r2][c] for c in common]
        agree = sum(x == y for x, y in zip(a, b, strict=True)) / len(common) if common else math.nan
        result["kappa"].append({"reader_a": r1, "reader_b": r2, "n": len(common),
                                "agreement": agree, "kappa": cohen_kappa(a, b)})
    return result


def _csv(rows: list[dict]) -> str:
    buf = io.StringIO()
    if rows:
        writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return buf.getvalue()


def _clean(obj):
    """NaN -> None for strict JSON."""
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _clean(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_clean(v) for v in obj]
    return obj


def analyze_study(study: Path, out: Path | None = None, radius_mm: float = 5.0) -> dict:
    """Read a study's answers and key, write ``summary.json`` and CSV tables to ``out``."""
    study = Path(study)
    key_path = study / KEY / "unblinding.json"
    db = study / "answers.sqlite"
    for p in (key_path, db):
        if not p.exists():
            raise InputFileMissingError(p, "missing (create the study and collect answers first)")
    key = json.loads(key_path.read_text(encoding="utf-8"))["cases"]
    answers = AnswerStore(db).answers()
    result = analyze_answers(answers, key, radius_mm)
    out = Path(out) if out else study / "analysis"
    write_json(out / "summary.json", _clean(result))
    detail = [{"reader": a.reader, "case_id": a.case_id, "exam": key[a.case_id]["exam"],
               "kind": key[a.case_id]["kind"], "call": a.call,
               "correct": a.call == key[a.case_id]["kind"], "quality": a.quality,
               "confidence": a.confidence, "clicks": len(a.lesions), "seconds": a.seconds}
              for a in answers if a.case_id in key]
    atomic_write_text(out / "answers.csv", _csv(detail))
    atomic_write_text(out / "accuracy.csv", _csv(
        [{"reader": r, **v} for r, v in result["accuracy"].items()]))
    atomic_write_text(out / "kappa.csv", _csv(result["kappa"]))
    atomic_write_text(out / "likert.csv", _csv([
        {"item": f, "kind": kind, **{f"n_{v}": d[kind]["counts"][str(v)] for v in range(1, 6)},
         "median": d[kind]["median"], "mann_whitney_u": d["mann_whitney_u"], "p_value": d["p_value"]}
        for f, d in result["likert"].items() for kind in ("real", "synthetic")]))
    atomic_write_text(out / "lesions.csv", _csv([
        {"reader": r, "kind": kind, **v[kind]}
        for r, v in result["lesions"].items() for kind in ("real", "synthetic")]))
    return result
