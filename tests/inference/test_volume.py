"""Whole-volume prediction (2D, 2.5D, 3D) and seeded MC dropout, with tiny networks."""

from __future__ import annotations

import pytest
import torch

from gdsynth.inference.mc import MCDropoutPredictor, split_mean_std
from gdsynth.inference.predictor import make_predictor
from gdsynth.inference.slices import pad_to_multiple, predict_slices, stack_slices
from gdsynth.inference.sliding import predict_windows
from gdsynth.inference.volume import predict_volume
from gdsynth.models.card import ModelCard
from tests.inference.tiny import TinyGenerator

torch.set_num_threads(1)


def test_25d_channel_layout_and_edges():
    s, z = torch.meshgrid(torch.arange(3.0), torch.arange(5.0), indexing="ij")
    vol = (1000 * s + z)[:, None, None, :].expand(3, 4, 6, 5).contiguous()  # value = 1000 s + z
    batch = stack_slices(vol, [0, 4], context=1)
    assert batch.shape == (2, 9, 4, 6)
    for b, zc in enumerate((0, 4)):
        for si in range(3):
            for o in range(3):
                want = 1000 * si + min(max(zc + o - 1, 0), 4)
                assert torch.all(batch[b, si * 3 + o] == want)


@pytest.mark.parametrize("mode", ["2d", "2.5d"])
def test_slices_whole_volume_padded_and_batch_invariant(mode):
    context = 1 if mode == "2.5d" else 0
    gen = TinyGenerator(3 * (2 * context + 1), n_heads=1).eval()
    card = ModelCard(architecture={"name": "tiny"}, mode=mode, context_slices=context, heads=["x"])
    vol = torch.randn(3, 13, 10, 7)  # not multiples of 4: must be padded and cropped
    pred = make_predictor(gen)
    a = predict_volume(pred, vol, card, size_multiple=4, batch_size=7)
    b = predict_volume(pred, vol, card, size_multiple=4, batch_size=1)
    assert a.shape == (2, 13, 10, 7)
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
    # slice z equals the network applied to that one padded slice
    x, crop = pad_to_multiple(stack_slices(vol, [3], context), 4)
    with torch.no_grad():
        ref = gen(x)[(slice(None), slice(None), *crop)][0]
    torch.testing.assert_close(a[..., 3], ref, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("pad_mode", ["reflect", "replicate"])
def test_other_pad_modes_match_the_reference(pad_mode):
    gen = TinyGenerator(3).eval()
    vol = torch.randn(3, 9, 6, 4)
    out = predict_slices(make_predictor(gen), vol, batch_size=3, size_multiple=4, pad_mode=pad_mode)
    x, crop = pad_to_multiple(stack_slices(vol, [2], 0), 4, pad_mode)
    with torch.no_grad():
        torch.testing.assert_close(out[..., 2], gen(x)[(slice(None), slice(None), *crop)][0])


def test_3d_hann_windows_have_no_seams():
    vol = torch.randn(2, 30, 21, 17)
    out = predict_windows(lambda b: 2 * b[:, :1] + 1, vol, patch_size=16, overlap=0.5,
                          batch_size=3, size_multiple=8)
    assert out.shape == (1, 30, 21, 17)
    torch.testing.assert_close(out, 2 * vol[:1] + 1, rtol=1e-4, atol=1e-4)
    gen = TinyGenerator(3, dims=3).eval()
    card = ModelCard(architecture={"name": "tiny"}, mode="3d", patch_size=[12, 12, 12])
    assert predict_volume(make_predictor(gen), torch.randn(3, 19, 14, 9), card,
                          size_multiple=4, batch_size=2).shape == (1, 19, 14, 9)


def test_mc_dropout_seeded_batch_independent_and_std():
    vol = torch.randn(9, 12, 11, 6)
    card = ModelCard(architecture={"name": "tiny"}, mode="2.5d", context_slices=1)
    gen = TinyGenerator(9, p=0.5).eval()
    plain = make_predictor(gen)

    def run(seed, batch, max_items=None, model=gen, n=5):
        mc = MCDropoutPredictor(model, make_predictor(model), n, seed=seed, max_items=max_items)
        return predict_volume(mc, vol[:3], card, size_multiple=4, batch_size=batch)

    a, b = run(3, 4), run(3, 1, max_items=2)
    assert torch.equal(a, run(3, 4))  # same seed and batching: byte-identical
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)  # masks do not depend on batching
    assert not torch.equal(a, run(4, 4))
    mean, std = split_mean_std(a)
    assert std.min() >= 0 and std.mean() > 0
    assert not torch.equal(mean, predict_volume(plain, vol[:3], card, size_multiple=4))
    assert not any(m.training for m in gen.modules())  # the model stays in eval mode
    off = TinyGenerator(9, p=0.0).eval()
    _, std0 = split_mean_std(run(3, 4, model=off))
    assert torch.all(std0 == 0)


def test_predict_slices_rejects_bad_layout():
    with pytest.raises(ValueError):
        predict_slices(lambda b: b, torch.zeros(4, 4, 4))
