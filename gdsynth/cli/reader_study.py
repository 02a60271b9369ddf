"""`gdsynth reader-study create | serve | analyze`: a blinded real-vs-synthetic reader study."""

from __future__ import annotations

from pathlib import Path

import typer

from gdsynth.cli._common import Command

app = typer.Typer(help="Blinded reader study: create, serve, analyze.", no_args_is_help=True)


@app.command("create", cls=Command, context_settings={"allow_extra_args": True})
def create(
    ctx: typer.Context,
    pred: Path = typer.Argument(..., help="Prediction folder written by 'gdsynth predict'."),
    bids: Path = typer.Option(..., "--bids", metavar="BIDS",
                              help="Raw BIDS dataset with real post-Gd scans."),
    out: Path = typer.Option(..., "--out", "-o", help="New study folder."),
    readers: list[str] = typer.Option(
        ["reader1"], "--readers", help="Reader names: --readers alice bob (or repeat the option)."
    ),
    seed: int | None = typer.Option(None, help="Seed of the randomisation (kept in the key)."),
    cases_per_exam: int = typer.Option(
        2, min=1, max=2, help="2: a real and a synthetic case per exam; 1: one of them, balanced over exams."
    ),
    reference: Path | None = typer.Option(
        None, help="Derivative folder with reference _desc-enhancing_dseg maps "
        "(default: BIDS/derivatives/phantom when present) for lesion-level sensitivity."
    ),
    register: bool = typer.Option(
        True, help="Rigidly register each real post-Gd to its T1w (removes a motion cue)."
    ),
    tokens_file: Path | None = typer.Option(
        None, help="Also write the reader tokens to this file (mode 600)."
    ),
) -> None:
    """Create a blinded, randomized study; print each reader's token once."""
    from gdsynth.cli._common import sweep_output
    from gdsynth.io import atomic_write_text
    from gdsynth.review.study import create_study

    sweep_output(out)
    names = [n for item in [*readers, *ctx.args] for n in item.replace(",", " ").split()]
    tokens = create_study(pred, bids, out, readers=names, seed=seed,
                          cases_per_exam=cases_per_exam, reference=reference,
                          register=register)
    lines = [f"{name}\t{token}" for name, token in tokens.items()]
    if tokens_file:
        atomic_write_text(tokens_file, "\n".join(lines) + "\n").chmod(0o600)
    typer.echo(f"study written to {out}; reader tokens (shown once, stored hashed):", err=True)
    for line in lines:
        typer.echo(line)


@app.command("serve", cls=Command)
def serve(
    study: Path = typer.Argument(..., help="Study folder made by 'reader-study create'."),
    host: str = typer.Option("127.0.0.1", help="Interface to bind (default: this machine only)."),
    port: int = typer.Option(8000, help="TCP port."),
) -> None:
    """Serve the study to readers (threaded; answers go to STUDY/answers.sqlite)."""
    from gdsynth.review.server import run_study_server

    if host not in ("127.0.0.1", "localhost", "::1"):
        typer.echo(f"warning: serving on {host}: readers' tokens travel unencrypted", err=True)
    typer.echo(f"reader study at http://{host}:{port}/ (Ctrl-C to stop)", err=True)
    run_study_server(study, host=host, port=port)


@app.command("analyze", cls=Command)
def analyze(
    study: Path = typer.Argument(..., help="Study folder with answers.sqlite and its key."),
    out: Path | None = typer.Option(None, "--out", "-o", help="Output folder (default: STUDY/analysis)."),
    radius_mm: float = typer.Option(5.0, help="A click within this distance finds a lesion."),
) -> None:
    """Accuracy vs chance, kappa, Likert tests, lesion sensitivity; JSON + CSV."""
    from gdsynth.cli._common import sweep_output
    from gdsynth.review.analysis import analyze_study

    sweep_output(out or study / "analysis")
    result = analyze_study(study, out, radius_mm)
    pooled = result["accuracy"]["pooled"]
    typer.echo(
        f"{result['n_answers']} answers; pooled accuracy {pooled['accuracy']:.3f} "
        f"(95% CI {pooled['ci_low']:.3f}-{pooled['ci_high']:.3f}, p={pooled['p_value']:.3g})"
        if pooled["n"] else "no answers yet"
    )
