"""Helpers shared by the CLI commands: error handling, batch summaries, option types."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Sequence

import typer
from typer.core import TyperCommand

from gdsynth.batch import CaseResult
from gdsynth.errors import GdsynthError, NotImplementedCommandError

log = logging.getLogger("gdsynth")


class Command(TyperCommand):
    """Every gdsynth command: positional arguments are shown under one upper-case name.

    Typer prints a required argument ``out`` as ``{out}`` in the usage line and ``out`` in the
    argument list, which reads like an unrendered template and does not match the names the help
    texts use (``OUT/index.html``, ``BIDS/derivatives/...``). Here an argument's metavar defaults
    to its name in upper case (``metavar=`` still wins), and the usage line follows the usual
    convention: ``OUT`` when required, ``[BIDS]`` when optional, ``...`` when repeated.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if param.param_type_name == "argument" and param.metavar is None:
                param.metavar = param.name.upper()

    def collect_usage_pieces(self, ctx: typer.Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for param in self.get_params(ctx):
            if param.param_type_name == "argument":
                name = param.metavar or param.name.upper()
                name = name if param.required else f"[{name}]"
                pieces.append(name + ("..." if param.nargs != 1 else ""))
            else:
                pieces.extend(param.get_usage_pieces(ctx))
        return pieces


LABELS_HELP = ("Only these subjects: --participant-label 01 02 (BIDS-Apps form) or the flag "
               "repeated; 'sub-' optional.")

#: Options that take several values in the BIDS-Apps form (``--participant-label 01 02``).
MULTI_VALUE_OPTIONS = ("--participant-label",)
_LABEL = re.compile(r"^(sub-)?[A-Za-z0-9]+$")


def expand_multi_value(args: Sequence[str]) -> list[str]:
    """``--participant-label 01 02 sub-03`` → ``--participant-label 01 --participant-label 02
    --participant-label sub-03`` (the BIDS-Apps form of fMRIPrep and MRIQC, which click options
    cannot take). Values are read up to the next option, or the first token that is not a label
    (``(sub-)?alphanumeric``) or is an existing path (a positional ``BIDS`` folder after the
    labels); ``--`` ends the expansion."""
    import os

    out: list[str] = []
    i = 0
    while i < len(args):
        arg = args[i]
        out.append(arg)
        i += 1
        if arg == "--":
            out += args[i:]
            break
        if arg not in MULTI_VALUE_OPTIONS or i >= len(args):
            continue
        out.append(args[i])  # the first value, whatever it is (click reports a missing one)
        i += 1
        while i < len(args) and _LABEL.match(args[i]) and not os.path.exists(args[i]):
            out += [arg, args[i]]
            i += 1
    return out


def not_implemented(command: str, issue: str) -> None:
    """Raise the error for a command that exists in the interface but is not built yet."""
    raise NotImplementedCommandError(
        None, f"'gdsynth {command}' is not implemented yet (tracked in {issue})"
    )


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


def sweep_output(*folders: object) -> None:
    """Before a command writes into ``folders``: remove the temporary files that killed gdsynth
    processes left there, once they are an hour old (:func:`gdsynth.io.atomic.sweep_stale_temps`;
    a file another running process is writing is recent, so it stays). None entries are skipped."""
    from pathlib import Path

    from gdsynth.io.atomic import sweep_stale_temps

    for folder in folders:
        if folder is not None:
            sweep_stale_temps(Path(str(folder)))


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


__all__ = ["CaseResult", "Command", "GdsynthError", "configure_logging", "finish_batch", "not_implemented",
           "sweep_output"]
