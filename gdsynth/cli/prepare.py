"""`gdsynth prepare`: Register, mask and normalize exams into the cached prepared space."""

from __future__ import annotations

from pathlib import Path

import typer

from gdsynth.cli._common import LABELS_HELP


def prepare(
    bids: Path = typer.Argument(..., help="BIDS dataset folder (or a cohort TSV/CSV table)."),
    out: Path = typer.Option(
        None, "--out", help="Derivative folder (default: BIDS/derivatives/gdsynth-prep)."
    ),
    participant_label: list[str] = typer.Option(
        None, "--participant-label", help=LABELS_HELP
    ),
    workers: int = typer.Option(1, "--workers", min=1, help="Parallel worker processes."),
    spacing: float = typer.Option(
        None, "--spacing", min=0.1, help="Isotropic output voxel size in mm (default: keep T1w)."
    ),
    n4: bool = typer.Option(True, "--n4/--no-n4", help="N4 bias-field correction."),
    sequences: list[str] = typer.Option(
        None, "--sequence", help="Pre-contrast sequences required (repeat; default every input of the sequence "
                                 "registry: T1w T2w FLAIR)."
    ),
    force: bool = typer.Option(False, "--force", help="Recompute even complete exams."),
) -> None:
    """Register, mask and normalize exams into the cached prepared space."""
    from gdsynth.cli._common import finish_batch, sweep_output
    from gdsynth.errors import OutputError
    from gdsynth.io.bids import discover
    from gdsynth.io.sequences import input_names
    from gdsynth.preprocess import PrepConfig, prepare_cohort_to_folder

    exams = discover(bids, participant_label or None)
    root = bids if bids.is_dir() else bids.parent
    out_root = out if out is not None else root / "derivatives" / "gdsynth-prep"
    if out_root.resolve() == root.resolve():
        raise OutputError(out_root, "output folder must not be the input dataset itself")
    config = PrepConfig(spacing=spacing, n4=n4, sequences=tuple(sequences or input_names()))
    sweep_output(out_root)
    results = prepare_cohort_to_folder(exams, out_root, config, workers=workers, force=force)
    typer.echo(f"prepared space written to {out_root}", err=True)
    finish_batch(results, "prepare")
