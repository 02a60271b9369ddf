"""Helpers for validation on whole volumes (prediction itself is ``gdsynth.inference``)."""

from __future__ import annotations

import torch


def crop_to_mask(tensors: dict[str, torch.Tensor], mask: torch.Tensor, margin: int = 4) -> dict:
    """Crop ``(C, X, Y, Z)`` tensors to the bounding box of ``mask`` (``(1, X, Y, Z)``) + margin."""
    nz = torch.nonzero(mask[0] > 0)
    if nz.numel() == 0:
        return tensors
    lo = (nz.min(0).values - margin).clamp_min(0).tolist()
    hi = (nz.max(0).values + margin + 1).tolist()
    return {k: v[:, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] if torch.is_tensor(v) and v.dim() == 4
            else v for k, v in tensors.items()}
