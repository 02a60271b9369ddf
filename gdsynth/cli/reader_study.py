"""`gdsynth reader-study create | serve | analyze`: a blinded real-vs-synthetic reader study."""

from __future__ import annotations

import typer

from gdsynth.cli._common import not_implemented

app = typer.Typer(help="Blinded reader study: create, serve, analyze.", no_args_is_help=True)


@app.command("create")
def create() -> None:
    """Create a blinded, randomized study from predictions and real scans."""
    not_implemented("reader-study create", "issue 8")


@app.command("serve")
def serve() -> None:
    """Serve the study to readers on localhost."""
    not_implemented("reader-study serve", "issue 8")


@app.command("analyze")
def analyze() -> None:
    """Analyze readers' answers."""
    not_implemented("reader-study analyze", "issue 8")
