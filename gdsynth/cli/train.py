"""`gdsynth train`: Train the pix2pix generator on prepared exams."""

from __future__ import annotations

from pathlib import Path

import typer

from gdsynth.cli._common import LABELS_HELP


def train(
    bids: Path = typer.Argument(..., help="BIDS dataset (or cohort table) with post-Gd T1w."),
    output: Path = typer.Option(..., "-o", "--output", metavar="RUN",
                                help="Run folder (checkpoints, logs, model/)."),
    config: Path | None = typer.Option(None, "--config", "-c",
                                       help="YAML recipe (experiments/*.yaml)."),
    max_steps: int | None = typer.Option(None, help="Training batches (each updates D then G)."),
    max_time: str | None = typer.Option(None, help="Wall-clock limit: minutes or DD:HH:MM:SS."),
    devices: int | None = typer.Option(None, help="Number of devices (processes with ddp)."),
    accelerator: str | None = typer.Option(None, help="auto | cpu | gpu."),
    strategy: str | None = typer.Option(None, help="auto | ddp."),
    precision: str | None = typer.Option(
        None, help="auto (bf16 where the CPU/GPU has bf16 units, else fp32) | bf16 | fp32 "
                   "[default: the recipe's trainer.precision, auto]."),
    seed: int | None = typer.Option(None, help="Random seed (split, sampling, init)."),
    tracker: str | None = typer.Option(
        None, help="wandb (offline, no account) | csv | tensorboard (needs 'pip install "
        "tensorboard') | none."),
    resume: bool = typer.Option(False, "--resume", help="Continue RUN exactly from last.ckpt."),
    participant_label: list[str] | None = typer.Option(
        None, "--participant-label", help=LABELS_HELP),
    labels: list[Path] | None = typer.Option(
        None, "--labels", metavar="DERIV",
        help="Derivative folder of enhancing-lesion masks (repeatable; first found wins), e.g. "
             "the output of 'gdsynth label': <prefix>_desc-enhancing_dseg, _desc-enhancing_mask "
             "or _label-enhancing_mask (.nii[.gz]), any grid. Takes precedence over the phantom "
             "truth and the post - pre threshold; the card records each exam's label source."),
    prep_dir: Path | None = typer.Option(
        None, help="Preparation cache (default BIDS/derivatives/gdsynth-prep)."),
    settings: list[str] | None = typer.Option(
        None, "--set", metavar="KEY=VALUE",
        help="Change one recipe field (repeatable; YAML value), e.g. --set loss.l1_weight=0 "
             "--set 'generator.heads=[enhancing]'."),
    no_fit_detector: bool = typer.Option(
        False, "--no-fit-detector",
        help="Skip fitting the lesion stage on the held-out exams after training (the model "
             "then refers every exam until 'gdsynth fit-detector' is run)."),
) -> None:
    """Train the pix2pix generator on prepared exams, then fit its lesion stage on the
    held-out exams (classifier, exam model, refer operating point; figures printed).

    One progress line shows steps, ETA and losses (third-party messages: --verbose). At the end
    it prints where the run is and how to look at it ('gdsynth runs RUN', 'wandb sync ...').
    """
    import logging

    from gdsynth.cli._common import CaseResult, finish_batch, log, sweep_output
    from gdsynth.errors import ConfigError, TrainingError
    from gdsynth.io.bids import discover
    from gdsynth.progress import is_quiet
    from gdsynth.training.cohort import prepare_cohort
    from gdsynth.training.config import apply_overrides, apply_settings, load_config
    from gdsynth.training.loggers import validate_tracker
    from gdsynth.training.run import last_checkpoint, train_run

    if resume and not last_checkpoint(output).is_file():
        raise TrainingError(last_checkpoint(output), "nothing to resume: no last.ckpt in this run folder")
    run_config = output / "config.yaml"
    if config is None and resume and run_config.is_file():
        config = run_config  # resume with the exact configuration of the run
    cfg = apply_settings(load_config(config), settings or [])
    apply_overrides(cfg, **{"trainer.max_steps": max_steps, "trainer.max_time": max_time,
                            "trainer.devices": devices, "trainer.accelerator": accelerator,
                            "trainer.strategy": strategy, "trainer.precision": precision,
                            "trainer.seed": seed, "trainer.tracker": tracker})
    validate_tracker(cfg.trainer.tracker)  # before any exam is prepared or folder written
    exams = discover(bids, participant_label or None)
    sweep_output(output, prep_dir or (bids / "derivatives" / "gdsynth-prep" if bids.is_dir() else None))
    usable = [e for e in exams if e.t1w_gd is not None]
    if len(usable) < len(exams):
        log.warning("%d exam(s) without post-Gd T1w are not used for training",
                    len(exams) - len(usable))
    if not usable:
        raise ConfigError(bids, "no exam with a post-gadolinium T1w (the training target)")
    training, outcomes = prepare_cohort(bids, usable, prep_root=prep_dir, prep_config=cfg.prep,
                                        inputs=cfg.data.inputs, labels=labels or (),
                                        progress=not is_quiet())
    prepared = [CaseResult(o.case, o.status, o.seconds, o.error) for o in outcomes]
    if not training:
        finish_batch(prepared, "prepare")
        raise ConfigError(bids, "no exam could be prepared")
    if any(r.status == "failed" for r in prepared):
        typer.echo(f"prepare: {sum(r.status == 'failed' for r in prepared)} exam(s) failed and "
                   "are not used: " + ", ".join(r.case for r in prepared if r.status == "failed"),
                   err=True)
    verbose = logging.getLogger().isEnabledFor(logging.DEBUG)  # --verbose

    def fit_detector(model_dir: Path, held_out: list[str]) -> str:
        from gdsynth.inference.fit_stage import FitOptions, fit_after_training

        held = [e for e in usable if e.prefix in held_out]
        return fit_after_training(model_dir, held, FitOptions(prep_dir=prep_dir),
                                  bids_root=bids if bids.is_dir() else None)

    result = train_run(training, output, cfg, resume=resume, progress=not is_quiet(),
                       data_summary={"source": str(bids), "n_exams": len(training),
                                     "exams": [e.id for e in training]}, verbose=verbose,
                       after_export=None if no_fit_detector else fit_detector)
    if result.after_export:
        typer.echo(result.after_export, err=True)
    typer.echo(where_to_look(result), err=True)


def where_to_look(result) -> str:  # result: gdsynth.training.run.TrainResult
    """The closing lines of 'gdsynth train': steps, metrics, and where the run is."""
    from gdsynth.training.loggers import wandb_run

    run = result.run_dir
    lines = [f"trained {result.steps} steps in {run}"]
    if result.metrics:
        lines.append("  validation: " + ", ".join(
            f"{k.removeprefix('val/')}={v:.4g}" for k, v in sorted(result.metrics.items())))
    if result.model_dir is not None:
        lines.append(f"  model: {result.model_dir}")
    lines.append(f"  dashboard (offline, no account): gdsynth runs {run} -o {run / 'runs.html'}"
                 " [--serve]")
    offline = wandb_run(run)
    if offline is not None:
        lines.append(f"  W&B (offline run): wandb sync {offline}   # uploads it to your account")
    return "\n".join(lines)
