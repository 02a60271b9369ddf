"""Array-level baselines that any method must beat, as detection-like outputs.

* ``post = pre`` (:func:`post_equals_pre`): the synthetic post-Gd is the pre-contrast T1w; no
  enhancement, no lesion, ``probability_active`` 0 for every exam (AUC 0.5 by construction).
* FLAIR hyperintensity (:func:`flair_heuristic`): every bright FLAIR lesion (normalized FLAIR,
  NAWM = 1, smoothed, above ``threshold`` in the brain, or in ``wm`` when given) is called active;
  its score is a monotone map of its mean FLAIR contrast ``c`` = mean − 1 to (0, 1),
  ``c / (c + 0.5)``; the exam's ``probability_active`` is its highest lesion score and it is
  referred whenever one lesion is found. Only the ranks of the scores matter (FROC, AUC); they are
  not calibrated probabilities.

:func:`write_prediction` writes either as a prediction folder so ``gdsynth evaluate`` scores
baselines exactly like the model.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from gdsynth.io import Geometry, write_image, write_json, write_labels, write_tsv
from gdsynth.io.bids import Exam, derivative_path


@dataclass
class BaselineOutput:
    """A detection-like result on one grid: (X, Y, Z) ``labels`` (0..K), ``scores`` by label,
    ``probability_active``, ``refer`` and, when the baseline synthesizes, ``synthetic``."""

    labels: np.ndarray
    scores: dict[int, float]
    probability_active: float
    refer: bool
    synthetic: np.ndarray | None = None


def post_equals_pre(t1w: np.ndarray) -> BaselineOutput:
    """The "no contrast" baseline: synthetic = pre T1w (same units), nothing detected."""
    t = np.asarray(t1w, dtype=np.float32)
    return BaselineOutput(np.zeros(t.shape, np.int32), {}, 0.0, False, t.copy())


def flair_heuristic(
    flair: np.ndarray,
    brain: np.ndarray,
    spacing: tuple[float, ...],
    *,
    wm: np.ndarray | None = None,
    threshold: float = 1.4,
    sigma_mm: float = 1.0,
    min_volume_mm3: float = 10.0,
) -> BaselineOutput:
    """Every FLAIR-hyperintense lesion called active (``flair`` normalized, NAWM = 1)."""
    import cc3d

    f = np.asarray(flair, dtype=np.float32)
    smooth = ndi.gaussian_filter(f, [sigma_mm / s for s in spacing])
    region = np.asarray(brain, dtype=bool)
    if wm is not None:
        # lesions sit in or at the edge of white matter: allow a one-voxel margin
        region &= ndi.binary_dilation(np.asarray(wm) > 0, structure=np.ones((3, 3, 3), bool))
    cc = cc3d.connected_components(((smooth > threshold) & region).astype(np.uint8),
                                   connectivity=26).astype(np.int32)
    n = int(cc.max())
    sizes = np.bincount(cc.ravel(), minlength=n + 1)
    keep = sizes * float(np.prod(spacing)) > min_volume_mm3
    keep[0] = False
    relabel = np.zeros(n + 1, np.int32)
    relabel[keep] = np.arange(1, int(keep.sum()) + 1, dtype=np.int32)
    labels = relabel[cc]
    scores: dict[int, float] = {}
    if labels.max() > 0:
        means = ndi.mean(f, labels=labels, index=np.arange(1, int(labels.max()) + 1))
        for k, m in enumerate(np.atleast_1d(means), start=1):
            c = max(float(m) - 1.0, 0.0)
            scores[k] = c / (c + 0.5)
    prob = max(scores.values()) if scores else 0.0
    return BaselineOutput(labels, scores, prob, bool(scores))


def write_prediction(root: str | Path, exam: Exam, geometry: Geometry, output: BaselineOutput) -> Path:
    """Write ``output`` (on ``geometry``, the exam's T1w grid) with ``gdsynth predict``'s names:
    lesion labels, lesion table (label, volume_mm3, score), activity summary and, when present,
    the synthetic (which must already be in the input T1w's units). Returns the summary path."""
    root = Path(root)
    labels = np.asarray(output.labels)
    write_labels(derivative_path(root, exam, "dseg", desc="enhancing"), labels, geometry)
    if output.synthetic is not None:
        write_image(derivative_path(root, exam, "T1w", ce="gadolinium", desc="synthetic"),
                    output.synthetic, geometry)
    counts = np.bincount(labels.ravel().astype(np.int64), minlength=int(labels.max()) + 1)
    rows = [{"label": k, "volume_mm3": float(counts[k]) * geometry.voxel_volume, "score": s}
            for k, s in sorted(output.scores.items())]
    write_tsv(derivative_path(root, exam, "lesions", ".tsv", desc="enhancing"), rows,
              ["label", "volume_mm3", "score"])
    return write_json(derivative_path(root, exam, "summary", ".json", desc="activity"), {
        "probability_active": float(output.probability_active),
        "refer_for_gadolinium": bool(output.refer),
        "n_lesions": len(output.scores),
    })
