"""`gdsynth explain`: attribute each detected lesion to the input sequences, or find the patterns.

For every exam of BIDS with a prediction in PRED (``gdsynth predict``), each lesion's synthetic
enhancement is attributed to T1w/T2w/FLAIR by drop-one-sequence ablation, integrated gradients
and/or layer-wise relevance propagation; OUT (default PRED) gets the lesion tables with ``attr_*``
columns, per-sequence attribution (IG) and relevance (LRP) maps and ``sequence_importance.tsv``.
With ``--patterns``, instead, every lesion's LRP relevance map is aligned on the lesion and the
lesions are clustered (spectral relevance analysis); OUT/patterns/patterns.html shows the clusters.
``--pattern-region context --pattern-align mm`` clusters only what lies beyond the lesion, in a
fixed window: the setting that finds a spurious cue near the lesions (docs/explain.md).
"""

from __future__ import annotations

from pathlib import Path

import typer

from gdsynth.cli._common import LABELS_HELP
from gdsynth.explain.patterns import DEFAULT_SHELL_MM, Alignment, PatternRegion
from gdsynth.runtime import DeviceChoice

_PRED = typer.Argument(..., help="Prediction folder written by 'gdsynth predict'.")
_BIDS = typer.Option(..., "--bids", help="The BIDS dataset (or cohort table) that was predicted.")
_MODEL = typer.Option(..., "--model", "-m", help="The model folder used for the prediction.")
_OUT = typer.Option(None, "--out", "-o", metavar="OUT", help="Output folder (default: PRED).")
_METHOD = typer.Option(["ablation", "ig"], "--method",
                       help="ablation, ig and/or lrp (repeatable).")
_STEPS = typer.Option(16, "--ig-steps", min=2, help="Integrated-gradients steps.")
_LABELS = typer.Option(None, "--participant-label", help=LABELS_HELP)
_DEVICE = typer.Option(DeviceChoice.auto, "--device", help="auto, cpu or cuda.")
_PATTERNS = typer.Option(False, "--patterns",
                         help="Cluster the lesions' LRP relevance maps (SpRAy) and write "
                              "OUT/patterns/patterns.html instead of the attribution tables.")
_CLUSTERS = typer.Option(None, "--clusters", min=1,
                         help="Number of pattern clusters (default: the largest eigengap).")
_PATTERN_IG = typer.Option(0, "--pattern-ig-steps", min=0,
                           help="Also show integrated gradients on the pattern page (steps; 0: no).")
_REGION = typer.Option(PatternRegion.all, "--pattern-region",
                       help="What the clustering compares: all (each lesion's whole aligned map) or "
                            "context (only relevance beyond --pattern-shell-mm of the lesion: what "
                            "outside the lesion drives it).")
_ALIGN = typer.Option(Alignment.lesion, "--pattern-align",
                      help="Window around each lesion: lesion (±max(15 mm, 4 × its radius)) or mm "
                           "(a fixed ±15 mm, so a structure at a fixed distance stays in place).")
_SHELL = typer.Option(DEFAULT_SHELL_MM, "--pattern-shell-mm", min=0.0,
                      help="With --pattern-region context: distance (mm) from the lesion left out.")


def explain(
    pred: Path = _PRED, bids: Path = _BIDS, model: str = _MODEL, out: Path = _OUT,
    method: list[str] = _METHOD, ig_steps: int = _STEPS, participant_label: list[str] = _LABELS,
    device: DeviceChoice = _DEVICE, patterns: bool = _PATTERNS, clusters: int = _CLUSTERS,
    pattern_ig_steps: int = _PATTERN_IG, pattern_region: PatternRegion = _REGION,
    pattern_align: Alignment = _ALIGN, pattern_shell_mm: float = _SHELL,
) -> None:
    """Attribute each detected lesion to the input sequences, or cluster relevance patterns."""
    from gdsynth.cli._common import finish_batch, sweep_output
    from gdsynth.errors import ConfigError
    from gdsynth.explain.attribution import Method
    from gdsynth.explain.folder import explain_folder
    from gdsynth.io.bids import discover

    try:
        methods = [Method(m) for m in method]
    except ValueError:
        raise ConfigError(None, f"--method {method} invalid; choose from "
                          f"{', '.join(m.value for m in Method)}") from None
    if pattern_ig_steps == 1:
        raise ConfigError(None, "--pattern-ig-steps must be 0 (off) or >= 2")
    sweep_output(out or pred)
    exams = discover(bids, participant_label)
    if patterns:
        results = _patterns(pred, bids, exams, model, Path(out or pred) / "patterns",
                            device.value, clusters, pattern_ig_steps, pattern_region,
                            pattern_align, pattern_shell_mm)
        finish_batch(results, "gdsynth explain --patterns")
        return
    results, importance = explain_folder(pred, exams, model, out, device=device.value,
                                         methods=methods, n_steps=ig_steps)
    for row in importance:
        typer.echo(f"{row['method']:>8} {row['sequence']:<6} mean share {row['mean_share']:+.3f} "
                   f"({row['n_lesions']} lesions)", err=True)
    finish_batch(results, "gdsynth explain")


def _patterns(pred: Path, bids: Path, exams, model: str, out: Path, device: str,
              clusters: int | None, ig_steps: int, region: PatternRegion, align: Alignment,
              shell_mm: float):
    from gdsynth.explain.folder import collect_patterns
    from gdsynth.explain.patterns import cluster_patterns
    from gdsynth.review.patterns import write_pattern_page

    found, results, sequences = collect_patterns(pred, exams, model, bids=Path(bids),
                                                 device=device, ig_steps=ig_steps,
                                                 alignment=align)
    groups, info = cluster_patterns(found, n_clusters=clusters, region=region, shell_mm=shell_mm)
    page = write_pattern_page(out, found, groups, sequences, clustering=info,
                              describe=("score", "volume_mm3"))
    for c in groups:
        typer.echo(f"cluster {c.id}: {c.n} lesion(s), truly active {c.n_active}/{c.n_known}",
                   err=True)
    typer.echo(f"pattern page: {page}", err=True)
    return results
