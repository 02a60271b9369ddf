"""Whole-volume prediction for validation: every axial slice (2D/2.5D) or the padded volume (3D).

``(C, X, Y, Z)`` in, ``(out_channels, X, Y, Z)`` out on the same grid. 2.5D neighbours beyond the
volume edge repeat the edge slice. Spatial sizes are zero padded up to ``size_multiple``.
(Inference proper lives in ``gdsynth.inference``.)
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from gdsynth.models.card import Mode


def _pad_to(x: torch.Tensor, multiple: int, dims: int) -> tuple[torch.Tensor, list[int]]:
    sizes = list(x.shape[-dims:])
    pads: list[int] = []
    for s in reversed(sizes):
        pads += [0, (-s) % multiple]
    return F.pad(x, pads), sizes


def slice_stack(volume: torch.Tensor, context: int) -> torch.Tensor:
    """``(C, X, Y, Z)`` → ``(Z, C * (2k+1), X, Y)``: for each z the sequence-major slices
    ``z-k .. z+k`` (edge slices repeated)."""
    c, x, y, z = volume.shape
    idx = torch.arange(z)[:, None] + torch.arange(-context, context + 1)[None, :]
    idx = idx.clamp(0, z - 1)  # (Z, S)
    stacked = volume[:, :, :, idx]  # (C, X, Y, Z, S)
    return stacked.permute(3, 0, 4, 1, 2).reshape(z, c * (2 * context + 1), x, y)


@torch.no_grad()
def predict_volume(
    generator: nn.Module, volume: torch.Tensor, *, mode: str, context_slices: int,
    batch: int = 16,
) -> torch.Tensor:
    """Run ``generator`` over a whole ``(C, X, Y, Z)`` volume (generator's device and mode)."""
    multiple = int(getattr(generator, "size_multiple", 1))
    device = next(generator.parameters()).device
    if Mode(mode) is Mode.three_d:
        x, sizes = _pad_to(volume[None].to(device), multiple, 3)
        out = generator(x)[0]
        return out[:, : sizes[0], : sizes[1], : sizes[2]]
    k = context_slices if Mode(mode) is Mode.two_half_d else 0
    slices = slice_stack(volume, k)
    outs = []
    for start in range(0, slices.shape[0], batch):
        x, sizes = _pad_to(slices[start : start + batch].to(device), multiple, 2)
        outs.append(generator(x)[:, :, : sizes[0], : sizes[1]])
    return torch.cat(outs).permute(1, 2, 3, 0)  # (Z, O, X, Y) -> (O, X, Y, Z)


def crop_to_mask(tensors: dict[str, torch.Tensor], mask: torch.Tensor, margin: int = 4) -> dict:
    """Crop ``(C, X, Y, Z)`` tensors to the bounding box of ``mask`` (``(1, X, Y, Z)``) + margin."""
    nz = torch.nonzero(mask[0] > 0)
    if nz.numel() == 0:
        return tensors
    lo = (nz.min(0).values - margin).clamp_min(0).tolist()
    hi = (nz.max(0).values + margin + 1).tolist()
    return {k: v[:, lo[0] : hi[0], lo[1] : hi[1], lo[2] : hi[2]] if torch.is_tensor(v) and v.dim() == 4
            else v for k, v in tensors.items()}
