"""`gdsynth train`: Train the pix2pix generator on prepared exams."""

from __future__ import annotations

from pathlib import Path

import typer

from gdsynth.cli._common import LABELS_HELP

BIDS_HELP = (
    "BIDS dataset(s) or cohort table(s); several are trained together (exam ids become "
    "<dataset>:sub-X). Exams with a post-Gd T1w train the synthesis (and the enhancing head); "
    "with the 'lesions' head in the recipe, exams without one are mask-only exams that train "
    "only that head and need an all-lesion mask (--labels or the phantom truth; else an error "
    "naming the exam)."
)
TRAIN_LABELS_HELP = (
    "Derivative folder of lesion masks (repeatable; first found wins), any grid (resampled by "
    "world coordinates), .nii[.gz]. Enhancing lesions (e.g. the output of 'gdsynth label'): "
    "<prefix>_desc-enhancing_dseg, _desc-enhancing_mask or _label-enhancing_mask. All lesions "
    "(the 'lesions' head; mask-only exams): <prefix>_desc-lesions_mask, _desc-lesions_dseg, "
    "_label-lesions_mask or _label-L_desc-all_mask. Takes precedence over the phantom truth and "
    "derived labels (post - pre threshold, FLAIR); a folder inside one of the datasets applies "
    "to that dataset only. The card records each exam's label sources."
)


def train(
    bids: list[Path] = typer.Argument(..., metavar="BIDS", help=BIDS_HELP),
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
        help=TRAIN_LABELS_HELP),
    prep_dir: Path | None = typer.Option(
        None, help="Preparation cache (default BIDS/derivatives/gdsynth-prep; with several "
                   "datasets PREP_DIR/<dataset>)."),
    settings: list[str] | None = typer.Option(
        None, "--set", metavar="KEY=VALUE",
        help="Change one recipe field (repeatable; YAML value), e.g. --set loss.l1_weight=0 "
             "--set 'generator.heads=[enhancing]'."),
    init_from: str | None = typer.Option(
        None, "--init-from", metavar="MODEL",
        help="Fine-tune: start the generator from 'phantom' (the shipped model) or a model "
             "folder exported by 'gdsynth train'. Its inputs, architecture and spacing must "
             "match the recipe (e.g. experiments/phantom.yaml for 'phantom'); the discriminator "
             "starts fresh (unless the folder has a discriminator.safetensors). The run's config and card record the model and its weights' "
             "SHA-256. With --resume, last.ckpt wins and this is not used."),
    no_fit_detector: bool = typer.Option(
        False, "--no-fit-detector",
        help="Skip fitting the lesion stage on the held-out exams after training (the model "
             "then refers every exam until 'gdsynth fit-detector' is run)."),
) -> None:
    """Train the pix2pix generator on prepared exams, then fit its lesion stage on the
    held-out exams (classifier, exam model, refer operating point; figures printed).

    Several datasets may be mixed: exams with a post-Gd T1w and, for a recipe with the
    'lesions' head, mask-only exams (a lesion mask, no contrast) that train that head only;
    each loss applies where its target exists, and validation uses exams with a post-Gd T1w.

    One progress line shows steps, ETA and losses (third-party messages: --verbose). At the end
    it prints where the run is and how to look at it ('gdsynth runs RUN', 'wandb sync ...').
    """
    from gdsynth.progress import is_quiet
    from gdsynth.training.launch import collect_training_set, load_run_config, train_from_set

    cfg = load_run_config(config, output, resume=resume, settings=settings or [], overrides={
        "trainer.max_steps": max_steps, "trainer.max_time": max_time, "trainer.devices": devices,
        "trainer.accelerator": accelerator, "trainer.strategy": strategy,
        "trainer.precision": precision, "trainer.seed": seed, "trainer.tracker": tracker},
        init_from=init_from)
    data = collect_training_set(bids, output, cfg, participant_labels=participant_label or (),
                                labels=labels or (), prep_dir=prep_dir, progress=not is_quiet())
    _report_preparation(data)
    result = train_from_set(data, output, cfg, resume=resume, prep_dir=prep_dir,
                            fit_detector=not no_fit_detector, progress=not is_quiet())
    if result.after_export:
        typer.echo(result.after_export, err=True)
    typer.echo(where_to_look(result), err=True)


def _report_preparation(data) -> None:  # data: gdsynth.training.launch.TrainingSet
    """Name the exams that failed preparation; stop (exit 1 after the batch summary, or a
    ConfigError) when none could be prepared. A mixed run (several datasets or mask-only
    exams) says how many exams of each kind it trains on."""
    from gdsynth.cli._common import CaseResult, finish_batch
    from gdsynth.errors import ConfigError

    prepared = [CaseResult(o.case, o.status, o.seconds, o.error) for o in data.outcomes]
    if not data.training:
        finish_batch(prepared, "prepare")
        raise ConfigError(data.bids, "no exam could be prepared")
    counts = data.summary()
    if len(data.datasets) > 1 or counts["n_mask_only"]:
        typer.echo(f"training on {counts['n_with_target']} exam(s) with a post-Gd T1w and "
                   f"{counts['n_mask_only']} mask-only exam(s) (lesions head only), from "
                   f"{len(data.datasets)} dataset(s): " + ", ".join(
                       f"{d.name or d.path} ({len(d.with_target)} post-Gd, "
                       f"{len(d.mask_only)} mask-only)"
                       for d in data.datasets), err=True)
    if any(r.status == "failed" for r in prepared):
        typer.echo(f"prepare: {sum(r.status == 'failed' for r in prepared)} exam(s) failed and "
                   "are not used: " + ", ".join(r.case for r in prepared if r.status == "failed"),
                   err=True)


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
