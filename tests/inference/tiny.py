"""A tiny generator that respects the gdsynth generator contract, for inference tests."""

from __future__ import annotations

import torch
from torch import nn


class TinyGenerator(nn.Module):
    """(B, C_in, H, W) or (B, C_in, X, Y, Z) → (B, 1 + n_heads, ...), with one nn.Dropout.

    ``size_multiple`` = 4 like a depth-2 U-Net: inputs whose spatial size is not a multiple
    are refused, so tests catch a caller that forgets to pad.
    """

    size_multiple = 4

    def __init__(self, in_channels: int = 3, n_heads: int = 0, dims: int = 2, p: float = 0.5,
                 seed: int = 0) -> None:
        super().__init__()
        conv = nn.Conv2d if dims == 2 else nn.Conv3d
        torch.manual_seed(seed)
        self.body = nn.Sequential(conv(in_channels, 8, 3, padding=1), nn.ReLU(), nn.Dropout(p),
                                  conv(8, 1 + n_heads, 3, padding=1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if any(s % self.size_multiple for s in x.shape[2:]):
            raise ValueError(f"spatial size {tuple(x.shape[2:])} not a multiple of 4")
        return self.body(x)
