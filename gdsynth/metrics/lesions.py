"""Lesion-wise detection scoring as in MSSEG 2016 / MSSEG-2 (Anima's segmentation performance analyzer).

Pure functions on (X, Y, Z) label arrays on one grid. The rules follow ``animaSegPerfAnalyzer``
(``CAnalyzer::getOverlapTab``, ``getTruePositiveLesions``, ``falsePositiveRatioTester``):

1. Components: 3D connected components of reference and prediction (26-connectivity by default;
   note Anima's ITK filter defaults to face connectivity, 6). With ``instances=True`` each
   instance label is its own lesion (touching instances stay separate; a disconnected instance is
   split). Components of volume <= ``min_volume_mm3`` (Anima: 3 mm³) are dropped (become
   background) on both sides.
2. Overlap table ``T[i, j]``: voxels in reference component i and predicted component j, row and
   column 0 being the background of each.
3. Reference lesion i is **detected** when the predicted components cover more than ``alpha``
   (10 %) of it, and, going through the predicted components that overlap it in decreasing
   overlap until they account for ``gamma`` (65 %) of the covered voxels, none has more than
   ``beta`` (70 %) of its own voxels in the reference background. So one huge prediction touching
   two small lesions detects neither, while a prediction that merely bridges two lesions detects
   both, and several split predictions on one lesion detect it.
4. Predicted component j is a **true positive** by the same rule with the roles swapped
   (transposed table): lesion PPV = TP predictions / predictions; the others are false positives.

One deliberate difference: Anima bounds its loop by the number of *reference* labels
(``k < pi_iNbLabelsRef``), an indexing slip; here the loop runs over all overlapping components.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

#: Lesion size classes (mm³): small < 70 <= medium <= 500 < large.
SIZE_CLASSES = (("small", 0.0, 70.0), ("medium", 70.0, 500.0), ("large", 500.0, float("inf")))


@dataclass(frozen=True)
class DetectionCriteria:
    """Anima/MSSEG detection thresholds (fractions) and component rules."""

    alpha: float = 0.10
    beta: float = 0.70
    gamma: float = 0.65
    min_volume_mm3: float = 3.0
    connectivity: int = 26
    instances: bool = True

    def __post_init__(self) -> None:
        if self.connectivity not in (6, 18, 26):
            raise ValueError(f"connectivity must be 6, 18 or 26 (got {self.connectivity})")
        for name in ("alpha", "beta", "gamma"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1] (got {v})")


def size_class(volume_mm3: float) -> str:
    """Name of the size class of a lesion volume in mm³ (see :data:`SIZE_CLASSES`)."""
    for name, lo, hi in SIZE_CLASSES:
        if lo <= volume_mm3 < hi or (name == "medium" and volume_mm3 == hi):
            return name
    return SIZE_CLASSES[-1][0]


def components(
    labels: np.ndarray, spacing: tuple[float, ...], criteria: DetectionCriteria = DetectionCriteria()
) -> tuple[np.ndarray, np.ndarray]:
    """Connected components of a label/mask array, small ones removed.

    Returns ``(cc, source)``: ``cc`` int32 (X, Y, Z), 0 background and components 1..K ordered
    by first voxel; ``source[k]`` is the input label of component k (``source[0] = 0``).
    """
    import cc3d

    lab = np.asarray(labels)
    lab = np.rint(lab).astype(np.int64) if np.issubdtype(lab.dtype, np.floating) else lab
    lab = np.where(lab > 0, lab if criteria.instances else 1, 0).astype(np.uint32)
    cc = cc3d.connected_components(lab, connectivity=criteria.connectivity).astype(np.int32)
    n = int(cc.max())
    if n == 0:
        return cc, np.zeros(1, dtype=np.int64)
    voxel_mm3 = float(np.prod(spacing))
    sizes = np.bincount(cc.ravel(), minlength=n + 1)
    keep = sizes * voxel_mm3 > criteria.min_volume_mm3
    keep[0] = False
    new_index = np.zeros(n + 1, dtype=np.int32)
    new_index[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    cc = new_index[cc]
    source = np.zeros(int(keep.sum()) + 1, dtype=np.int64)
    flat_cc, flat_lab = cc.ravel(), lab.ravel()
    nz = np.flatnonzero(flat_cc)
    source[flat_cc[nz]] = flat_lab[nz]
    return cc, source


def overlap_table(reference_cc: np.ndarray, predicted_cc: np.ndarray) -> np.ndarray:
    """``T[i, j]`` = voxels in reference component i and predicted component j (0 = background)."""
    r = np.asarray(reference_cc, dtype=np.int64).ravel()
    p = np.asarray(predicted_cc, dtype=np.int64).ravel()
    n_r, n_p = int(r.max(initial=0)) + 1, int(p.max(initial=0)) + 1
    return np.bincount(r * n_p + p, minlength=n_r * n_p).reshape(n_r, n_p)


def detected_rows(table: np.ndarray, criteria: DetectionCriteria = DetectionCriteria()) -> np.ndarray:
    """Anima's rule for each row component 1..K of an overlap table: bool array of length K.

    Use ``table`` for reference lesions (detected?) and ``table.T`` for predicted lesions (TP?).
    """
    t = np.asarray(table, dtype=np.int64)
    n_rows = t.shape[0] - 1
    out = np.zeros(n_rows, dtype=bool)
    if n_rows == 0 or t.shape[1] <= 1:
        return out
    col_size = t.sum(axis=0)
    outside = t[0] / np.maximum(col_size, 1)  # fraction of each column component in row background
    for i in range(1, n_rows + 1):
        covered = int(t[i, 1:].sum())
        total = covered + int(t[i, 0])
        if total == 0 or covered / total <= criteria.alpha:
            continue
        order = np.argsort(-t[i, 1:], kind="stable") + 1
        weight, ok = 0.0, True
        for j in order:
            if weight >= criteria.gamma or t[i, j] == 0:
                break
            if outside[j] > criteria.beta:
                ok = False
                break
            weight += t[i, j] / covered
        out[i - 1] = ok
    return out


def dice(reference: np.ndarray, prediction: np.ndarray) -> float:
    """Voxel Dice of two masks (nonzero = foreground); 1.0 when both are empty."""
    a, b = np.asarray(reference) > 0, np.asarray(prediction) > 0
    denom = int(a.sum()) + int(b.sum())
    return 1.0 if denom == 0 else 2.0 * int(np.logical_and(a, b).sum()) / denom


@dataclass
class LesionMatch:
    """Lesion-wise result of one exam: one row per reference and per predicted lesion."""

    reference: list[dict] = field(default_factory=list)
    predicted: list[dict] = field(default_factory=list)
    voxel_dice: float = float("nan")

    @property
    def n_reference(self) -> int:
        return len(self.reference)

    @property
    def n_predicted(self) -> int:
        return len(self.predicted)

    @property
    def n_detected(self) -> int:
        return sum(bool(r["detected"]) for r in self.reference)

    @property
    def n_true_positive(self) -> int:
        return sum(bool(p["true_positive"]) for p in self.predicted)

    @property
    def n_false_positive(self) -> int:
        return self.n_predicted - self.n_true_positive


def _lesion_score(i: int, table: np.ndarray, outside: np.ndarray, scores: np.ndarray,
                  criteria: DetectionCriteria) -> float | None:
    """Highest score threshold at which reference lesion i is still covered > alpha by predicted
    components that pass the beta guard (used for FROC; None when never detected)."""
    row = table[i]
    cand = [j for j in np.flatnonzero(row) if j > 0 and outside[j] <= criteria.beta]
    if not cand:
        return None
    total = int(row.sum())
    cand.sort(key=lambda j: -scores[j])
    cum = 0
    for j in cand:
        cum += int(row[j])
        if cum / total > criteria.alpha:
            return float(scores[j])
    return float(min(scores[j] for j in cand))


def match_lesions(
    reference: np.ndarray,
    prediction: np.ndarray,
    spacing: tuple[float, ...],
    *,
    scores: dict[int, float] | None = None,
    criteria: DetectionCriteria = DetectionCriteria(),
) -> LesionMatch:
    """Score one exam's predicted lesions against its reference lesions (both (X, Y, Z) label maps).

    ``scores`` maps a *predicted input label* (the ``label`` column of the lesions table) to its
    score; predicted lesions without one get score 1.0. Returned rows carry, for each lesion:
    ``label`` (component index), ``source_label``, ``n_voxels``, ``volume_mm3``, ``size_class``,
    ``coverage`` (fraction covered by the other side), and ``detected`` (reference) or
    ``true_positive`` and ``score`` (predicted); reference rows also carry ``score``, the FROC
    lesion-localisation score (None when not detected).
    """
    ref = np.asarray(reference)
    pred = np.asarray(prediction)
    if ref.shape != pred.shape:
        raise ValueError(f"reference {ref.shape} and prediction {pred.shape} differ in shape")
    voxel_mm3 = float(np.prod(spacing))
    ref_cc, ref_src = components(ref, spacing, criteria)
    pred_cc, pred_src = components(pred, spacing, criteria)
    table = overlap_table(ref_cc, pred_cc)
    # pad the table when a side has no components so shapes stay (K+1, L+1)
    n_r, n_p = len(ref_src), len(pred_src)
    if table.shape != (n_r, n_p):
        full = np.zeros((n_r, n_p), dtype=np.int64)
        full[: table.shape[0], : table.shape[1]] = table
        table = full
    ref_ok = detected_rows(table, criteria)
    pred_ok = detected_rows(table.T, criteria)
    score_of = scores or {}
    pred_scores = np.array([float(score_of.get(int(s), 1.0)) for s in pred_src], dtype=np.float64)
    pred_outside = table[0] / np.maximum(table.sum(axis=0), 1)
    match = LesionMatch(voxel_dice=dice(ref, pred))
    for i in range(1, n_r):
        size = int(table[i].sum())
        detected = bool(ref_ok[i - 1])
        match.reference.append({
            "label": i,
            "source_label": int(ref_src[i]),
            "n_voxels": size,
            "volume_mm3": size * voxel_mm3,
            "size_class": size_class(size * voxel_mm3),
            "coverage": float(table[i, 1:].sum() / max(size, 1)),
            "detected": detected,
            "score": _lesion_score(i, table, pred_outside, pred_scores, criteria) if detected else None,
        })
    for j in range(1, n_p):
        size = int(table[:, j].sum())
        match.predicted.append({
            "label": j,
            "source_label": int(pred_src[j]),
            "n_voxels": size,
            "volume_mm3": size * voxel_mm3,
            "size_class": size_class(size * voxel_mm3),
            "coverage": float(table[1:, j].sum() / max(size, 1)),
            "true_positive": bool(pred_ok[j - 1]),
            "score": float(pred_scores[j]),
        })
    return match
