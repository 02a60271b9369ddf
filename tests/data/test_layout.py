"""The 2.5D layout is one: training patches and inference slices give the network the same
channels for the same slab."""

from __future__ import annotations

import torch

from gdsynth.data.layout import slices_to_channels
from gdsynth.data.patches import to_tensors
from gdsynth.inference.slices import stack_slices


def test_slices_to_channels_is_sequence_major():
    slab = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)  # (C, X, Y, S)
    out = slices_to_channels(slab)
    assert out.shape == (10, 3, 4)
    for c in range(2):
        for j in range(5):
            assert torch.equal(out[c * 5 + j], slab[c, :, :, j])
    batched = slices_to_channels(torch.stack([slab, slab + 1]))
    assert torch.equal(batched, torch.stack([out, out + 1]))


def test_training_patch_and_inference_slice_agree():
    torch.manual_seed(0)
    volume = torch.randn(3, 6, 7, 9)  # (S, X, Y, Z)
    z, k = 4, 1
    patch = {name: volume[i : i + 1, :, :, z - k : z + k + 1] for i, name in
             enumerate(("T1w", "T2w", "FLAIR"))}
    patch["brain"] = torch.ones(1, 6, 7, 2 * k + 1)
    train = to_tensors(patch, ["T1w", "T2w", "FLAIR"], "2.5d")["input"]
    assert torch.equal(train, stack_slices(volume, [z], k)[0])
