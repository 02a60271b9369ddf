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

from gdsynth.data.layout import slices_to_channels
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
    """Model input for axial slices ``z_indices`` of ``volume`` (S, X, Y, Z): the slab of
    ``2 * context + 1`` slices around each, edge-clamped, as channels
    (:func:`gdsynth.data.layout.slices_to_channels`). Returns (B, S*(2*context+1), X, Y) with
    ``channel = s*(2k+1) + offset_index``.
    """
    n_z = volume.shape[-1]
    offsets = torch.arange(-context, context + 1)
    z = torch.as_tensor(list(z_indices), dtype=torch.long)
    idx = (z[:, None] + offsets[None, :]).clamp(0, n_z - 1)  # (B, 2k+1)
    picked = volume[..., idx]  # (S, X, Y, B, 2k+1)
    return slices_to_channels(picked.permute(3, 0, 1, 2, 4))  # from (B, S, X, Y, 2k+1)


class _Stacker:
    """Builds padded 2.5D batches fast: the volume is stored once as (S, Z, X, Y) so each slice
    is contiguous, and each batch is gathered straight into a preallocated padded buffer."""

    def __init__(self, volume: Tensor, context: int, multiple: int, pad_mode: PadMode) -> None:
        self.by_z = volume.permute(0, 3, 1, 2).contiguous()  # (S, Z, X, Y)
        self.context, self.multiple, self.pad_mode = context, multiple, pad_mode
        x, y = volume.shape[1:3]
        (self.ax, bx), (self.ay, by) = pad_amounts(x, multiple), pad_amounts(y, multiple)
        self.padded = (x + self.ax + bx, y + self.ay + by)
        self.crop = (slice(self.ax, self.ax + x), slice(self.ay, self.ay + y))

    def batch(self, z_indices: range) -> Tensor:
        s, n_z, x, y = self.by_z.shape
        offsets = torch.arange(-self.context, self.context + 1)
        idx = (torch.as_tensor(list(z_indices))[:, None] + offsets).clamp(0, n_z - 1)
        picked = self.by_z[:, idx.reshape(-1)].reshape(s, len(z_indices), -1, x, y)  # (S, B, O, X, Y)
        b, o = picked.shape[1], picked.shape[2]
        if self.pad_mode is not PadMode.constant:
            flat = picked.transpose(0, 1).reshape(b, s * o, x, y)
            return pad_to_multiple(flat, self.multiple, self.pad_mode)[0]
        out = torch.zeros((b, s, o, *self.padded), dtype=picked.dtype)
        out[..., self.crop[0], self.crop[1]] = picked.transpose(0, 1)
        return out.reshape(b, s * o, *self.padded)


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
    stacker = _Stacker(volume.float(), context, size_multiple, PadMode.parse(pad_mode))
    n_z = volume.shape[-1]
    out: Tensor | None = None  # (C, Z, X, Y): each slice written contiguously
    for z0 in range(0, n_z, batch_size):
        zs = range(z0, min(n_z, z0 + batch_size))
        pred = predictor(stacker.batch(zs))[:, :, stacker.crop[0], stacker.crop[1]]
        if out is None:
            out = torch.empty((pred.shape[1], n_z, *volume.shape[1:3]), dtype=torch.float32)
        out[:, z0:z0 + len(zs)] = pred.transpose(0, 1)
    assert out is not None
    return out.permute(0, 2, 3, 1).contiguous()
