"""`gdsynth review`: build the static radiologist review site for predictions."""

from __future__ import annotations

from pathlib import Path

import typer


def review(
    pred: Path = typer.Argument(..., help="Prediction folder written by 'gdsynth predict'."),
    bids: Path = typer.Option(..., "--bids", help="Raw BIDS dataset (T1w, T2w, FLAIR, real post-Gd)."),
    out: Path = typer.Option(..., "--out", "-o", metavar="OUT",
                             help="Folder of the review site (index.html)."),
    metrics: Path | None = typer.Option(
        None, "--metrics", help="'gdsynth evaluate' report folder (per_exam.tsv) to show metrics."
    ),
    embed_limit_mb: float = typer.Option(
        48.0, help="Embed an exam's volumes in the page (opens from file://) below this size."
    ),
    threshold: float | None = typer.Option(
        None, help="Initial enhancement-map threshold of the viewer slider (default: automatic)."
    ),
    serve: bool = typer.Option(
        False, "--serve", help="After building, serve OUT on 127.0.0.1 and print its URL "
        "(opens nothing; Ctrl-C stops)."),
    port: int = typer.Option(0, min=0, max=65535, help="Port for --serve (0: a free one)."),
) -> None:
    """Build a self-contained static review site: cohort table, linked NiiVue viewers, mosaics.

    Open OUT/index.html directly from disk (volumes are embedded), or use --serve to view it
    over http://127.0.0.1 (needed when an exam is larger than --embed-limit-mb).
    """
    from gdsynth.cli._common import sweep_output
    from gdsynth.review.site import SiteOptions, build_site

    sweep_output(out)
    index = build_site(
        pred, bids, out, metrics=metrics,
        options=SiteOptions(embed_limit_mb=embed_limit_mb, threshold=threshold),
    )
    typer.echo(str(index))
    if serve:
        from gdsynth.review.serve import serve_forever

        serve_forever(out, port, echo=lambda text: typer.echo(text, err=True))
