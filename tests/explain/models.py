"""Hand-built generators with known dependence on each input sequence (2.5D, sequence-major)."""

from __future__ import annotations

import torch
from torch import nn


class MaskedGenerator(nn.Module):
    """``(B, S*(2k+1), H, W) -> (B, 1, H, W)``: a 3x3 conv, tanh, 1x1 conv, whose weights on the
    channels of sequences not in ``use`` are zero, so they cannot change the output."""

    size_multiple = 4

    def __init__(self, sequences: list[str], use: list[str], context: int = 1, seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        per = 2 * context + 1
        self.conv = nn.Conv2d(len(sequences) * per, 6, 3, padding=1)
        self.out = nn.Conv2d(6, 1, 1)
        with torch.no_grad():
            for s, name in enumerate(sequences):
                if name not in use:
                    self.conv.weight[:, s * per : (s + 1) * per] = 0.0
                else:
                    self.conv.weight[:, s * per : (s + 1) * per] = self.conv.weight[:, s * per : (s + 1) * per].abs()
            self.out.weight.abs_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.conv(x)))


class MaskedGenerator3D(nn.Module):
    """3D ``(B, S, X, Y, Z) -> (B, 1, X, Y, Z)``: zero weights on the sequences not in ``use``;
    not residual: channel 0 is the post, so the enhancement also subtracts the T1w input."""

    size_multiple = 4

    def __init__(self, sequences: list[str], use: list[str], seed: int = 0) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.conv = nn.Conv3d(len(sequences), 4, 3, padding=1)
        self.out = nn.Conv3d(4, 1, 1)
        with torch.no_grad():
            for s, name in enumerate(sequences):
                if name not in use:
                    self.conv.weight[:, s] = 0.0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(torch.tanh(self.conv(x)))
