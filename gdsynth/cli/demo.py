"""`gdsynth demo`: the whole chain on the embedded digital phantom, with the shipped model.

phantom (held-out site, unseen subjects) → prepare → predict (shipped ``phantom`` model, MC dropout)
→ evaluate against the phantom's ground truth → static review site. Every step is resumable, so a
second run only redoes what is missing. The work is :func:`gdsynth.demo.run_demo`.
"""

from __future__ import annotations

from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Folder for every output."),
    subjects: int = typer.Option(4, "--subjects", "-n", min=1, help="Phantom exams to generate."),
    seed: int = typer.Option(1000, "--seed", help="Phantom seed (the shipped model used seed 0)."),
    site: str = typer.Option("siteC", "--site", help="Phantom site (siteC was not seen in training)."),
    model: str = typer.Option("phantom", "--model", "-m", help="Model folder or 'phantom'."),
    mc_samples: int = typer.Option(3, "--mc-samples", min=1, help="MC-dropout samples."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes for phantom/prepare."),
) -> None:
    """Run the whole chain on the embedded phantom: phantom, prepare, predict, evaluate, review."""
    from gdsynth.cli._common import finish_batch, sweep_output
    from gdsynth.demo import DemoOptions, run_demo

    sweep_output(out)
    options = DemoOptions(out=out, subjects=subjects, seed=seed, site=site, model=model,
                          mc_samples=mc_samples, workers=workers)
    lines = run_demo(options, progress=lambda line: typer.echo(line, err=True),
                     finish_batch=finish_batch)
    typer.echo("\n".join(lines))
