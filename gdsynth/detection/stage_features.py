"""Candidates and features of the learned lesion stage (pure numpy/scipy on (X, Y, Z) arrays).

Candidates are the 26-connected components of the UNION of

* the enhancement-map candidates of any detector (:data:`gdsynth.detection.detectors.DETECTORS`,
  :func:`gdsynth.detection.detect.enhancement_candidates`, or any label map a caller passes:
  the generator is pluggable), and
* pre-contrast lesion candidates (:func:`precontrast_candidates`): FLAIR (or T2w)
  hyperintensity outside CSF, plus the regions of the model's ``"lesions"`` head (when it has
  one) outside them,

so a lesion whose synthetic enhancement is weak can still be found by its pre-contrast look.

Features of each candidate (:data:`STAGE_FEATURES`, finite floats; a sequence that is not an
input of the model gives 0, as in every exam the stage was fitted on; a sequence the model uses
but this exam lacks (``missing``: the card's ``optional_inputs``, input drop-out) gives NaN for
its appearance features: they are *unknown*, never computed on zeros, and the classifier scores
them as missing (:func:`gdsynth.detection.classifier.raw_score`)):

* enhancement: ``enh_max``, ``enh_mean``, ``enh_p90`` on the component, ``enh_contrast`` = mean
  on the component − mean in its 1–3 mm shell; ``enh_overlap`` / ``pre_overlap``: fraction of
  the component inside the enhancement / pre-contrast candidates;
* model: ``unc_mean``, ``unc_max`` (MC-dropout SD), ``head_enh_max``/``mean`` and
  ``head_les_max``/``mean`` (head probabilities);
* pre-contrast appearance, for S in FLAIR, T2w, T1w (normalized, NAWM = 1): ``S_core`` (mean on
  the component), ``S_halo`` = mean in the 0–2 mm shell − mean in the 2–5 mm shell (oedema-like
  halo), ``S_step`` = core − 0–2 mm shell, ``S_sharp`` = mean gradient magnitude (per mm) on the
  component's outer border / max(|core − 2–5 mm shell|, 0.05) (sharp vs ill-defined border),
  ``S_profile`` = (0–2 mm shell − 2–5 mm shell) / (core − 2–5 mm shell): the share of the
  lesion's contrast still present just outside it (0 when the contrast is under 0.05);
* size and shape: ``log_volume`` (ln mm³), ``log_elongation``, ``length_mm``;
* location: ``surface_term``/``csf_term`` (distance to brain edge / CSF, capped at 10 mm, / 10),
  ``csf_fraction``, ``k_fraction`` (height in the brain's inferior → superior extent).

:data:`PRECONTRAST_FEATURES` is the subset that needs no synthetic map (the pre-contrast ceiling).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage as ndi

from gdsynth.detection.candidates import (
    hysteresis_components,
    remove_background,
    remove_small,
    smooth_in_mask,
    trim_to_peak,
    union_components,
)
from gdsynth.detection.context import DIST_CAP_MM, TissueContext, local_distances

SEQUENCES = ("FLAIR", "T2w", "T1w")
_KINDS = ("core", "halo", "step", "sharp", "profile")
_APPEARANCE = tuple(f"{s}_{k}" for s in SEQUENCES for k in _KINDS)
PRECONTRAST_FEATURES = (
    *_APPEARANCE, "log_volume", "log_elongation", "length_mm", "surface_term", "csf_term",
    "csf_fraction", "k_fraction",
)
STAGE_FEATURES = (
    "enh_max", "enh_mean", "enh_p90", "enh_contrast", "enh_overlap", "pre_overlap",
    "unc_mean", "unc_max", "head_enh_max", "head_enh_mean", "head_les_max", "head_les_mean",
    *PRECONTRAST_FEATURES,
)
ENHANCING_HEAD, LESIONS_HEAD = "enhancing", "lesions"


@dataclass(frozen=True)
class CandidateSettings:
    """Pre-contrast candidate thresholds (normalized units; probabilities for the head).

    FLAIR (or T2w) smoothed with ``sigma_mm`` in the brain, minus its slowly varying level (a
    ``background_mm`` Gaussian of the map clipped at median + 2 robust SD, as for the enhancement
    map): regions ≥ ``pre_low`` above it holding a seed ≥ ``pre_high``, outside CSF, each trimmed
    to ≥ ``peak_fraction`` × its peak (so the label follows the lesion, not its halo); with a ``"lesions"`` head: head ≥ ``head_low`` with a seed ≥
    ``head_high``. Union components under ``min_volume_mm3`` or over ``max_volume_mm3`` are
    dropped.
    """

    pre_high: float = 0.35
    pre_low: float = 0.2
    background_mm: float = 10.0
    peak_fraction: float = 0.5
    head_high: float = 0.5
    head_low: float = 0.3
    sigma_mm: float = 1.0
    min_volume_mm3: float = 10.0
    max_volume_mm3: float = 50000.0

    def to_dict(self) -> dict[str, float]:
        return {k: float(getattr(self, k)) for k in self.__dataclass_fields__}


def precontrast_candidates(
    brain: np.ndarray, spacing: Sequence[float], settings: CandidateSettings, *,
    flair: np.ndarray | None = None, t2w: np.ndarray | None = None,
    csf: np.ndarray | None = None, heads: Mapping[str, np.ndarray] | None = None,
) -> np.ndarray:
    """int32 labels of pre-contrast lesion candidates (see :class:`CandidateSettings`): the
    FLAIR (or T2w) hyperintensities, united with the ``"lesions"`` head's regions when the model
    has that head (a weakly trained head must not hide a FLAIR-bright lesion); all zero when
    neither is given."""
    brain = brain.astype(bool)
    labels = np.zeros(brain.shape, np.int32)
    image = flair if flair is not None else t2w
    if image is not None:
        region = brain if csf is None else brain & ~csf
        smooth = smooth_in_mask(image, brain, settings.sigma_mm, spacing)
        residual, _ = remove_background(smooth, region, settings.background_mm, spacing)
        labels = hysteresis_components(residual, settings.pre_high, settings.pre_low, region)
        labels = trim_to_peak(labels, residual, settings.peak_fraction)
    lesions_head = (heads or {}).get(LESIONS_HEAD)
    if lesions_head is not None:
        head = hysteresis_components(lesions_head, settings.head_high, settings.head_low, brain)
        labels = add_outside(labels, trim_to_peak(head, lesions_head, settings.peak_fraction))
    return labels


def add_outside(first: np.ndarray, second: np.ndarray) -> np.ndarray:
    """int32 labels: the components of ``first`` with their own extent, then the components of
    ``second``'s voxels outside ``first`` and its one-voxel rim (so a large region of ``second``
    cannot merge several components of ``first``)."""
    base = union_components(first)
    near = ndi.binary_dilation(base > 0, structure=np.ones((3, 3, 3), bool)) if base.any() \
        else np.zeros(base.shape, bool)
    rest = union_components(np.where(near, 0, second))
    return np.where(rest > 0, rest + int(base.max()), base).astype(np.int32)


def union_candidates(enhancement_labels: np.ndarray, precontrast_labels: np.ndarray,
                     spacing: Sequence[float], settings: CandidateSettings) -> np.ndarray:
    """int32 labels 1..K covering the union of both candidate sets, small and huge ones dropped.

    Each pre-contrast component is one candidate with its own extent; enhancement voxels
    outside the pre-contrast components (and their one-voxel rim) form further candidates. So
    a noisy enhancement region cannot merge several lesions into one candidate, and a lesion
    found on both keeps its pre-contrast extent (its enhancement still enters the features).
    """
    labels = remove_small(add_outside(precontrast_labels, enhancement_labels),
                          settings.min_volume_mm3, spacing)
    voxel = float(np.prod(spacing))
    counts = np.bincount(labels.ravel())
    big = np.flatnonzero(counts * voxel > settings.max_volume_mm3)
    big = big[big > 0]
    if big.size:
        labels = remove_small(np.where(np.isin(labels, big), 0, labels), 0.0, spacing)
    return labels


def _shell(dist: np.ndarray, lo: float, hi: float, region: np.ndarray) -> np.ndarray:
    return (dist > lo) & (dist <= hi) & region


def _mean(img: np.ndarray, mask: np.ndarray, default: float = 0.0) -> float:
    return float(img[mask].mean()) if mask.any() else default


def gradient_magnitude(img: np.ndarray, spacing: Sequence[float]) -> np.ndarray:
    """|∇img| per mm (Sobel; float32)."""
    img = np.asarray(img, dtype=np.float32)
    return np.sqrt(sum(ndi.sobel(img, axis=a, mode="nearest") ** 2 / (32 * float(spacing[a])) ** 2
                       for a in range(3))).astype(np.float32)


def _appearance(img: np.ndarray, grad: np.ndarray, comp: np.ndarray, dist: np.ndarray,
                region: np.ndarray, spacing: np.ndarray
                ) -> tuple[float, float, float, float, float]:
    core = _mean(img, comp)
    near = _mean(img, _shell(dist, 0.0, 2.0, region), core)
    far = _mean(img, _shell(dist, 2.0, 5.0, region), near)
    border = comp & ~ndi.binary_erosion(comp)
    outer = _shell(dist, 0.0, float(max(spacing)) * 1.01, region)
    edge = border | outer
    contrast = core - far
    sharp = _mean(grad, edge) / max(abs(contrast), 0.05)
    profile = (near - far) / contrast if abs(contrast) > 0.05 else 0.0
    return core, near - far, core - near, sharp, profile


def stage_features(
    labels: np.ndarray, enhancement: np.ndarray, ctx: TissueContext, *,
    enhancement_labels: np.ndarray | None = None, precontrast_labels: np.ndarray | None = None,
    images: Mapping[str, np.ndarray | None] | None = None,
    uncertainty: np.ndarray | None = None, heads: Mapping[str, np.ndarray] | None = None,
    missing: Collection[str] = (),
) -> list[dict[str, Any]]:
    """One dict per label 1..K of ``labels``: ``label``, ``i, j, k`` (centre index),
    ``volume_mm3`` and every :data:`STAGE_FEATURES` value (see module doc); the appearance
    features of the sequences in ``missing`` are NaN (unknown)."""
    spacing = np.asarray(ctx.spacing, dtype=float)
    images = {s: v for s, v in (images or {}).items()
              if v is not None and s in SEQUENCES and s not in missing}
    heads = dict(heads or {})
    margin = np.ceil(max(DIST_CAP_MM, 5.0) / spacing).astype(int) + 2
    k0, k1 = ctx.k_range
    grads = {s: gradient_magnitude(v, spacing) for s, v in images.items()} if labels.any() else {}
    out: list[dict[str, Any]] = []
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        box = tuple(slice(max(s.start - m, 0), min(s.stop + m, n))
                    for s, m, n in zip(sl, margin, labels.shape, strict=True))
        comp = labels[box] == lab
        idx = np.argwhere(comp)
        centre = idx.mean(axis=0) + np.array([b.start for b in box])
        dist = ndi.distance_transform_edt(~comp, sampling=spacing)
        region = ctx.brain[box] & (labels[box] == 0)
        if ctx.csf is not None:
            region &= ~ctx.csf[box]
        enh = enhancement[box]
        values = enh[comp]
        cov = np.cov((idx * spacing).T) if len(idx) > 1 else np.zeros((3, 3))
        eig = np.sort(np.linalg.eigvalsh(cov + np.diag(spacing**2 / 12.0)))[::-1]
        surface, dcsf = local_distances(ctx, box, comp)
        csf_fraction = 0.0
        if ctx.csf is not None:
            csf_box = ctx.csf[box]
            shell = _shell(dist, 0.0, 1.5, ctx.brain[box])
            csf_fraction = max(float(csf_box[comp].mean()),
                               float(csf_box[shell].mean()) if shell.any() else 0.0)
        f: dict[str, Any] = {
            "label": lab, "i": float(centre[0]), "j": float(centre[1]), "k": float(centre[2]),
            "volume_mm3": float(comp.sum() * np.prod(spacing)),
            "enh_max": float(values.max()), "enh_mean": float(values.mean()),
            "enh_p90": float(np.percentile(values, 90)),
            "enh_contrast": float(values.mean()) - _mean(enh, _shell(dist, 1.0, 3.0, region)),
            "enh_overlap": 0.0 if enhancement_labels is None
            else float((enhancement_labels[box][comp] > 0).mean()),
            "pre_overlap": 0.0 if precontrast_labels is None
            else float((precontrast_labels[box][comp] > 0).mean()),
            "unc_mean": 0.0 if uncertainty is None else float(uncertainty[box][comp].mean()),
            "unc_max": 0.0 if uncertainty is None else float(uncertainty[box][comp].max()),
            "log_volume": float(np.log(max(comp.sum() * np.prod(spacing), 1e-3))),
            "log_elongation": float(0.5 * np.log(eig[0] / max(eig[1], 1e-12))),
            "length_mm": float(np.sqrt(12.0 * eig[0])),
            "surface_term": min(surface, DIST_CAP_MM) / DIST_CAP_MM,
            "csf_term": 1.0 if dcsf is None else min(dcsf, DIST_CAP_MM) / DIST_CAP_MM,
            "csf_fraction": csf_fraction,
            "k_fraction": float((centre[2] - k0) / (k1 - k0)) if k1 > k0 else 0.5,
        }
        for key, name in (("enh", ENHANCING_HEAD), ("les", LESIONS_HEAD)):
            head = heads.get(name)
            f[f"head_{key}_max"] = 0.0 if head is None else float(head[box][comp].max())
            f[f"head_{key}_mean"] = 0.0 if head is None else float(head[box][comp].mean())
        for seq in SEQUENCES:
            img = images.get(seq)
            if seq in missing:
                f.update({f"{seq}_{key}": float("nan") for key in _KINDS})
                continue
            vals = (0.0,) * len(_KINDS) if img is None else \
                _appearance(img[box].astype(np.float32), grads[seq][box], comp, dist, region,
                            spacing)
            for key, v in zip(_KINDS, vals, strict=True):
                f[f"{seq}_{key}"] = float(v) if np.isfinite(v) else 0.0
        out.append(f)
    return out


def feature_matrix(feats: Sequence[Mapping[str, Any]], names: Sequence[str]) -> np.ndarray:
    """(N, F) float64 matrix of the named features (rows in ``feats`` order); NaN marks a
    feature of a missing sequence."""
    if not feats:
        return np.zeros((0, len(names)))
    return np.array([[float(f[n]) for n in names] for f in feats], dtype=np.float64)
