"""Losses for pix2pix training: adversarial (vanilla | lsgan | hinge), masked/lesion-weighted L1,
SSIM. Tensors are ``(B, C, *spatial)`` with 2 or 3 spatial dimensions, normalized intensity units.
"""

from __future__ import annotations

from enum import Enum

import torch
import torch.nn.functional as F
from torch import nn

from gdsynth.errors import parse_choice


class AdversarialCriterion(str, Enum):
    """GAN objective: BCE with logits (pix2pix), least squares, or hinge."""

    vanilla = "vanilla"
    lsgan = "lsgan"
    hinge = "hinge"


class AdversarialLoss(nn.Module):
    """Patch adversarial loss with a generator/discriminator API (as MONAI's PatchAdversarialLoss).

    ``loss(logits, target_is_real, for_discriminator)``: the mean over the patch map (a list of
    maps is averaged). With hinge, the generator term is ``-mean(logits)`` whatever the target.
    """

    def __init__(self, *, criterion: str = "vanilla") -> None:
        super().__init__()
        self.criterion = parse_choice(AdversarialCriterion, criterion, "adversarial criterion")

    def _one(self, logits: torch.Tensor, real: bool, for_discriminator: bool) -> torch.Tensor:
        c = self.criterion
        if c is AdversarialCriterion.hinge:
            if not for_discriminator:
                return -logits.mean()
            return F.relu(1.0 - logits).mean() if real else F.relu(1.0 + logits).mean()
        target = torch.full_like(logits, 1.0 if real else 0.0)
        if c is AdversarialCriterion.vanilla:
            return F.binary_cross_entropy_with_logits(logits, target)
        return F.mse_loss(logits, target)

    def forward(
        self, logits: torch.Tensor | list[torch.Tensor], target_is_real: bool,
        for_discriminator: bool,
    ) -> torch.Tensor:
        maps = logits if isinstance(logits, list | tuple) else [logits]
        return torch.stack([self._one(m, target_is_real, for_discriminator) for m in maps]).mean()


def weighted_l1(
    prediction: torch.Tensor,
    target: torch.Tensor,
    *,
    mask: torch.Tensor | None = None,
    lesion: torch.Tensor | None = None,
    lesion_weight: float = 0.0,
) -> torch.Tensor:
    """Mean absolute error, optionally inside ``mask`` (brain) with lesion voxels weighted
    ``1 + lesion_weight``. ``mask``/``lesion`` are broadcastable to ``prediction`` (0/1 floats).
    An empty mask gives 0 (not NaN)."""
    diff = (prediction - target).abs()
    w = torch.ones_like(diff) if mask is None else mask.to(diff.dtype).expand_as(diff)
    if lesion is not None and lesion_weight:
        w = w * (1.0 + lesion_weight * lesion.to(diff.dtype).expand_as(diff))
    return (diff * w).sum() / w.sum().clamp_min(1.0)


def _gaussian_window(spatial_dims: int, size: int, sigma: float, device, dtype) -> torch.Tensor:
    x = torch.arange(size, device=device, dtype=dtype) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    g = g / g.sum()
    w = g
    for _ in range(spatial_dims - 1):
        w = w.unsqueeze(-1) * g
    return w[None, None]


def ssim_map(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float, win_size: int = 7, sigma: float = 1.5
) -> torch.Tensor:
    """Local SSIM map ``(B, C, *spatial)`` with a Gaussian window (zero padded, 'same' size).

    ``data_range`` is the intensity range (normalized units) used in the stabilising constants.
    """
    dims = x.dim() - 2
    conv = F.conv2d if dims == 2 else F.conv3d
    c = x.shape[1]
    w = _gaussian_window(dims, win_size, sigma, x.device, x.dtype).repeat(c, *([1] * (dims + 1)))
    pad = win_size // 2

    def blur(t: torch.Tensor) -> torch.Tensor:
        return conv(t, w, padding=pad, groups=c)

    mu_x, mu_y = blur(x), blur(y)
    sxx = blur(x * x) - mu_x**2
    syy = blur(y * y) - mu_y**2
    sxy = blur(x * y) - mu_x * mu_y
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    return ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x**2 + mu_y**2 + c1) * (sxx + syy + c2))


def ssim_loss(
    x: torch.Tensor, y: torch.Tensor, *, data_range: float, mask: torch.Tensor | None = None
) -> torch.Tensor:
    """``1 - mean SSIM`` (inside ``mask`` when given)."""
    m = ssim_map(x, y, data_range=data_range)
    if mask is None:
        return 1.0 - m.mean()
    w = mask.to(m.dtype).expand_as(m)
    return 1.0 - (m * w).sum() / w.sum().clamp_min(1.0)
