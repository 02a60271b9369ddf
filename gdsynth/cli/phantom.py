"""`gdsynth phantom`: Generate a digital MS phantom cohort as a BIDS dataset with ground truth."""

from __future__ import annotations

from gdsynth.cli._common import not_implemented


def phantom() -> None:
    """Generate a digital MS phantom cohort as a BIDS dataset with ground truth."""
    not_implemented("phantom", "issue 3")
