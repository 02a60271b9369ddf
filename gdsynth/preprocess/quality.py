"""Exam-level quality checks: do the sequences of this exam belong together?

Each image can be a valid brain MRI and the exam still be wrong: the T2w/FLAIR of another
subject, a FLAIR that is a copy of the T1w, a FLAIR covering a third of the brain, files named for
another subject inside a subject's folder (or reached through a symlinked subject folder). Such an
exam must not get a normal "no active lesion": :func:`exam_quality` measures it after
registration (on the prepared grid, NAWM-normalized) and returns its measurements and a list of
flags; inference adds the flags to the detection's quality flags, so the exam is referred with
reason ``quality: ...`` (:func:`gdsynth.detection.patient.add_quality_flags`).

Checks (limits in :class:`QualityLimits`, defaults set on the phantom by
``experiments/exam_quality.py``; its measurements are in ``experiments/README.md``):

* **coverage** — fraction of the T1w's own brain (a T1w-only brain mask on a 2 mm grid) that
  lies inside each registered sequence's field of view: below ``min_coverage`` flags it;
* **alignment** — Pearson correlation of the gradient magnitudes (edges) of the T1w and each
  registered sequence inside the dilated brain mask: anatomy of the same head puts its edges at
  the same places whatever the contrast; below ``min_edge_agreement`` flags a sequence that is
  not aligned or not from this subject; a registration whose final Mattes metric is above
  ``max_registration_metric`` (next to no mutual information: a gross failure; the metric does
  not separate another subject's images from the right ones, the edges do) is flagged too;
* **contrast** — a FLAIR or T2w that correlates with the T1w inside the brain above
  ``max_t1w_correlation`` is a copy or a mislabelled T1w (a real FLAIR correlates 0.4-0.7 on
  the phantom, CSF being dark on both; a T2w is anti-correlated). The grey/white ratio must go
  the expected way: on a T1w white matter is brighter than grey matter, on a T2w darker
  (``grey_white``, on the T1w's own tissue classes). FLAIR's grey/white contrast is too weak
  to test this way (0.96–1.00 on the phantom: partial volume with CSF);
* **clipping** — the share of an image's head voxels (above a tenth of its maximum) stored at
  exactly its maximum value, measured on each file as read (:func:`clipped_fraction`): an
  unclipped MRI reaches its maximum in a handful of voxels, an image whose storage window cut its
  bright end (12-bit windowing that saturates a T2w's CSF, a conversion with a wrong scale) in a
  large share; above ``max_clipped_fraction`` flags an input (what is above the window is lost;
  the real post-Gd's share is recorded only). The 2 % limit sits between the phantom's images
  (below 0.1 % unclipped, at most 0.5 % with 12-bit storage) and the T2w of the thick-slice site
  before its storage fix (6–72 %, docs/phantom-sites.md);
* **labels** — the ``sub-``/``ses-`` entities of the file names and folders (also after
  resolving symlinks) must agree, and with the exam's own labels when it was found in a BIDS
  folder (a pseudonym given with ``--subject`` or in a table is not a mismatch).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from gdsynth.io import Geometry
from gdsynth.io.bids import Exam


@dataclass(frozen=True)
class QualityLimits:
    """Limits of :func:`exam_quality` (fractions, correlations, Mattes metric units)."""

    min_coverage: float = 0.9
    min_edge_agreement: float = 0.65
    max_registration_metric: float = -0.1
    max_t1w_correlation: float = 0.9
    max_clipped_fraction: float = 0.02


_NAME_ENTITY = {e: re.compile(rf"(?:^|_){e}-([A-Za-z0-9]+)") for e in ("sub", "ses")}
_FOLDER_ENTITY = {e: re.compile(rf"{e}-([A-Za-z0-9]+)") for e in ("sub", "ses")}


def _places(path: Path) -> list[tuple[str, str, dict[str, re.Pattern]]]:
    """(where, text, patterns): the file name and its two parent folders, as given and with
    symlinks resolved."""
    out = [("file name", path.name, _NAME_ENTITY)]
    out += [("folder", p, _FOLDER_ENTITY) for p in path.parent.parts[-2:]]
    try:
        real = path.resolve()
    except OSError:
        return out
    if real != path.absolute():
        out.append(("file name through a symlink", real.name, _NAME_ENTITY))
        out += [("folder through a symlink", p, _FOLDER_ENTITY) for p in real.parent.parts[-2:]]
    return out


def label_problems(exam: Exam) -> list[str]:
    """Files whose name or folders (also with symlinks resolved) name different subjects or
    sessions: a misfiled file, or a symlinked subject folder. For an exam found in a BIDS folder
    (``exam.extra["bids_folder"]``) the exam's own labels count too; an exam given file by file
    or by a table may be relabelled on purpose (a pseudonym), so only its files must agree."""
    problems = []
    for entity in ("sub", "ses"):
        own = {"sub": exam.subject, "ses": exam.session}[entity]
        seen: dict[str, str] = {}
        if own is not None and exam.extra.get("bids_folder"):
            seen[own] = f"the exam folder {exam.prefix}"
        for role, path in exam.inputs().items():
            for where, text, patterns in _places(Path(path)):
                pattern = patterns[entity]
                m = pattern.search(text) if patterns is _NAME_ENTITY else pattern.fullmatch(text)
                if m:
                    seen.setdefault(m.group(1), f"the {role} {where} ({Path(path).name})")
        if len(seen) > 1:
            (label0, where0), *others = seen.items()
            problems += [f"{entity} labels disagree: {where} is {entity}-{label}, {where0} is "
                         f"{entity}-{label0}" for label, where in others]
    return problems


def field_coverage(brain: np.ndarray, brain_geometry: Geometry, moving: Geometry,
                   matrix_lps: np.ndarray | None = None) -> float:
    """Fraction of ``brain`` voxels (on ``brain_geometry``) whose centre, mapped through
    ``matrix_lps`` (T1w world → moving world), falls inside ``moving``'s field of view."""
    ijk = np.argwhere(brain)
    if not len(ijk):
        return 0.0
    world = brain_geometry.index_to_world(ijk.astype(float))
    if matrix_lps is not None:
        m = np.asarray(matrix_lps, dtype=float)
        world = world @ m[:3, :3].T + m[:3, 3]
    idx = moving.world_to_index(world)
    inside = np.all((idx >= -0.5) & (idx <= np.asarray(moving.shape) - 0.5), axis=1)
    return float(inside.mean())


def _edges(image: np.ndarray, spacing: tuple[float, ...]) -> np.ndarray:
    sm = ndi.gaussian_filter(np.asarray(image, np.float32), sigma=[2.0 / s for s in spacing])
    return np.sqrt(sum(g**2 for g in np.gradient(sm, *spacing)))


def _pearson(a: np.ndarray, b: np.ndarray) -> float:
    a = a.astype(np.float64)
    b = b.astype(np.float64)
    if a.size < 2 or a.std() == 0 or b.std() == 0:
        return float("nan")
    return float(np.corrcoef(a, b)[0, 1])


def grey_white_ratio(image: np.ndarray, t1w: np.ndarray, brain: np.ndarray) -> float:
    """Median of ``image`` over grey-matter-like voxels / over white-matter-like voxels, both
    classes taken from the normalized T1w (NAWM ≈ 1: white 0.9–1.1, grey 0.6–0.85)."""
    v = t1w[brain]
    x = image[brain]
    white = (v > 0.9) & (v < 1.1)
    grey = (v > 0.6) & (v < 0.85)
    if white.sum() < 10 or grey.sum() < 10:
        return float("nan")
    w = float(np.median(x[white]))
    return float(np.median(x[grey]) / w) if w > 0 else float("nan")


def clipped_fraction(image: np.ndarray) -> float:
    """Share of ``image``'s head voxels (above a tenth of its maximum) that sit at exactly its
    maximum value: a handful of voxels (~0) for an unclipped image, a large share for one whose
    bright end was cut by its storage window. 0 for an empty or non-positive image."""
    values = np.asarray(image)
    top = float(values.max()) if values.size else 0.0
    if not np.isfinite(top) or top <= 0:
        return 0.0
    head = int(np.count_nonzero(values > 0.1 * top))
    return float(np.count_nonzero(values == top)) / max(head, 1)


def _json(value: float) -> float | None:
    """Rounded for provenance; None when not finite (provenance JSON has no NaN)."""
    return round(float(value), 3) if np.isfinite(value) else None


def exam_quality(
    exam: Exam,
    images: Mapping[str, np.ndarray],
    brain: np.ndarray,
    geometry: Geometry,
    *,
    t1w_brain: tuple[np.ndarray, Geometry],
    moving: Mapping[str, Geometry],
    registration: Mapping[str, Mapping[str, Any]],
    clipping: Mapping[str, tuple[float, float]] | None = None,
    limits: QualityLimits = QualityLimits(),
) -> tuple[dict[str, Any], list[str]]:
    """(measurements, flags) of one prepared exam.

    ``images``: NAWM-normalized arrays on ``geometry`` (T1w first); ``brain``: the brain mask
    there; ``t1w_brain``: a brain mask from the T1w alone and its grid (for coverage, which the
    exam's own mask cannot measure: it was made from the other sequences too); ``moving``: each
    registered sequence's own grid; ``registration``: :meth:`RigidResult.to_dict` by sequence;
    ``clipping``: per sequence, :func:`clipped_fraction` of the file as read and its maximum value
    (the real post-Gd's is measured, not flagged: a prediction does not read it).
    """
    measures: dict[str, Any] = {}
    flags = label_problems(exam)
    for role, (fraction, top) in (clipping or {}).items():
        measures.setdefault(role, {})["clipped_fraction"] = _json(fraction)
        if fraction > limits.max_clipped_fraction and role != "T1w_gd":  # inputs only
            flags.append(f"{role} is clipped: {100 * fraction:.1f}% of its head voxels sit at "
                         f"its maximum value {top:g} (limit {100 * limits.max_clipped_fraction:g}"
                         "%): the intensities above it are lost")
    brain = np.asarray(brain, bool)
    if not brain.any():
        return measures, flags
    t1 = images["T1w"]
    region = ndi.binary_dilation(brain, iterations=2)
    t1_edges = _edges(t1, geometry.spacing)[region]
    gw = grey_white_ratio(t1, t1, brain)
    measures.setdefault("T1w", {})["grey_white"] = _json(gw)
    if np.isfinite(gw) and gw >= 1.0:
        flags.append(f"T1w has no T1 contrast (grey/white ratio {gw:.2f}, a T1w is below 1)")
    for role, image in images.items():
        if role == "T1w":
            continue
        m: dict[str, Any] = {}
        reg = registration.get(role, {})
        matrix = np.asarray(reg["matrix_lps"]) if "matrix_lps" in reg else None
        if role in moving:
            coverage = field_coverage(*t1w_brain, moving[role], matrix)
            m["coverage"] = _json(coverage)
            if coverage < limits.min_coverage:
                flags.append(f"{role} covers {100 * coverage:.0f}% of the brain "
                             f"(needs {100 * limits.min_coverage:.0f}%)")
        edges = _pearson(t1_edges, _edges(image, geometry.spacing)[region])
        m["edge_agreement"] = _json(edges)
        if not edges >= limits.min_edge_agreement:  # NaN (a flat image) fails too
            flags.append(f"{role} does not line up with the T1w (edge agreement "
                         f"{edges:.2f} < {limits.min_edge_agreement:.2f}): another "
                         "subject, or registration failed")
        if "metric" in reg:
            metric = float(reg["metric"])
            m["registration_metric"] = _json(metric)
            if metric > limits.max_registration_metric:
                flags.append(f"{role} registration is weak (final Mattes metric "
                             f"{metric:.3f} > {limits.max_registration_metric})")
        if role in ("T2w", "FLAIR"):
            r = _pearson(t1[brain], image[brain])
            ratio = grey_white_ratio(image, t1, brain)
            m["t1w_correlation"], m["grey_white"] = _json(r), _json(ratio)
            if r > limits.max_t1w_correlation:
                flags.append(f"{role} looks like a T1w (correlation {r:.2f} "
                             "with the T1w in the brain): a copy or a mislabelled sequence")
            elif role == "T2w" and np.isfinite(ratio) and ratio <= 1.0:
                flags.append(f"{role} has T1-like contrast (grey/white ratio "
                             f"{ratio:.2f}; a {role} is above 1)")
        measures[role] = {**measures.get(role, {}), **m}
    return measures, flags
