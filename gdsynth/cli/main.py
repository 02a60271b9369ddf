"""The ``gdsynth`` console script: a Typer app whose commands live in one small module each.

Heavy libraries (torch, SimpleITK, lightning) are imported inside the commands, so ``--help`` is
instant. Errors print one line (``--verbose`` for a traceback) and exit non-zero.
"""

from __future__ import annotations

import sys

import typer

from gdsynth import __version__
from gdsynth.cli import (
    demo,
    evaluate,
    explain,
    fit_detector,
    label,
    phantom,
    predict,
    prepare,
    reader_study,
    review,
    runs,
    train,
)
from gdsynth.cli._common import Command, configure_logging, expand_multi_value, report_error

app = typer.Typer(
    name="gdsynth",
    help=(
        "Virtual post-gadolinium T1w synthesis and enhancing MS lesion detection from "
        "pre-contrast MRI (T1w, T2w, FLAIR). Research software, not a medical device."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"gdsynth {__version__}")
        raise typer.Exit()


@app.callback()
def root(
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Debug logs and full tracebacks."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress bars, warnings only."),
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """gdsynth command line."""
    from gdsynth.progress import set_quiet

    set_quiet(quiet)
    configure_logging(verbose, quiet)


app.command("phantom", cls=Command)(phantom.phantom)
app.command("prepare", cls=Command)(prepare.prepare)
app.command("train", cls=Command)(train.train)
app.command("synthesize", cls=Command)(predict.synthesize)
app.command("detect", cls=Command)(predict.detect)
app.command("predict", cls=Command)(predict.predict)
app.command("label", cls=Command)(label.label)
app.command("evaluate", cls=Command)(evaluate.evaluate)
app.command("fit-detector", cls=Command)(fit_detector.fit_detector)
app.command("explain", cls=Command)(explain.explain)
app.command("review", cls=Command)(review.review)
app.command("runs", cls=Command)(runs.runs)
app.add_typer(reader_study.app, name="reader-study")
app.command("demo", cls=Command)(demo.demo)


def _click_exceptions() -> tuple[tuple[type, ...], tuple[type, ...], tuple[type, ...]]:
    """``(Exit, Abort, ClickException)`` classes of click and of the copy of click that newer
    Typer versions bundle (``typer._click``, whose usage errors are not ``click``'s)."""
    import importlib

    modules = []
    for name in ("click.exceptions", "typer._click.exceptions"):
        try:
            modules.append(importlib.import_module(name))
        except ImportError:
            continue
    return tuple(tuple(getattr(m, cls) for m in modules if hasattr(m, cls))
                 for cls in ("Exit", "Abort", "ClickException"))  # type: ignore[return-value]


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point; returns (and exits with) the process exit code."""
    exit_errors, abort_errors, click_errors = _click_exceptions()
    args = expand_multi_value(sys.argv[1:] if argv is None else argv)
    verbose = "--verbose" in args or "-v" in args
    try:
        result = app(args=args, prog_name="gdsynth", standalone_mode=False)
        code = int(result) if isinstance(result, int) else 0
    except exit_errors as exc:
        code = exc.exit_code
    except abort_errors:
        typer.echo("aborted", err=True)
        code = 130
    except click_errors as exc:
        exc.show()
        code = exc.exit_code
    except KeyboardInterrupt:
        typer.echo("interrupted", err=True)
        code = 130
    except Exception as exc:  # noqa: BLE001 - the CLI's one place that turns errors into codes
        code = report_error(exc, verbose)
    if argv is None:
        sys.exit(code)
    return code


if __name__ == "__main__":
    main()
