"""Helpers shared by the CLI commands: error handling, batch summaries, option types."""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass

import typer

from gdsynth.errors import GdsynthError, NotImplementedCommandError

log = logging.getLogger("gdsynth")


def not_implemented(command: str, issue: str) -> None:
    """Raise the error for a command that exists in the interface but is not built yet."""
    raise NotImplementedCommandError(
        None, f"'gdsynth {command}' is not implemented yet (tracked in {issue})"
    )


@dataclass
class CaseResult:
    """Outcome of one case in a batch command."""

    case: str
    status: str  # "done", "skipped", "failed"
    seconds: float = 0.0
    error: str = ""


def finish_batch(results: Sequence[CaseResult], what: str) -> None:
    """Print a batch summary; exit with code 1 if any case failed."""
    failed = [r for r in results if r.status == "failed"]
    done = sum(r.status == "done" for r in results)
    skipped = sum(r.status == "skipped" for r in results)
    typer.echo(
        f"{what}: {done} done, {skipped} skipped (already complete), {len(failed)} failed",
        err=True,
    )
    for r in failed:
        typer.echo(f"  failed {r.case}: {r.error}", err=True)
    if failed:
        raise typer.Exit(code=1)


def configure_logging(verbose: bool, quiet: bool) -> None:
    level = logging.DEBUG if verbose else logging.WARNING if quiet else logging.INFO
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )
    for noisy in ("lightning", "pytorch_lightning", "lightning.pytorch", "torchio", "wandb"):
        logging.getLogger(noisy).setLevel(logging.WARNING if not verbose else logging.INFO)


def report_error(exc: BaseException, verbose: bool) -> int:
    """Print one line for a known error (a traceback only with --verbose); return the exit code."""
    if verbose:
        import traceback

        traceback.print_exception(exc)
    if isinstance(exc, GdsynthError):
        typer.echo(f"error: {exc}", err=True)
        return 2
    typer.echo(f"error: {type(exc).__name__}: {exc}", err=True)
    return 1


__all__ = ["CaseResult", "GdsynthError", "configure_logging", "finish_batch", "not_implemented"]
