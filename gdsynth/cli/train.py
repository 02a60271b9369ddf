"""`gdsynth train`: Train the pix2pix generator on prepared exams."""

from __future__ import annotations

from gdsynth.cli._common import not_implemented


def train() -> None:
    """Train the pix2pix generator on prepared exams."""
    not_implemented("train", "issue 5")
