"""`gdsynth explain`: Attribute each detected lesion to the input sequences."""

from __future__ import annotations

from gdsynth.cli._common import not_implemented


def explain() -> None:
    """Attribute each detected lesion to the input sequences."""
    not_implemented("explain", "issue 9")
