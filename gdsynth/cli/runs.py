"""`gdsynth runs`: a local experiment dashboard comparing training runs (no account needed)."""

from __future__ import annotations

from pathlib import Path

import typer


def runs(
    run_dirs: list[Path] = typer.Argument(..., metavar="RUN...",
                                          help="Run folders written by 'gdsynth train -o RUN'."),
    out: Path = typer.Option(..., "--out", "-o", metavar="PAGE",
                             help="HTML file to write (self-contained, opens from disk)."),
    serve: bool = typer.Option(
        False, "--serve", help="After writing, serve PAGE's folder on 127.0.0.1 and print its "
        "URL (opens nothing; Ctrl-C stops)."),
    port: int = typer.Option(0, min=0, max=65535, help="Port for --serve (0: a free one)."),
) -> None:
    """Compare training runs on one offline page: loss, learning-rate, gradient-norm and
    validation curves, validation panels over time, configs side by side with their
    differences highlighted, final metrics. Reads config.yaml, logs/*/metrics.csv, panels/ and
    the model card of each run."""
    from gdsynth.errors import OutputError
    from gdsynth.review.runs import build_dashboard

    if out.suffix.lower() not in (".html", ".htm"):
        raise OutputError(out, "the dashboard is one HTML file: give -o PAGE.html")
    if out.is_dir():
        raise OutputError(out, "is a folder; give -o PAGE.html")
    page = build_dashboard(run_dirs, out)
    typer.echo(str(page))
    if serve:
        from gdsynth.review.serve import serve_forever

        serve_forever(page.parent, port, page=page.name,
                      echo=lambda text: typer.echo(text, err=True))
