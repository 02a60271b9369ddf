"""Per-lesion attribution of the synthetic enhancement to the input sequences.

Arrays: the prepared input ``volume`` is ``(S, X, Y, Z)`` float32 in normalized units (NAWM = 1),
sequences in the model card's ``inputs`` order; ``brain`` and lesion masks are ``(X, Y, Z)`` bool.

The lesion's enhancement is what the generator predicts on the region it can see: for 2D/2.5D
models the axial slices covering the lesion (each padded to the size multiple with zeros, with
``context_slices`` neighbours replicated at the volume edges, exactly like
:mod:`gdsynth.inference.slices`); for 3D models a box around the lesion (``margin`` voxels) grown to
the size multiple. :class:`LesionForward` is differentiable in its input, so it serves both methods:

* **ablation** (:func:`ablation`): replace one sequence by its baseline, re-run, and record the
  change of the lesion's mean enhancement (normalized units): ``delta_s = E(x) − E(x with s ablated)``;
* **integrated gradients** (:func:`integrated_gradients`, captum): the scalar is the lesion's summed
  enhancement in its mask; the baseline is the same ablation baseline for every sequence; voxel
  attributions summed per sequence (all its context slices);
* **LRP** (:func:`gdsynth.explain.lrp.lrp`): the same scalar, redistributed layer by layer onto the
  input voxels (LRP-ε, no baseline), summed per sequence.

The baseline of a sequence (:func:`baseline_volume`) is 1.0 (NAWM) inside the brain and the
sequence's mean outside the brain elsewhere: an image that says "normal white matter everywhere".
Shares (:func:`shares`) are ``a_s / Σ|a|`` (signed; Σ|share| = 1; all 0 when nothing changes).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import Enum

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from gdsynth.errors import ConfigError
from gdsynth.models.card import Mode


class Method(str, Enum):
    """Attribution methods (column prefixes ``attr_<method>_<Seq>``)."""

    ablation = "ablation"
    ig = "ig"
    lrp = "lrp"  # layer-wise relevance propagation, gdsynth.explain.lrp


def baseline_volume(volume: np.ndarray, brain: np.ndarray) -> np.ndarray:
    """``(S, X, Y, Z)`` baseline: 1.0 in the brain, each sequence's mean outside it elsewhere."""
    brain = np.asarray(brain, bool)
    out = np.empty_like(volume, dtype=np.float32)
    for s in range(volume.shape[0]):
        outside = volume[s][~brain]
        out[s] = float(outside.mean()) if outside.size else 0.0
        out[s][brain] = 1.0
    return out


def shares(values: Sequence[float]) -> list[float]:
    """Signed shares ``v / Σ|v|`` (all zeros when every value is ~0)."""
    v = np.asarray(values, dtype=float)
    total = float(np.abs(v).sum())
    return [0.0] * len(v) if total < 1e-12 else (v / total).tolist()


@dataclass(frozen=True)
class Region:
    """Where the generator runs for one lesion: index ranges of the input slab and the output."""

    x: slice
    y: slice
    z_in: np.ndarray  # (Zin,) z indices of the input slab (clamped at the volume edges)
    z_out: slice  # output z range (volume indices)
    pad: tuple[int, int, int, int, int, int]  # (x0, x1, y0, y1, z0, z1) zero padding


def _pad(size: int, multiple: int) -> tuple[int, int]:
    extra = (-size) % multiple
    return extra // 2, extra - extra // 2


def lesion_region(mask: np.ndarray, mode: str, context: int, multiple: int, margin: int = 8
                  ) -> Region:
    """The :class:`Region` of a lesion ``mask`` (X, Y, Z) for a model of ``mode``."""
    nz = np.argwhere(mask)
    if nz.size == 0:
        raise ValueError("empty lesion mask")
    lo, hi = nz.min(0), nz.max(0) + 1
    shape = mask.shape
    if Mode(mode) is Mode.three_d:
        lo = np.maximum(lo - margin, 0)
        hi = np.minimum(hi + margin, shape)
        px, py, pz = (_pad(int(h - lo_), multiple) for lo_, h in zip(lo, hi, strict=True))
        return Region(slice(int(lo[0]), int(hi[0])), slice(int(lo[1]), int(hi[1])),
                      np.arange(lo[2], hi[2]), slice(int(lo[2]), int(hi[2])), (*px, *py, *pz))
    k = context if Mode(mode) is Mode.two_half_d else 0
    z_in = np.clip(np.arange(lo[2] - k, hi[2] + k), 0, shape[2] - 1)
    px, py = _pad(shape[0], multiple), _pad(shape[1], multiple)
    return Region(slice(0, shape[0]), slice(0, shape[1]), z_in, slice(int(lo[2]), int(hi[2])),
                  (*px, *py, 0, 0))


class LesionForward(nn.Module):
    """``slab (B, S, x, y, Zin) -> (B,)``: the lesion's summed predicted enhancement in ``mask``.

    ``mask`` is the lesion cropped to the region's output ``(x, y, Zout)``; ``residual`` models
    predict post − pre in channel 0, others the post (then the T1w input at that slice,
    ``t1w_index`` among the sequences, is subtracted).
    """

    def __init__(self, generator: nn.Module, mask: np.ndarray, region: Region, mode: str,
                 context: int, residual: bool = True, t1w_index: int = 0) -> None:
        super().__init__()
        self.generator = generator
        self.register_buffer("mask", torch.as_tensor(np.asarray(mask, np.float32)))
        self.region, self.residual, self.t1w_index = region, residual, t1w_index
        self.three_d = Mode(mode) is Mode.three_d
        self.k = context if Mode(mode) is Mode.two_half_d else 0

    def enhancement(self, slab: torch.Tensor) -> torch.Tensor:
        """``(B, S, x, y, Zin) -> (B, x, y, Zout)`` predicted enhancement."""
        x0, x1, y0, y1, z0, z1 = self.region.pad
        b, s, nx, ny, nzin = slab.shape
        if self.three_d:
            out = self.generator(F.pad(slab, (z0, z1, y0, y1, x0, x1)))[:, 0]
            out = out[:, x0 : x0 + nx, y0 : y0 + ny, z0 : z0 + nzin]
            pre = slab[:, self.t1w_index]
        else:
            w = 2 * self.k + 1
            n = nzin - 2 * self.k
            windows = slab.unfold(4, w, 1)  # (B, S, x, y, n, w)
            flat = windows.permute(0, 4, 1, 5, 2, 3).reshape(b * n, s * w, nx, ny)
            out = self.generator(F.pad(flat, (y0, y1, x0, x1)))[:, 0, x0 : x0 + nx, y0 : y0 + ny]
            out = out.reshape(b, n, nx, ny).permute(0, 2, 3, 1)
            pre = slab[:, self.t1w_index, :, :, self.k : self.k + n]
        return out if self.residual else out - pre

    def forward(self, slab: torch.Tensor) -> torch.Tensor:
        return (self.enhancement(slab) * self.mask).flatten(1).sum(1)


def slab_of(volume: np.ndarray, region: Region) -> torch.Tensor:
    """``(1, S, x, y, Zin)`` input slab of ``volume`` (S, X, Y, Z) for ``region``."""
    sub = volume[:, region.x, region.y][..., region.z_in]
    return torch.as_tensor(np.ascontiguousarray(sub, dtype=np.float32))[None]


def make_forward(generator: nn.Module, lesion: np.ndarray, *, mode: str, context: int,
                 residual: bool, t1w_index: int, margin: int = 8) -> tuple[LesionForward, Region]:
    """The :class:`LesionForward` and :class:`Region` of a lesion mask (X, Y, Z)."""
    from gdsynth.inference.predictor import size_multiple

    region = lesion_region(lesion, mode, context, size_multiple(generator), margin)
    mask = lesion[region.x, region.y, region.z_out]
    return LesionForward(generator, mask, region, mode, context, residual, t1w_index), region


@torch.no_grad()
def ablation(forward: LesionForward, slab: torch.Tensor, base: torch.Tensor) -> list[float]:
    """Per sequence: lesion mean enhancement (full input) minus with that sequence at baseline."""
    n = float(forward.mask.sum().clamp_min(1.0))
    batch = slab.repeat(slab.shape[1] + 1, 1, 1, 1, 1)
    for s in range(slab.shape[1]):
        batch[s + 1, s] = base[0, s]
    values = forward(batch) / n
    return [float(values[0] - values[s + 1]) for s in range(slab.shape[1])]


def integrated_gradients(forward: LesionForward, slab: torch.Tensor, base: torch.Tensor,
                         n_steps: int = 16, internal_batch_size: int | None = None
                         ) -> tuple[list[float], torch.Tensor, float]:
    """captum integrated gradients: per-sequence sums, voxel attributions ``(S, x, y, Zin)`` and
    the convergence delta (Σ attributions − (F(x) − F(baseline)), same units as F)."""
    from captum.attr import IntegratedGradients

    if n_steps < 2:
        raise ConfigError(None, f"integrated gradients needs n_steps >= 2, got {n_steps}")
    ig = IntegratedGradients(forward)
    attr, delta = ig.attribute(slab, baselines=base, n_steps=n_steps, method="gausslegendre",
                               internal_batch_size=internal_batch_size or n_steps,
                               return_convergence_delta=True)
    attr = attr.detach()[0]
    return attr.flatten(1).sum(1).tolist(), attr, float(delta.abs().max())
