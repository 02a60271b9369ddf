"""The 2.5D input layout, shared by training patches and inference slices.

A slab ``(C, X, Y, S)`` of ``S = 2k+1`` adjacent axial slices of each of ``C`` sequences is the
input of a 2D network as ``C * S`` channels, sequence-major: channel ``c * S + j`` holds
sequence ``c`` at slice ``z - k + j``. 2D models are the case ``k = 0``.
"""

from __future__ import annotations

from torch import Tensor


def slices_to_channels(slab: Tensor) -> Tensor:
    """``(..., C, X, Y, S) -> (..., C * S, X, Y)``, sequence-major (see the module doc)."""
    *lead, c, x, y, s = slab.shape
    return slab.movedim(-1, -3).reshape(*lead, c * s, x, y)
