"""`gdsynth prepare`: Register, mask and normalize exams into the cached prepared space."""

from __future__ import annotations

from gdsynth.cli._common import not_implemented


def prepare() -> None:
    """Register, mask and normalize exams into the cached prepared space."""
    not_implemented("prepare", "issue 4")
