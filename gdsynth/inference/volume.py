"""One entry point for whole-volume prediction, whatever the model's mode (2d, 2.5d, 3d)."""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gdsynth.inference.predictor import Predictor
from gdsynth.inference.slices import PadMode, predict_slices
from gdsynth.inference.sliding import predict_windows
from gdsynth.models.card import Mode, ModelCard

#: Default 3D window (voxels per axis) when the card has no ``patch_size``.
DEFAULT_PATCH = 96


def predict_volume(
    predictor: Predictor,
    volume: np.ndarray | Tensor,
    card: ModelCard,
    *,
    size_multiple: int = 1,
    batch_size: int = 8,
    overlap: float = 0.5,
    pad_mode: str | PadMode = PadMode.constant,
) -> Tensor:
    """Predict a prepared volume (S, X, Y, Z), S = ``len(card.inputs)``, in its entirety.

    2D/2.5D: every axial slice whole (:func:`gdsynth.inference.slices.predict_slices`); 3D:
    Hann-blended windows of ``card.patch_size`` with ``overlap`` (fraction of a window).
    Returns (C_out, X, Y, Z) float32 on CPU, C_out being what the predictor returns.
    """
    vol = torch.as_tensor(np.asarray(volume, dtype=np.float32)) if isinstance(volume, np.ndarray) \
        else volume.float()
    if vol.dim() != 4 or vol.shape[0] != len(card.inputs):
        raise ValueError(
            f"volume must be (S={len(card.inputs)}, X, Y, Z) for inputs {card.inputs}, "
            f"got {tuple(vol.shape)}"
        )
    mode = Mode(card.mode)
    if mode is Mode.three_d:
        patch = card.patch_size or DEFAULT_PATCH
        return predict_windows(predictor, vol, patch_size=patch, overlap=overlap,
                               batch_size=batch_size, size_multiple=size_multiple)
    context = card.context_slices if mode is Mode.two_half_d else 0
    return predict_slices(predictor, vol, context=context, batch_size=batch_size,
                          size_multiple=size_multiple, pad_mode=pad_mode)
