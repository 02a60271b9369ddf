"""bf16 inference (autocast, channels-last) on a tiny U-Net matches fp32, and the option plumbing."""

from __future__ import annotations

import pytest
import torch

from gdsynth.inference.pipeline import SynthesisSettings, build_predictor
from gdsynth.inference.predictor import make_predictor
from gdsynth.inference.volume import predict_volume
from gdsynth.models.card import ModelCard
from gdsynth.models.unet import UNetGenerator
from gdsynth.runtime import Precision

needs_bf16 = pytest.mark.skipif(
    not (torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()),
    reason="this CPU has no bf16 support in oneDNN (needs AVX-512 BW/VL/DQ, or AVX-512 BF16 / AMX)")

CARD = ModelCard(architecture={"name": "unet"}, mode="2.5d", context_slices=1)


def _unet() -> UNetGenerator:
    torch.manual_seed(0)
    return UNetGenerator(in_channels=9, features=8, depth=2, max_features=16, dropout=0.5).eval()


def _volume() -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    return 1.0 + 0.1 * torch.randn(3, 20, 24, 6, generator=g)


@needs_bf16
@pytest.mark.parametrize("mc", [1, 3])
def test_bf16_matches_fp32(mc):
    vol = _volume()
    out = {}
    for precision in ("fp32", "bf16"):
        settings = SynthesisSettings(mc_samples=mc, batch_size=4, precision=precision,
                                     compile="off")
        out[precision] = predict_volume(build_predictor(_unet(), settings), vol, CARD,
                                        size_multiple=4, batch_size=4)
    assert out["bf16"].dtype == torch.float32 and out["bf16"].shape == out["fp32"].shape
    assert torch.isfinite(out["bf16"]).all()
    assert not torch.equal(out["bf16"], out["fp32"])  # it really ran in bf16
    # bf16 keeps 8 bits of mantissa: relative error of the activations about 2^-8
    scale = out["fp32"][:1].abs().max()
    torch.testing.assert_close(out["bf16"][:1], out["fp32"][:1], rtol=0, atol=0.05 * float(scale))


@needs_bf16
def test_bf16_predictor_runs_channels_last_and_returns_float32():
    model = _unet()
    seen = []
    model.stem.register_forward_hook(lambda m, a, y: seen.append((a[0], y)))
    predictor = make_predictor(model, precision="bf16")
    assert predictor.precision is Precision.bf16
    y = predictor(torch.randn(2, 9, 16, 16))
    assert y.dtype == torch.float32 and y.is_contiguous()
    x_in, stem_out = seen[0]
    assert x_in.is_contiguous(memory_format=torch.channels_last)  # the batch was converted
    assert stem_out.dtype == torch.bfloat16  # autocast was active


def test_fp32_predictor_dtype_and_layout_choice():
    model = _unet()
    seen = []
    model.stem.register_forward_hook(lambda m, a, y: seen.append((a[0], y)))
    predictor = make_predictor(model, precision="fp32", channels_last=False)
    assert predictor.precision is Precision.fp32
    predictor(torch.randn(2, 9, 16, 16))
    assert seen[-1][1].dtype == torch.float32 and seen[-1][0].is_contiguous()
    assert model.stem[0].weight.is_contiguous()
    make_predictor(model, precision="fp32")(torch.randn(2, 9, 16, 16))  # CPU default: channels-last
    x_in, stem_out = seen[-1]
    assert x_in.is_contiguous(memory_format=torch.channels_last)
    assert stem_out.is_contiguous(memory_format=torch.channels_last)  # the norm kept the layout
    model3d = UNetGenerator(in_channels=3, spatial_dims=3, features=4, depth=1, max_features=8)
    make_predictor(model3d, precision="fp32")(torch.randn(1, 3, 4, 4, 4))  # 3D: left as is
    assert model3d.stem[0].weight.is_contiguous()


@pytest.mark.parametrize("dims", [2, 3])
def test_instance_norm_keeps_channels_last_and_matches(dims):
    from gdsynth.models.unet import layers_for

    norm = layers_for(dims)[2]["instance"](6, affine=True)
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5)
        norm.bias.uniform_(-0.5, 0.5)
    x = 3 + 2 * torch.randn(2, 6, *([8] * dims))
    fmt = torch.channels_last if dims == 2 else torch.channels_last_3d
    y = norm(x.contiguous(memory_format=fmt))
    assert y.is_contiguous(memory_format=fmt)
    torch.testing.assert_close(y, torch.nn.functional.instance_norm(
        x, weight=norm.weight, bias=norm.bias), rtol=1e-5, atol=1e-5)
    assert set(norm.state_dict()) == {"weight", "bias"}  # the shipped weights' keys
