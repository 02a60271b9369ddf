"""`gdsynth demo`: Run the whole chain on the embedded phantom."""

from __future__ import annotations

from gdsynth.cli._common import not_implemented


def demo() -> None:
    """Run the whole chain on the embedded phantom."""
    not_implemented("demo", "issue 5")
