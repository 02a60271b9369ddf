"""Quick validation metrics on whole volumes (torch tensors ``(X, Y, Z)``, normalized units).

The full evaluation lives in ``gdsynth.evaluation``; these are the numbers logged during training.
PSNR and SSIM here are NOT evaluation's (``gdsynth.evaluation.synthesis``: fixed data range 2.0,
3D SSIM): their data range is each volume's own (max − min of the real post-Gd in the mask) and
the SSIM is the mean of 2D axial-slice maps, so they are logged under their own names
(:data:`VAL_METRICS`). Lesion detection is matched by evaluation's rule
(:func:`gdsynth.metrics.lesions.match_lesions`).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np

from gdsynth.metrics.lesions import DetectionCriteria, match_lesions

if TYPE_CHECKING:
    import torch

#: What each logged validation metric is (keys as logged, ``val/<key>``).
VAL_METRICS = {
    "mae_brain": "mean |synthetic − real post-Gd| in the brain (normalized units; as evaluation's MAE)",
    "psnr_brain_volume_range": "PSNR in the brain, data range = max − min of the real post-Gd there",
    "ssim_brain_2d_slices": "mean 2D axial-slice SSIM in the brain (window 7, σ 1.5, range as PSNR)",
    "mae_lesion": "mean |synthetic − real post-Gd| in the enhancing lesions",
    "psnr_lesion_volume_range": "PSNR in the enhancing lesions, range = max − min of the real there",
}

#: Names earlier versions logged (and stored in model cards) → the names now logged.
RENAMED_VAL_METRICS = {
    "val/psnr_brain": "val/psnr_brain_volume_range",
    "val/ssim_brain": "val/ssim_brain_2d_slices",
    "val/psnr_lesion": "val/psnr_lesion_volume_range",
}


def current_metric_name(key: str) -> str:
    """The name a metric logged under ``key`` has now (old runs and model cards read as new)."""
    return RENAMED_VAL_METRICS.get(key, key)


def masked_mae(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean absolute error inside ``mask`` (NaN when the mask is empty)."""
    m = mask > 0
    return float((pred[m] - target[m]).abs().mean()) if m.any() else math.nan


def masked_psnr(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """PSNR (dB) inside ``mask``; data range = max − min of ``target`` inside the mask."""
    m = mask > 0
    if not m.any():
        return math.nan
    t = target[m]
    rng = float(t.max() - t.min()) or 1.0
    mse = float(((pred[m] - t) ** 2).mean())
    return 10 * math.log10(rng**2 / max(mse, 1e-12))


def masked_ssim(pred: torch.Tensor, target: torch.Tensor, mask: torch.Tensor) -> float:
    """Mean of the 2D axial SSIM maps inside ``mask`` (window 7, σ 1.5; data range as PSNR)."""
    m = mask > 0
    if not m.any():
        return math.nan
    t = target[m]
    rng = float(t.max() - t.min()) or 1.0
    p2 = pred.permute(2, 0, 1)[:, None]  # (Z, 1, X, Y): axial slices as a batch
    t2 = target.permute(2, 0, 1)[:, None]
    from gdsynth.models.losses import ssim_map

    s = ssim_map(p2, t2, data_range=rng)[:, 0].permute(1, 2, 0)
    return float(s[m].mean())


def detection_f1(
    enhancement: np.ndarray, truth: np.ndarray, brain: np.ndarray, *,
    threshold: float, min_voxels: int = 3,
) -> dict[str, float]:
    """Lesion-wise detection by thresholding enhancement (post − pre) inside the brain.

    Predicted lesions: 3D components of ``enhancement > threshold`` in the brain; they are matched
    to the truth components by evaluation's rule (:func:`gdsynth.metrics.lesions.match_lesions`,
    MSSEG/Anima: alpha 10 % coverage with the beta/gamma guards, 26-connectivity), components
    under ``min_voxels`` dropped on both sides (sizes in voxels: the validation volumes carry no
    spacing). Returns sensitivity, PPV, F1 and false positives (NaN-free: 0/0 counts as 1 for
    PPV/sensitivity when there is nothing to find or nothing found) and the counts.
    """
    pred = ((enhancement > threshold) & (brain > 0)).astype(np.uint8)
    # sizes in voxels (spacing 1): a component is kept when its size > min_voxels − 1
    criteria = DetectionCriteria(min_volume_mm3=float(min_voxels) - 1.0, instances=False)
    match = match_lesions((truth > 0).astype(np.uint8), pred, (1.0, 1.0, 1.0), criteria=criteria)
    counts = {"detected": match.n_detected, "n_truth": match.n_reference,
              "tp_pred": match.n_true_positive, "n_pred": match.n_predicted}
    return {**f1_from_counts(counts), **{k: float(v) for k, v in counts.items()}}


def f1_from_counts(counts: dict[str, float]) -> dict[str, float]:
    """Sensitivity, PPV, F1 and false positives from summed lesion counts (see detection_f1)."""
    n_truth, n_pred = counts["n_truth"], counts["n_pred"]
    sens = counts["detected"] / n_truth if n_truth else 1.0
    ppv = counts["tp_pred"] / n_pred if n_pred else 1.0
    f1 = 2 * sens * ppv / (sens + ppv) if sens + ppv else 0.0
    return {"sensitivity": sens, "ppv": ppv, "f1": f1,
            "false_positives": float(n_pred - counts["tp_pred"])}
