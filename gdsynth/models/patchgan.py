"""The conditional PatchGAN discriminator (pix2pix's 70x70 with ``n_layers=3``), 2D or 3D.

Input: ``concat(condition, image)`` along channels, ``(B, C_cond + C_img, *spatial)``; output: a
map of real/fake logits ``(B, 1, *patches)``, one per receptive field (70x70 pixels for 3 layers).
"""

from __future__ import annotations

import torch
from torch import nn

from gdsynth.errors import parse_choice
from gdsynth.models.unet import Norm, layers_for, norm_layer


class PatchDiscriminator(nn.Module):
    """PatchGAN: ``n_layers`` strided 4x4 convolutions, one stride-1, then a 1-channel logit map."""

    def __init__(
        self,
        *,
        in_channels: int,
        features: int = 64,
        n_layers: int = 3,
        spatial_dims: int = 2,
        norm: str = "instance",
        spectral_norm: bool = False,
    ) -> None:
        super().__init__()
        norm_e = parse_choice(Norm, norm, "norm")
        conv = layers_for(spatial_dims)[0]
        self.kwargs = {"in_channels": in_channels, "features": features, "n_layers": n_layers,
                       "spatial_dims": spatial_dims, "norm": norm_e.value,
                       "spectral_norm": spectral_norm}

        def c(cin: int, cout: int, stride: int) -> nn.Module:
            layer = conv(cin, cout, 4, stride=stride, padding=1)
            return nn.utils.parametrizations.spectral_norm(layer) if spectral_norm else layer

        mods: list[nn.Module] = [c(in_channels, features, 2), nn.LeakyReLU(0.2)]
        ch = features
        for n in range(1, n_layers + 1):
            out = features * min(2**n, 8)
            stride = 2 if n < n_layers else 1
            mods += [c(ch, out, stride), norm_layer(norm_e, out, spatial_dims), nn.LeakyReLU(0.2)]
            ch = out
        mods.append(c(ch, 1, 1))
        self.net = nn.Sequential(*mods)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, *spatial) -> (B, 1, *patch_grid)`` logits."""
        return self.net(x)
