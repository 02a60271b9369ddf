"""`gdsynth label`: annotate the enhancing lesions of a Gd cohort from its real post-Gd T1w.

Thin entry point; the work is in :mod:`gdsynth.inference.label`.
"""

from __future__ import annotations

from pathlib import Path

import typer

_BIDS = typer.Argument(..., help="BIDS dataset folder or cohort table (TSV/CSV) with post-Gd T1w.",
                       show_default=False)
_OUT = typer.Option(..., "--out", "-o", metavar="OUT", help="Output derivative folder.")
_LABELS = typer.Option(None, "--participant-label", help="Only these subjects (repeatable).")
_PREP = typer.Option(
    None, "--prep", metavar="DIR",
    help="Preparation cache, read and written [default: reuse BIDS/derivatives/gdsynth-prep "
         "(e.g. from 'gdsynth prepare') when it holds the exam prepared with its post-Gd, "
         "without writing to it].")
_SPACING = typer.Option(None, "--spacing", min=0.1,
                        help="Isotropic voxel size in mm of the preparation (default: keep T1w).")
_WORKERS = typer.Option(0, "--workers", min=0, help="Threads preparing upcoming exams.")
_SHARD = typer.Option(None, "--shard", help="I/N: process only exams k with k mod N == I.")
_OVERWRITE = typer.Option(False, "--overwrite", help="Redo exams that are already complete.")
_SET = typer.Option(None, "--set", metavar="KEY=VALUE",
                    help="Override a difference-module parameter (repeatable; JSON value), e.g. "
                         "--set min_flair_ratio=1.1.")


def label(
    bids: Path = _BIDS, out: Path = _OUT, participant_label: list[str] = _LABELS,
    prep: Path = _PREP, spacing: float = _SPACING, workers: int = _WORKERS, shard: str = _SHARD,
    overwrite: bool = _OVERWRITE, set_: list[str] = _SET,
) -> None:
    """Label enhancing lesions from the real post-Gd T1w (registered post - pre) of each exam."""
    import json

    from gdsynth.cli._common import finish_batch, sweep_output
    from gdsynth.detection import real_post_params
    from gdsynth.errors import ConfigError
    from gdsynth.inference.cohort import parse_shard
    from gdsynth.inference.label import LabelConfig, label_cohort
    from gdsynth.io.bids import discover

    overrides = {}
    for item in set_ or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(None, f"--set {item!r}: expected KEY=VALUE")
        try:
            overrides[key.strip()] = json.loads(value)
        except ValueError:
            raise ConfigError(None, f"--set {item!r}: value is not JSON") from None
    params = real_post_params(**overrides)
    exams = discover(bids, participant_label)
    write_prep = prep is not None
    if prep is None:
        default = (bids if bids.is_dir() else bids.parent) / "derivatives" / "gdsynth-prep"
        prep = default if default.is_dir() else None
    config = LabelConfig(out=out, params=params, prep_root=prep, write_prep=write_prep,
                         spacing=spacing, overwrite=overwrite, shard=parse_shard(shard),
                         workers=workers)
    sweep_output(out, prep if write_prep else None)
    results = label_cohort(exams, config, bids_root=bids)
    for r in results:
        if r.status == "skipped" and r.error:
            typer.echo(f"  skipped {r.case}: {r.error}", err=True)
    finish_batch(results, "gdsynth label")
