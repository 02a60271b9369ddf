"""Shapes and behaviour of the generator, discriminator, registry and MC-dropout masks."""

from __future__ import annotations

import pytest
import torch

from gdsynth.errors import ConfigError, ModelError
from gdsynth.models import (
    PatchDiscriminator,
    UNetGenerator,
    build_discriminator,
    build_generator,
)

torch.set_num_threads(1)

CASES = [  # (name, in_channels, spatial_dims, spatial shape)
    ("2d", 3, 2, (32, 32)),
    ("2.5d", 9, 2, (32, 48)),
    ("3d", 3, 3, (16, 16, 32)),
]


@pytest.mark.parametrize(("mode", "cin", "dims", "shape"), CASES)
def test_generator_shapes(mode, cin, dims, shape):
    g = UNetGenerator(in_channels=cin, spatial_dims=dims, features=8, depth=3)
    assert g.size_multiple == 8
    out = g(torch.randn(2, cin, *shape))
    assert out.shape == (2, 1, *shape)
    heads = UNetGenerator(in_channels=cin, spatial_dims=dims, features=8, depth=2,
                          heads=("enhancing", "lesions"), upsample="interpolate")
    assert heads(torch.randn(1, cin, *shape)).shape == (1, 3, *shape)


@pytest.mark.parametrize(("mode", "cin", "dims", "shape"), CASES)
def test_discriminator_shapes(mode, cin, dims, shape):
    d = PatchDiscriminator(in_channels=cin + 1, features=8, n_layers=2, spatial_dims=dims,
                           spectral_norm=dims == 2)
    out = d(torch.randn(2, cin + 1, *shape))
    assert out.shape[:2] == (2, 1) and out.dim() == dims + 2
    assert all(0 < s < t for s, t in zip(out.shape[2:], shape, strict=True))


def test_pix2pix_patchgan_receptive_layout():
    d = PatchDiscriminator(in_channels=4)  # 70x70 PatchGAN: 256 -> 30x30 logits as pix2pix
    assert d(torch.zeros(1, 4, 256, 256)).shape == (1, 1, 30, 30)


def test_generator_rejects_indivisible_size():
    g = UNetGenerator(in_channels=3, features=8, depth=3)
    with pytest.raises(ValueError, match="divisible by 8"):
        g(torch.zeros(1, 3, 20, 32))


def test_bad_choices_list_valid_ones():
    with pytest.raises(ConfigError, match="instance, batch, none"):
        UNetGenerator(in_channels=3, norm="group")
    with pytest.raises(ModelError, match="valid: unet"):
        build_generator("resnet", in_channels=3)
    with pytest.raises(ModelError, match="invalid arguments"):
        build_generator("unet", in_channels=3, colour="red")


def test_registry_builds_same_architecture_from_kwargs():
    g = build_generator("unet", in_channels=9, features=8, depth=2, norm="batch")
    again = build_generator("unet", **g.kwargs)
    assert again.kwargs == g.kwargs
    again.load_state_dict(g.state_dict())  # identical parameter layout
    assert isinstance(build_discriminator(in_channels=10, features=8), PatchDiscriminator)


def test_dropout_in_decoder_blocks_and_decode_masks():
    torch.manual_seed(0)
    g = UNetGenerator(in_channels=3, features=8, depth=3, dropout=0.5, dropout_blocks=2).eval()
    drops = [m for m in g.modules() if isinstance(m, torch.nn.Dropout)]
    assert len(drops) == 2
    assert [level for level, _ in g.decoder_dropouts()] == [2, 1]  # deepest block first
    x = torch.randn(2, 3, 16, 16)
    assert torch.equal(g(x), g(x))  # eval: dropout off
    skips, y = g.encode(x)
    assert torch.equal(g.decode(skips, y), g(x))
    shapes = [skips[level].shape[1:] for level, _ in g.decoder_dropouts()]
    assert torch.equal(g.decode(skips, y, [torch.ones(1, *s) for s in shapes]), g(x))
    # two samples: all kept, then the first dropout module's first channel dropped (x 2 elsewhere)
    masks = [torch.ones(2, *s) for s in shapes]
    masks[0][1, 0] = 0.0
    two = g.decode(skips, y, masks)
    assert two.shape == (4, 1, 16, 16)
    torch.testing.assert_close(two[:2], g(x))
    assert not torch.allclose(two[2:], g(x))
    for m in drops:
        m.train()
    assert not torch.equal(g(x), g(x))
