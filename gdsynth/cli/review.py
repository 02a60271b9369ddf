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
) -> None:
    """Build a self-contained static review site: cohort table, linked NiiVue viewers, mosaics.

    Open OUT/index.html directly, or serve the folder with 'python -m http.server' when the
    volumes are too large to embed.
    """
    from gdsynth.cli._common import sweep_output
    from gdsynth.review.site import SiteOptions, build_site

    sweep_output(out)
    index = build_site(
        pred, bids, out, metrics=metrics,
        options=SiteOptions(embed_limit_mb=embed_limit_mb, threshold=threshold),
    )
    typer.echo(str(index))
