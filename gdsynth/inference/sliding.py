"""Whole-volume prediction with a 3D generator: overlapping windows blended with a Hann window.

torchio's :class:`~torchio.inference.GridSampler` cuts (C, X, Y, Z) windows with a given overlap
(padding the volume when needed) and :class:`~torchio.inference.GridAggregator` with
``overlap_mode="hann"`` blends their predictions, which removes window seams.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from gdsynth.inference.predictor import Predictor


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def window_geometry(
    shape: Sequence[int], patch_size: Sequence[int] | int, multiple: int, overlap: float
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Window size (multiple of ``multiple``, at most the volume rounded up) and even overlap.

    ``overlap`` is the fraction of the window shared by neighbours (0.5 = half a window).
    """
    ps = [patch_size] * 3 if isinstance(patch_size, int) else list(patch_size)
    size = tuple(_round_up(min(p, _round_up(s, multiple)), multiple) for p, s in zip(ps, shape, strict=True))
    ov = tuple(min(p - 2, 2 * int(round(p * overlap / 2))) if p > 2 else 0 for p in size)
    return size, tuple(max(0, o) for o in ov)


def predict_windows(
    predictor: Predictor,
    volume: Tensor,
    *,
    patch_size: Sequence[int] | int = 96,
    overlap: float = 0.5,
    batch_size: int = 2,
    size_multiple: int = 1,
    padding_mode: str | float = 0.0,
) -> Tensor:
    """Predict ``volume`` (C, X, Y, Z) window by window; return (C_out, X, Y, Z) float32 (CPU)."""
    import torchio as tio

    size, ov = window_geometry(volume.shape[1:], patch_size, size_multiple, overlap)
    subject = tio.Subject(image=tio.ScalarImage(tensor=volume.float().cpu()))
    sampler = tio.inference.GridSampler(subject, size, ov, padding_mode=padding_mode)
    aggregator = tio.inference.GridAggregator(sampler, overlap_mode="hann")
    chunk: list = []
    for patch in sampler:  # lazily: only one batch of windows in memory
        chunk.append(patch)
        if len(chunk) == batch_size:
            _run(predictor, aggregator, chunk)
            chunk = []
    if chunk:
        _run(predictor, aggregator, chunk)
    return aggregator.get_output_tensor().float()


def _run(predictor: Predictor, aggregator, chunk: list) -> None:
    import torchio as tio

    batch = torch.stack([p["image"].data for p in chunk])
    locations = torch.stack([torch.as_tensor(p[tio.LOCATION]) for p in chunk])
    aggregator.add_batch(predictor(batch), locations)
