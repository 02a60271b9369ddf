"""MC dropout with the U-Net encoder shared across samples gives the same maps as without."""

from __future__ import annotations

import torch

from gdsynth.inference.mc import MCDropoutPredictor, SharedEncoder
from gdsynth.inference.pipeline import SynthesisSettings, build_predictor
from gdsynth.inference.predictor import make_predictor
from gdsynth.inference.volume import predict_volume
from gdsynth.models.card import ModelCard
from gdsynth.models.unet import UNetGenerator


def _unet(dropout: float = 0.5) -> UNetGenerator:
    torch.manual_seed(0)
    return UNetGenerator(in_channels=9, features=4, depth=2, max_features=16, dropout=dropout,
                         heads=["enhancing"]).eval()


def test_shared_encoder_matches_plain_mc() -> None:
    gen = _unet()
    card = ModelCard(architecture={"name": "unet"}, mode="2.5d", context_slices=1)
    vol = torch.randn(3, 13, 10, 7)
    plain = MCDropoutPredictor(gen, make_predictor(gen), 4, seed=2, max_items=3)
    want = predict_volume(plain, vol, card, size_multiple=4, batch_size=3)
    for max_items in (3, 6, None):  # one sample per forward (CPU default), two, all
        settings = SynthesisSettings(mc_samples=4, seed=2, batch_size=3, max_items=max_items)
        predictor = build_predictor(gen, settings)
        assert isinstance(predictor.shared, SharedEncoder)
        got = predict_volume(predictor, vol, card, size_multiple=4, batch_size=3)
        torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_shared_encoder_only_for_decoder_dropout() -> None:
    assert SharedEncoder.wrap(_unet()) is not None
    assert SharedEncoder.wrap(_unet(dropout=0.0)) is None  # nothing to share: no dropout
    assert SharedEncoder.wrap(torch.nn.Sequential(torch.nn.Conv2d(9, 1, 1))) is None


def test_mc_leaves_no_state_behind() -> None:
    """Masks are passed as values (shared encoder) or hooked for one forward (any generator):
    no hook stays on the model, and a predictor gives the same output call after call."""
    gen = _unet()
    x = torch.randn(2, 9, 12, 8)
    hooked = MCDropoutPredictor(gen, make_predictor(gen), 3, seed=1, max_items=2)
    want = hooked(x)
    assert not any(m._forward_hooks for m in gen.modules())
    shared = MCDropoutPredictor(gen, SharedEncoder.wrap(gen), 3, seed=1, max_items=2)
    got = shared(x)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)
    assert torch.equal(shared(x), got) and torch.equal(hooked(x), want)
