"""LRP-ε on the U-Net: ignored inputs get zero relevance, relevance is conserved."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from gdsynth.errors import ConfigError
from gdsynth.explain.attribution import Method, make_forward, slab_of
from gdsynth.explain.exam import explain_volume
from gdsynth.explain.lrp import NormRule, lrp
from gdsynth.models.unet import UNetGenerator

SEQS = ["T1w", "T2w", "FLAIR"]


def tiny_unet(norm: str = "instance", in_channels: int = 9, seed: int = 0) -> UNetGenerator:
    torch.manual_seed(seed)
    return UNetGenerator(in_channels=in_channels, features=4, depth=2, max_features=8, norm=norm,
                         dropout=0.5).eval()


def zero_biases(net: nn.Module) -> None:
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.InstanceNorm2d | nn.Conv2d | nn.ConvTranspose2d) and m.bias is not None:
                m.bias.zero_()


def lesion_case(seed: int = 0):
    rng = np.random.default_rng(seed)
    vol = (1.0 + 0.2 * rng.standard_normal((3, 16, 16, 5))).astype(np.float32)
    mask = np.zeros((16, 16, 5), bool)
    mask[6:9, 7:10, 2] = True
    vol[:, 6:9, 7:10, 2] += 0.8
    return vol, mask


@pytest.mark.parametrize("norm", ["instance", "none"])
def test_conservation_on_a_bias_free_unet(norm):
    net = tiny_unet(norm, in_channels=3)
    zero_biases(net)
    x = torch.rand(1, 3, 16, 16) + 0.5

    def f(t):
        return net(t)[:, 0, 4:10, 3:9].sum().reshape(1)

    rel = lrp(f, x, epsilon=1e-9, network=net)
    assert abs(rel.output) > 1e-4
    assert rel.relevance.shape == x.shape[1:]
    assert rel.total == pytest.approx(rel.output, rel=1e-4)
    assert float(rel.positive().sum() + rel.negative().sum()) == pytest.approx(rel.total, rel=1e-5)
    assert (rel.positive() >= 0).all() and (rel.negative() <= 0).all()


def test_fixed_norm_rule_is_not_conservative():
    """Holding the instance-norm mean fixed turns −γ·mean/σ into a bias that absorbs relevance
    (why ``centred`` is the default)."""
    net = tiny_unet("instance", in_channels=3)
    zero_biases(net)
    x = torch.rand(1, 3, 16, 16) + 0.5

    def f(t):
        return net(t)[:, 0, 4:10, 3:9].sum().reshape(1)

    fixed = lrp(f, x, epsilon=1e-9, norm_rule=NormRule.fixed, network=net)
    assert abs(fixed.conservation - 1.0) > 0.05


def test_lrp_keeps_the_forward_value_and_restores_the_network():
    net = tiny_unet()
    vol, mask = lesion_case()
    fwd, region = make_forward(net, mask, mode="2.5d", context=1, residual=True, t1w_index=0)
    slab = slab_of(vol, region)
    with torch.no_grad():
        plain = float(fwd(slab)[0])
    rel = lrp(fwd, slab)
    assert rel.output == pytest.approx(plain, rel=1e-5, abs=1e-6)
    assert not any(m._forward_hooks for m in net.modules())
    assert rel.relevance.shape == slab.shape[1:]


def test_an_ignored_sequence_gets_zero_relevance():
    net = tiny_unet()
    with torch.no_grad():
        net.stem[0].weight[:, 3:6] = 0.0  # the T2w channels (sequence-major, 3 slices each)
    vol, mask = lesion_case()
    labels = mask.astype(np.int32)
    brain = np.ones(mask.shape, bool)
    expl = explain_volume(net, vol, brain, labels, [1], sequences=SEQS, mode="2.5d", context=1,
                          methods=[Method.lrp])
    cols = expl.columns[1]
    assert cols["attr_lrp_T2w"] == 0.0
    assert abs(cols["attr_lrp_T1w"]) + abs(cols["attr_lrp_FLAIR"]) == pytest.approx(1.0)
    assert np.all(expl.relevance["T2w"] == 0.0)
    assert np.abs(expl.relevance["FLAIR"]).sum() > 0
    assert np.isfinite(expl.conservation[1])


def test_unknown_layers_and_rules_are_refused():
    net = nn.Sequential(nn.Conv2d(1, 1, 3, padding=1), nn.GELU())
    with pytest.raises(ConfigError, match="GELU"):
        lrp(lambda t: net(t).sum().reshape(1), torch.ones(1, 1, 4, 4), network=net)
    conv = nn.Conv2d(1, 1, 1)
    with pytest.raises(ConfigError, match="centred, fixed"):
        lrp(lambda t: conv(t).sum().reshape(1), torch.ones(1, 1, 4, 4), norm_rule="mean",
            network=conv)


def test_conservation_on_a_bias_free_3d_unet():
    torch.manual_seed(1)
    net = UNetGenerator(in_channels=2, features=2, depth=2, max_features=4, spatial_dims=3,
                        upsample="interpolate").eval()
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, nn.InstanceNorm3d | nn.Conv3d) and m.bias is not None:
                m.bias.zero_()
    x = torch.rand(1, 2, 8, 8, 8) + 0.5

    def f(t):
        return net(t)[:, 0, 2:6, 2:6, 3:5].sum().reshape(1)

    rel = lrp(f, x, epsilon=1e-9, network=net)
    assert rel.total == pytest.approx(rel.output, rel=1e-4)
