"""`gdsynth fit-detector`: fit a model's learned lesion stage on held-out exams."""

from __future__ import annotations

from pathlib import Path

import typer

from gdsynth.runtime import DeviceChoice


def fit_detector(
    model: str = typer.Argument(..., metavar="RUN_OR_MODEL",
                                help="Training run folder (its model subfolder is used) or "
                                     "model folder."),
    bids: Path | None = typer.Option(
        None, "--bids", metavar="BIDS", help="BIDS dataset of exams the generator never trained on (default for a "
                             "run: its training dataset, held-out exams only)."),
    participant_label: list[str] | None = typer.Option(
        None, "--participant-label", help="Only these subjects (repeatable)."),
    mc_samples: int = typer.Option(1, "--mc-samples", min=1,
                                   help="MC-dropout samples (use the same with predict)."),
    synthesis: Path | None = typer.Option(
        None, "--synthesis", metavar="DIR", help="Read maps from this 'gdsynth synthesize' output when present."),
    prep_dir: Path | None = typer.Option(
        None, "--prep-dir", metavar="DIR", help="Preparation cache (default BIDS/derivatives/gdsynth-prep)."),
    truth: Path | None = typer.Option(
        None, "--truth", metavar="DIR", help="Reference dseg folder (default BIDS/derivatives/phantom; without "
                              "one, lesions are derived from the real post − pre)."),
    target_sensitivity: float = typer.Option(0.95, min=0.01, max=1.0,
                                             help="Exam sensitivity the refer threshold keeps."),
    classifier: list[str] | None = typer.Option(
        None, "--classifier", help="logistic and/or trees (default: both, the lower "
                                   "out-of-fold log-loss wins)."),
    folds: int = typer.Option(5, min=2, help="Cross-fitting folds (by exam)."),
    device: DeviceChoice = typer.Option(DeviceChoice.auto, "--device", help="auto, cpu or cuda."),
) -> None:
    """Fit the lesion classifier, exam model and operating point of a model on held-out exams.

    Writes lesion_classifier.json (plain JSON) into the model folder and the card's
    lesion_stage, then prints the out-of-fold figures.
    """
    from gdsynth.errors import ConfigError
    from gdsynth.inference.fit_stage import FitOptions, describe, fit_model_stage
    from gdsynth.inference.pipeline import SynthesisSettings
    from gdsynth.io.bids import discover
    from gdsynth.models.card import CARD_NAME, ModelCard

    folder = Path(model)
    held_out: list[str] | None = None
    if (folder / "model" / CARD_NAME).is_file():  # a training run: its held-out exams
        card = ModelCard.load(folder / "model" / CARD_NAME)
        held_out = list(card.training.get("split", {}).get("val_exams", []))
        if bids is None:
            source = card.training.get("data", {}).get("source")
            bids = Path(source) if source else None
        folder = folder / "model"
        if not held_out and not participant_label:
            raise ConfigError(folder, "this run kept no held-out exams; give --bids with exams "
                                      "the generator never trained on")
    if bids is None:
        raise ConfigError(folder, "give --bids: the exams to fit the lesion stage on")
    exams = discover(bids, participant_label or None)
    if held_out and not participant_label:
        exams = [e for e in exams if e.prefix in held_out or e.id in held_out]
    if not exams:
        raise ConfigError(bids, "no exam to fit the lesion stage on")
    options = FitOptions(settings=SynthesisSettings(mc_samples=mc_samples), device=device.value,
                         synthesis_dir=synthesis, prep_dir=prep_dir, truth_dir=truth,
                         target_sensitivity=target_sensitivity,
                         kinds=tuple(classifier or ("logistic", "trees")), folds=folds)
    stage, failed = fit_model_stage(folder, exams, options, bids_root=bids if bids.is_dir() else None)
    typer.echo(describe(stage))
    for line in failed:
        typer.echo(f"skipped: {line}", err=True)
