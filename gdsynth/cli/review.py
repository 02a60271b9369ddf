"""`gdsynth review`: Build the static radiologist review site for predictions."""

from __future__ import annotations

from gdsynth.cli._common import not_implemented


def review() -> None:
    """Build the static radiologist review site for predictions."""
    not_implemented("review", "issue 8")
