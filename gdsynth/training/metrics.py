"""Quick validation metrics on whole volumes (torch tensors ``(X, Y, Z)``, normalized units).

The full evaluation lives in ``gdsynth.evaluation``; these are the numbers logged during training.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from gdsynth.models.losses import ssim_map


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
    s = ssim_map(p2, t2, data_range=rng)[:, 0].permute(1, 2, 0)
    return float(s[m].mean())


def detection_f1(
    enhancement: np.ndarray, truth: np.ndarray, brain: np.ndarray, *,
    threshold: float, min_voxels: int = 3, alpha: float = 0.1,
) -> dict[str, float]:
    """Lesion-wise detection by thresholding enhancement (post − pre) inside the brain.

    Predicted 3D components (26-connectivity, >= ``min_voxels``) vs truth components: a truth
    lesion is detected when predictions cover >= ``alpha`` of it; a prediction is a true positive
    when it touches a truth lesion. Returns sensitivity, PPV, F1 and false positives (NaN-free:
    0/0 counts as 1 for PPV/sensitivity when there is nothing to find or nothing found).
    """
    import cc3d

    pred = (enhancement > threshold) & (brain > 0)
    pred_cc = cc3d.connected_components(pred.astype(np.uint8), connectivity=26)
    if min_voxels > 1 and pred_cc.max():
        sizes = np.bincount(pred_cc.ravel())
        small = np.nonzero(sizes < min_voxels)[0]
        pred_cc[np.isin(pred_cc, small)] = 0
    truth_cc = cc3d.connected_components((truth > 0).astype(np.uint8), connectivity=26)
    n_truth, detected = int(truth_cc.max()), 0
    for lab in range(1, n_truth + 1):
        region = truth_cc == lab
        if (pred_cc[region] > 0).mean() >= alpha:
            detected += 1
    pred_ids = np.unique(pred_cc[pred_cc > 0])
    tp_pred = int(np.unique(pred_cc[(pred_cc > 0) & (truth_cc > 0)]).size)
    n_pred = int(pred_ids.size)
    counts = {"detected": detected, "n_truth": n_truth, "tp_pred": tp_pred, "n_pred": n_pred}
    return {**f1_from_counts(counts), **{k: float(v) for k, v in counts.items()}}


def f1_from_counts(counts: dict[str, float]) -> dict[str, float]:
    """Sensitivity, PPV, F1 and false positives from summed lesion counts (see detection_f1)."""
    n_truth, n_pred = counts["n_truth"], counts["n_pred"]
    sens = counts["detected"] / n_truth if n_truth else 1.0
    ppv = counts["tp_pred"] / n_pred if n_pred else 1.0
    f1 = 2 * sens * ppv / (sens + ppv) if sens + ppv else 0.0
    return {"sensitivity": sens, "ppv": ppv, "f1": f1,
            "false_positives": float(n_pred - counts["tp_pred"])}
