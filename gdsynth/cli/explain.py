"""`gdsynth explain`: attribute each detected lesion to the input sequences.

For every exam of BIDS with a prediction in PRED (``gdsynth predict``), each lesion's synthetic
enhancement is attributed to T1w/T2w/FLAIR by drop-one-sequence ablation and integrated gradients;
OUT (default PRED) gets the lesion tables with ``attr_*`` columns, per-sequence attribution maps
and ``sequence_importance.tsv``.
"""

from __future__ import annotations

from pathlib import Path

import typer

from gdsynth.cli._common import LABELS_HELP
from gdsynth.runtime import DeviceChoice

_PRED = typer.Argument(..., help="Prediction folder written by 'gdsynth predict'.")
_BIDS = typer.Option(..., "--bids", help="The BIDS dataset (or cohort table) that was predicted.")
_MODEL = typer.Option(..., "--model", "-m", help="The model folder used for the prediction.")
_OUT = typer.Option(None, "--out", "-o", metavar="OUT", help="Output folder (default: PRED).")
_METHOD = typer.Option(["ablation", "ig"], "--method", help="ablation and/or ig (repeatable).")
_STEPS = typer.Option(16, "--ig-steps", min=2, help="Integrated-gradients steps.")
_LABELS = typer.Option(None, "--participant-label", help=LABELS_HELP)
_DEVICE = typer.Option(DeviceChoice.auto, "--device", help="auto, cpu or cuda.")


def explain(
    pred: Path = _PRED, bids: Path = _BIDS, model: str = _MODEL, out: Path = _OUT,
    method: list[str] = _METHOD, ig_steps: int = _STEPS, participant_label: list[str] = _LABELS,
    device: DeviceChoice = _DEVICE,
) -> None:
    """Attribute each detected lesion to the input sequences (ablation, integrated gradients)."""
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
    sweep_output(out or pred)
    results, importance = explain_folder(pred, discover(bids, participant_label), model, out,
                                         device=device.value, methods=methods, n_steps=ig_steps)
    for row in importance:
        typer.echo(f"{row['method']:>8} {row['sequence']:<6} mean share {row['mean_share']:+.3f} "
                   f"({row['n_lesions']} lesions)", err=True)
    finish_batch(results, "gdsynth explain")
