"""Is an exam inside the intensity domain the model was trained on? (out-of-domain quality flag)

Statistic: for each input sequence, quantiles (:data:`QUANTILES`) of the NAWM-normalized intensity
inside the brain mask and their spread p95 − p5 (the image's contrast) (:func:`intensity_signature`). At training time the per-exam signatures of the
training exams are summarized into a *reference* (per sequence and quantile: the minimum and
maximum over the training exams), stored in the model card (``normalization["domain"]``). At
inference, :func:`domain_flags` measures how far each of the exam's quantiles lies outside the
training range, as a ratio (quantiles below ``FLOOR`` NAWM units are raised to it): a quantile more
than ``tolerance`` times beyond the range (default :data:`TOLERANCE`) flags the exam
"out of domain", which forces a referral — never a confident answer on inputs unlike training.
A brain MRI of another scanner, field strength or sequence family keeps WM = 1 and the same order
of tissues, so its quantiles move modestly; an inverted contrast or a CT-like image moves them by
large factors (a dark "white matter" makes FLAIR/T2w several times brighter, a CT-like image of
little soft-tissue contrast has a fraction of an MRI's spread).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

QUANTILES = (0.05, 0.25, 0.5, 0.75, 0.95)
FLOOR = 0.05  # NAWM units: quantiles of (nearly) empty signal are compared at this level
TOLERANCE = 2.0  # a quantile this factor beyond the training range is out of domain
STATISTIC = ("p5, p25, p50, p75, p95 of NAWM-normalized intensity in the brain mask and the "
             "spread p95 - p5, per sequence")
#: Names of the signature's values (the quantiles, then the spread).
NAMES = (*(f"p{round(100 * q)}" for q in QUANTILES), "spread p95-p5")


def intensity_signature(volumes: Mapping[str, np.ndarray], mask: np.ndarray,
                        sequences: Sequence[str] | None = None) -> dict[str, list[float]]:
    """Per sequence, the :data:`QUANTILES` of its values inside ``mask`` (bool, same grid) and
    their spread (last minus first)."""
    inside = np.asarray(mask, bool)
    out = {}
    for name in sequences or sorted(volumes):
        if name in volumes and inside.any():
            values = np.asarray(volumes[name], np.float32)[inside]
            values = values[np.isfinite(values)]
            if values.size:
                q = [float(v) for v in np.quantile(values, QUANTILES)]
                out[name] = [*q, q[-1] - q[0]]
    return out


def domain_reference(signatures: Iterable[Mapping[str, Sequence[float]]],
                     tolerance: float = TOLERANCE) -> dict[str, Any]:
    """The training-time reference (JSON-friendly) of per-exam :func:`intensity_signature`\\ s."""
    per: dict[str, list[Sequence[float]]] = {}
    n = 0
    for sig in signatures:
        n += 1
        for name, q in sig.items():
            per.setdefault(name, []).append(q)
    sequences = {name: {"min": np.min(qs, axis=0).round(4).tolist(),
                        "max": np.max(qs, axis=0).round(4).tolist(),
                        "median": np.median(qs, axis=0).round(4).tolist()}
                 for name, qs in sorted(per.items())}
    return {"statistic": STATISTIC, "names": list(NAMES), "floor": FLOOR,
            "tolerance": float(tolerance), "n_exams": n, "sequences": sequences}


def reference_from_files(exams: Iterable[Mapping[str, str | Path]], sequences: Sequence[str],
                         tolerance: float = TOLERANCE) -> dict[str, Any]:
    """:func:`domain_reference` of prepared exams given as paths (keys: sequences and ``mask``)."""
    from gdsynth.io import read_image

    def signatures():
        for paths in exams:
            mask, _ = read_image(paths["mask"], allow_constant=True)
            vols = {s: read_image(paths[s])[0] for s in sequences if s in paths}
            yield intensity_signature(vols, mask > 0, sequences)

    return domain_reference(signatures(), tolerance)


def domain_distance(signature: Mapping[str, Sequence[float]], reference: Mapping[str, Any]
                    ) -> dict[str, tuple[float, int]]:
    """Per sequence of the reference: the largest factor by which a quantile lies outside the
    training range (1.0 inside) and that quantile's index."""
    floor = float(reference.get("floor", FLOOR))
    out = {}
    for name, ref in reference.get("sequences", {}).items():
        if name not in signature:
            continue
        q = np.maximum(np.asarray(signature[name], float), floor)
        lo = np.maximum(np.asarray(ref["min"], float), floor)
        hi = np.maximum(np.asarray(ref["max"], float), floor)
        factor = np.maximum(np.maximum(lo / q, q / hi), 1.0)
        i = int(np.argmax(factor))
        out[name] = (float(factor[i]), i)
    return out


def domain_flags(volumes: Mapping[str, np.ndarray], mask: np.ndarray,
                 reference: Mapping[str, Any] | None) -> list[str]:
    """Quality flags (``"out of domain: ..."``) of an exam's normalized inputs; [] when inside or
    when there is no reference (a model card without one)."""
    if not reference or not reference.get("sequences"):
        return []
    tolerance = float(reference.get("tolerance", TOLERANCE))
    names = reference.get("names", NAMES)
    signature = intensity_signature(volumes, mask, list(reference["sequences"]))
    flags = []
    for name, (factor, i) in domain_distance(signature, reference).items():
        if factor > tolerance:
            ref = reference["sequences"][name]
            flags.append(
                f"out of domain: {name} intensity {names[i]} "
                f"{signature[name][i]:.2f} (NAWM units) is {factor:.1f}x outside the training "
                f"range {ref['min'][i]:.2f}-{ref['max'][i]:.2f} (tolerance {tolerance:g}x)")
    return flags
