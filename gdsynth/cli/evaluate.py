"""`gdsynth evaluate`: Score predictions against reference lesions and images."""

from __future__ import annotations

from gdsynth.cli._common import not_implemented


def evaluate() -> None:
    """Score predictions against reference lesions and images."""
    not_implemented("evaluate", "issue 7")
