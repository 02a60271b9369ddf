"""Adversarial criteria, weighted L1 and SSIM."""

from __future__ import annotations

import math

import pytest
import torch

from gdsynth.errors import ConfigError
from gdsynth.models.losses import AdversarialLoss, ssim_loss, ssim_map, weighted_l1


def test_vanilla_is_bce_with_logits():
    loss = AdversarialLoss(criterion="vanilla")
    zeros = torch.zeros(2, 1, 4, 4)
    assert loss(zeros, True, True).item() == pytest.approx(math.log(2))
    assert loss(torch.full_like(zeros, 10.0), True, False).item() < 1e-3
    assert loss([zeros, zeros], False, True).item() == pytest.approx(math.log(2))


def test_lsgan_and_hinge():
    ls = AdversarialLoss(criterion="lsgan")
    ones = torch.ones(1, 1, 3, 3)
    assert ls(ones, True, True).item() == 0.0
    assert ls(ones, False, True).item() == pytest.approx(1.0)
    hinge = AdversarialLoss(criterion="hinge")
    assert hinge(2 * ones, True, True).item() == 0.0  # relu(1 - 2)
    assert hinge(2 * ones, False, True).item() == pytest.approx(3.0)  # relu(1 + 2)
    assert hinge(2 * ones, True, False).item() == pytest.approx(-2.0)  # generator: -mean
    with pytest.raises(ConfigError, match="vanilla, lsgan, hinge"):
        AdversarialLoss(criterion="wgan")


def test_weighted_l1_mask_and_lesions():
    pred = torch.zeros(1, 1, 2, 2)
    target = torch.tensor([[[[1.0, 2.0], [0.0, 4.0]]]])
    mask = torch.tensor([[[[1.0, 1.0], [1.0, 0.0]]]])
    assert weighted_l1(pred, target).item() == pytest.approx(7 / 4)
    assert weighted_l1(pred, target, mask=mask).item() == pytest.approx(1.0)
    lesion = torch.tensor([[[[0.0, 1.0], [0.0, 0.0]]]])
    # weights 1, 3, 1 on errors 1, 2, 0 -> (1 + 6) / 5
    assert weighted_l1(pred, target, mask=mask, lesion=lesion, lesion_weight=2.0).item() == \
        pytest.approx(7 / 5)
    assert weighted_l1(pred, target, mask=torch.zeros_like(mask)).item() == 0.0


@pytest.mark.parametrize("shape", [(2, 1, 24, 24), (1, 1, 12, 12, 12)])
def test_ssim(shape):
    torch.manual_seed(0)
    x = torch.rand(shape)
    assert ssim_loss(x, x, data_range=1.0).item() == pytest.approx(0.0, abs=1e-5)
    noisy = x + 0.3 * torch.randn(shape)
    assert ssim_map(x, noisy, data_range=1.0).mean().item() < 0.9
    assert ssim_loss(x, noisy, data_range=1.0, mask=torch.ones(shape)).item() > 0.1
