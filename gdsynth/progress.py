"""Progress reporting for long steps (rich), silenced by ``--quiet`` or when not on a terminal."""

from __future__ import annotations

import sys
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")

_state = {"quiet": False}


def set_quiet(quiet: bool) -> None:
    """Globally disable (``True``) or enable progress bars; the CLI's ``--quiet`` sets it."""
    _state["quiet"] = bool(quiet)


def is_quiet() -> bool:
    return _state["quiet"]


def track(
    items: Iterable[T], description: str, *, total: int | None = None, enabled: bool | None = None
) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar on stderr (when enabled and not quiet)."""
    show = (not _state["quiet"]) if enabled is None else enabled
    if not show:
        yield from items
        return
    from rich.console import Console
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    console = Console(file=sys.stderr)
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(description, total=total)
        for item in items:
            yield item
            progress.advance(task)
