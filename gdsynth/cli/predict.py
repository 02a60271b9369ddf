"""`gdsynth synthesize | detect | predict`: virtual post-Gd T1w and enhancing lesion detection."""

from __future__ import annotations

from gdsynth.cli._common import not_implemented


def synthesize() -> None:
    """Synthesize virtual post-gadolinium T1w (and MC-dropout uncertainty) for a cohort."""
    not_implemented("synthesize", "issue 6")


def detect() -> None:
    """Detect enhancing lesions from synthesized enhancement maps."""
    not_implemented("detect", "issue 6")


def predict() -> None:
    """Synthesize then detect, for a cohort or one exam."""
    not_implemented("predict", "issue 6")
