"""Whole-volume prediction with a 2D / 2.5D generator: every axial slice, whole, in batches.

Slices are never tiled, so there are no seams: each axial slice (Z index of the prepared RAS
volume) is padded in X and Y to the generator's size multiple, predicted, and cropped back.
2.5D input for slice ``z``: for each sequence ``s`` (in the card's order), slices
``z-k .. z+k`` stacked as channels, ``channel = s * (2k + 1) + (offset + k)``; indices beyond
the volume are clamped to the first/last slice (edge replication).
"""

from __future__ import annotations

from collections.abc import Sequence
from enum import Enum

import torch
import torch.nn.functional as F
from torch import Tensor

from gdsynth.errors import ConfigError
from gdsynth.inference.predictor import Predictor


class PadMode(str, Enum):
    """How slices/volumes are padded to the size multiple (then cropped back)."""

    constant = "constant"  # zeros: the background of normalized volumes
    reflect = "reflect"
    replicate = "replicate"

    @classmethod
    def parse(cls, value: str | PadMode) -> PadMode:
        try:
            return cls(value)
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ConfigError(None, f"unknown pad mode {value!r}; choose one of: {valid}") from None


def pad_amounts(size: int, multiple: int) -> tuple[int, int]:
    """(before, after) padding that brings ``size`` up to a multiple of ``multiple``."""
    total = (-size) % multiple
    return total // 2, total - total // 2


def pad_to_multiple(x: Tensor, multiple: int, mode: str | PadMode = PadMode.constant
                    ) -> tuple[Tensor, tuple[slice, ...]]:
    """Pad the spatial axes of (B, C, *spatial) ``x``; return it and the crop that undoes it."""
    mode = PadMode.parse(mode)
    spatial = x.shape[2:]
    amounts = [pad_amounts(s, multiple) for s in spatial]
    if not any(a + b for a, b in amounts):
        return x, tuple(slice(None) for _ in spatial)
    flat = [v for a, b in reversed(amounts) for v in (a, b)]  # F.pad: last axis first
    if mode is PadMode.reflect and any(max(a, b) >= s for (a, b), s in zip(amounts, spatial, strict=True)):
        mode = PadMode.replicate  # reflect needs pad < size
    padded = F.pad(x, flat, mode=mode.value) if mode is not PadMode.constant else F.pad(x, flat)
    crop = tuple(slice(a, a + s) for (a, _), s in zip(amounts, spatial, strict=True))
    return padded, crop


def stack_slices(volume: Tensor, z_indices: Sequence[int], context: int) -> Tensor:
    """Model input for axial slices ``z_indices`` of ``volume`` (S, X, Y, Z).

    Returns (B, S*(2*context+1), X, Y) with ``channel = s*(2k+1) + offset_index``.
    """
    n_z = volume.shape[-1]
    offsets = torch.arange(-context, context + 1)
    z = torch.as_tensor(list(z_indices), dtype=torch.long)
    idx = (z[:, None] + offsets[None, :]).clamp(0, n_z - 1)  # (B, 2k+1)
    picked = volume[..., idx]  # (S, X, Y, B, 2k+1)
    s, x, y, b, o = picked.shape
    return picked.permute(3, 0, 4, 1, 2).reshape(b, s * o, x, y)


def predict_slices(
    predictor: Predictor,
    volume: Tensor,
    *,
    context: int = 0,
    batch_size: int = 8,
    size_multiple: int = 1,
    pad_mode: str | PadMode = PadMode.constant,
) -> Tensor:
    """Predict every axial slice of ``volume`` (S, X, Y, Z); return (C_out, X, Y, Z) float32 (CPU).

    ``context`` is 0 for 2D and k for 2.5D (2k+1 slices per sequence). Batches of
    ``batch_size`` slices; the predictor's output channels decide ``C_out``.
    """
    if volume.dim() != 4:
        raise ValueError(f"volume must be (S, X, Y, Z), got shape {tuple(volume.shape)}")
    n_z = volume.shape[-1]
    out: Tensor | None = None
    for z0 in range(0, n_z, batch_size):
        zs = range(z0, min(n_z, z0 + batch_size))
        batch, crop = pad_to_multiple(stack_slices(volume, zs, context), size_multiple, pad_mode)
        pred = predictor(batch)[(slice(None), slice(None), *crop)]  # (B, C, X, Y)
        if out is None:
            out = torch.empty((pred.shape[1], *volume.shape[1:]), dtype=torch.float32)
        out[..., z0:z0 + len(zs)] = pred.permute(1, 2, 3, 0).float()
    assert out is not None
    return out
