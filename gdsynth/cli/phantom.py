"""`gdsynth phantom`: Generate a digital MS phantom cohort as a BIDS dataset with ground truth."""

from __future__ import annotations

from enum import Enum
from pathlib import Path

import typer

# The site kinds of gdsynth.phantom.config.SITES (spelled out so --help imports no numpy/scipy;
# tests/phantom/test_sites.py checks the list).
SITE_NAMES = ("siteA", "siteB", "siteC", "site15T", "siteMPRAGE", "siteThick", "site3D",
              "siteAltLesion", "siteAll", "random", "randomAll")


class Resolution(str, Enum):
    """Isotropic T1w/anatomy resolution in mm."""

    one = "1"
    two = "2"


def phantom(
    out: Path = typer.Argument(
        ..., help="Output folder: new, empty, or an earlier phantom of the same seed (resumed)."
    ),
    subjects: int = typer.Option(10, "--subjects", "-n", min=1, help="Number of subjects."),
    seed: int = typer.Option(0, "--seed", min=0, help="Cohort seed (same seed: same files)."),
    resolution: Resolution = typer.Option(
        Resolution.one, "--resolution", help="T1w voxel size in mm (T2w/FLAIR use thick slices)."
    ),
    active_fraction: float = typer.Option(
        0.5, "--active-fraction", min=0.0, max=1.0,
        help="Share of exams with at least one enhancing lesion.",
    ),
    sessions: int = typer.Option(1, "--sessions", min=1, help="Sessions per subject."),
    workers: int = typer.Option(1, "--workers", min=1, help="Parallel worker processes."),
    sites: list[str] = typer.Option(
        None, "--sites",
        help="Sites the cohort mixes, round-robin over subjects (repeat, or comma-separated): "
        + ", ".join(SITE_NAMES) + ". Default siteA, siteB, siteC; 'random'/'randomAll' draw a scanner "
        "(and lesion model) per subject; see docs/phantom-sites.md.",
    ),
) -> None:
    """Generate a digital MS phantom cohort as a BIDS dataset with ground truth."""
    from dataclasses import replace

    from gdsynth.cli._common import finish_batch, sweep_output
    from gdsynth.errors import ConfigError
    from gdsynth.phantom import PhantomConfig
    from gdsynth.phantom.dataset import finish_dataset, iter_subjects, prepare_output

    chosen = tuple(s.strip() for item in (sites or []) for s in item.split(",") if s.strip())
    base = PhantomConfig()
    config = replace(base, resolution=float(resolution.value), active_fraction=active_fraction,
                     sessions=sessions, sites=chosen or base.sites)
    if seed < 0:
        raise ConfigError(None, "--seed must be >= 0")
    sweep_output(out)
    prepare_output(out, seed, config)
    results = list(iter_subjects(out, subjects=subjects, seed=seed, config=config,
                                 workers=workers, progress=True))
    finish_dataset(out, results)
    typer.echo(f"wrote {out}", err=True)
    finish_batch(results, "phantom")
