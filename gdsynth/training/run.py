"""One training run: data module + Pix2PixModule + Trainer, atomic checkpoints, resume, export.

Run folder layout::

    RUN/config.yaml            exact configuration used (``init``: the model it started from)
    RUN/checkpoints/last.ckpt  latest state (atomic), best.ckpt best validation
    RUN/panels/*.png           validation image panels
    RUN/wandb/ | RUN/logs/     tracker files (RUN/logs/version_*/metrics.csv for every tracker
                               but none: losses, learning rates, gradient norms, validation)
    RUN/model/                 exported generator (generator.safetensors + model_card.json)
    RUN/metrics.json           final validation metrics and step count
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gdsynth.data.subjects import TrainingExam
from gdsynth.errors import OutputError, TrainingError
from gdsynth.training.config import TrainConfig, save_config


@dataclass
class TrainResult:
    run_dir: Path
    model_dir: Path | None
    steps: int
    metrics: dict[str, float] = field(default_factory=dict)
    after_export: str = ""


def parse_max_time(value: str | float | None) -> str | dict | None:
    """Lightning ``max_time``: minutes as a number, or ``DD:HH:MM:SS``."""
    if value is None or value == "":
        return None
    try:
        return {"minutes": float(value)}
    except (TypeError, ValueError):
        return str(value)


def make_strategy(name: str):  # -> str | pytorch_lightning.strategies.Strategy
    """``auto`` or ``ddp`` (DistributedDataParallel; gloo on CPU). The D step leaves the
    generator's parameters without gradients, hence ``find_unused_parameters``."""
    from pytorch_lightning.strategies import DDPStrategy

    from gdsynth.errors import ConfigError

    if name == "auto":
        return "auto"
    if name == "ddp":
        return DDPStrategy(find_unused_parameters=True)
    raise ConfigError(None, f"trainer.strategy {name!r} invalid; choose one of auto, ddp")


def trainer_precision(precision: str, accelerator: str) -> str:
    """Lightning's ``precision`` for ``trainer.precision`` (``auto|bf16|fp32``) on the device
    that ``accelerator`` (``auto|cpu|gpu|cuda``) trains on: ``bf16-mixed`` or ``32-true``."""
    import torch

    from gdsynth.runtime import lightning_precision, resolve_precision

    gpu = accelerator in ("gpu", "cuda") or (accelerator == "auto" and torch.cuda.is_available())
    return lightning_precision(resolve_precision(precision, "cuda" if gpu else "cpu"))


def last_checkpoint(run_dir: Path) -> Path:
    return Path(run_dir) / "checkpoints" / "last.ckpt"


def _spacing(exams: Sequence[TrainingExam]) -> float | None:
    from gdsynth.io import read_image
    from gdsynth.training.finetune import grid_spacing

    _, geometry = read_image(exams[0].paths["T1w"], allow_constant=True)
    return grid_spacing(geometry.spacing)


@dataclass(frozen=True)
class RunOptions:
    """How :func:`train_run` runs, beside the recipe (:class:`TrainConfig`).

    ``resume`` continues from last.ckpt exactly; ``val_exams`` replaces the recipe's held-out
    split (``[]``: no validation); ``fast_dev_run`` is Lightning's smoke test; ``export`` writes
    RUN/model; ``progress`` shows one progress line (steps, ETA, losses); third-party tips,
    banners and warnings are hidden unless ``verbose``; ``data_summary`` goes to the model card;
    ``after_export(model_dir, held_out_exam_ids)`` runs after the export (``gdsynth train`` fits
    the lesion stage there) and what it returns is kept in ``TrainResult.after_export``."""

    resume: bool = False
    val_exams: Sequence[TrainingExam] | None = None
    fast_dev_run: bool | int = False
    export: bool = True
    progress: bool = False
    data_summary: dict[str, Any] | None = None
    verbose: bool = False
    after_export: Callable[[Path, list[str]], str] | None = None


def train_run(exams: Sequence[TrainingExam], run_dir: str | Path, config: TrainConfig,
              options: RunOptions = RunOptions()) -> TrainResult:
    """Train on prepared ``exams`` into ``run_dir`` as ``options`` say (:class:`RunOptions`).

    ``trainer.max_steps`` counts training batches (each updates D then G). With
    ``config.init.model`` the generator starts from that model (fine-tuning,
    :mod:`gdsynth.training.finetune`; not when resuming: last.ckpt wins). Raises
    :class:`TrainingError` when asked to resume with nothing to resume, :class:`OutputError`
    when ``run_dir`` already holds a run and ``options.resume`` is false, and
    :class:`ModelError` when the ``init`` model does not fit the recipe or the exams' spacing
    (before ``run_dir`` is written).
    """
    from gdsynth.training.loggers import quiet_libraries

    run_dir = Path(run_dir)
    with quiet_libraries(not options.verbose):
        import pytorch_lightning as pl
        import torch

        from gdsynth.data.module import GdsynthDataModule
        from gdsynth.training.module import Pix2PixModule

        source, config = _init_source(exams, run_dir, config, options.resume)
        _open_run_dir(run_dir, config, options.resume)
        t = config.trainer
        if t.num_threads:
            torch.set_num_threads(t.num_threads)
        pl.seed_everything(t.seed, workers=True, verbose=False)
        dm = GdsynthDataModule(exams=exams, config=config.data, seed=t.seed,
                               val_exams=options.val_exams)
        module = Pix2PixModule(config.to_dict())
        if source is not None:
            from gdsynth.training.finetune import apply_init

            apply_init(module, source)
        logger = _start_logger(config, run_dir, options.verbose)
        trainer = _make_trainer(config, run_dir, logger, bool(dm.val_exams), options)
        metrics = _fit(trainer, module, dm, run_dir, options)
        result = TrainResult(run_dir=run_dir, model_dir=None, steps=trainer.global_step,
                             metrics=metrics)
        if trainer.is_global_zero:
            _finish(result, config, module, dm, options)
            from gdsynth.training.loggers import finish_logger, swallow_stderr

            with swallow_stderr(not options.verbose):
                finish_logger(logger)
        return result


def _init_source(exams: Sequence[TrainingExam], run_dir: Path, config: TrainConfig, resume: bool):
    """The model ``config.init.model`` names, checked against the recipe and the exams' spacing
    before anything is written, and the config recording its weights' SHA-256 (``(None,
    config)`` for a run from scratch, and when resuming: last.ckpt wins)."""
    if not config.init.model or resume and last_checkpoint(run_dir).is_file():
        return None, config
    from dataclasses import replace

    from gdsynth.training.config import InitConfig
    from gdsynth.training.finetune import check_init_compatible, load_init_source

    source = load_init_source(config.init.model, config.init.sha256)
    check_init_compatible(source, config, _spacing(exams) if exams else None)
    return source, replace(config, init=InitConfig(model=config.init.model, sha256=source.sha256))


def _open_run_dir(run_dir: Path, config: TrainConfig, resume: bool) -> None:
    """Check that ``run_dir`` can start (or resume) a run; write its config.yaml."""
    last = last_checkpoint(run_dir)
    if resume and not last.is_file():
        raise TrainingError(last, "nothing to resume: no last.ckpt in this run folder")
    if not resume and last.exists():
        raise OutputError(run_dir, "already holds a training run; use --resume or another -o")
    run_dir.mkdir(parents=True, exist_ok=True)
    save_config(config, run_dir / "config.yaml")


def _start_logger(config: TrainConfig, run_dir: Path, verbose: bool):  # -> list[Logger] | None
    """The recipe's tracker(s), started (W&B prints warnings on stderr when it starts)."""
    from gdsynth.training.loggers import make_logger, swallow_stderr

    with swallow_stderr(not verbose):
        logger = make_logger(config.trainer.tracker, run_dir, name=config.name,
                             config=config.to_dict())
        for one in logger or []:
            if type(one).__name__ == "WandbLogger":
                _ = one.experiment
    return logger


def _make_trainer(config: TrainConfig, run_dir: Path, logger, has_val: bool,
                  options: RunOptions):  # -> pytorch_lightning.Trainer
    """The Lightning trainer: best/last checkpoints (atomic), signals, progress line."""
    import pytorch_lightning as pl
    from pytorch_lightning.callbacks import ModelCheckpoint

    from gdsynth.training.checkpoint import AtomicCheckpointIO
    from gdsynth.training.loggers import training_signals
    from gdsynth.training.progress import step_progress

    t = config.trainer
    ckpt = ModelCheckpoint(
        dirpath=str(run_dir / "checkpoints"), filename="best",
        monitor=config.validation.monitor if has_val else None, mode="min",
        save_top_k=1 if has_val else 0, save_last=True, save_on_train_epoch_end=True,
        enable_version_counter=False,
    )
    return pl.Trainer(
        # one Lightning step per batch: the D step is not counted (Pix2PixModule._uncounted)
        max_steps=t.max_steps, max_epochs=-1, max_time=parse_max_time(t.max_time),
        devices=t.devices, accelerator=t.accelerator, strategy=make_strategy(t.strategy),
        precision=trainer_precision(t.precision, t.accelerator), logger=logger,
        callbacks=[ckpt, training_signals(), *([step_progress()] if options.progress else [])],
        plugins=[AtomicCheckpointIO()], default_root_dir=str(run_dir),
        log_every_n_steps=t.log_every_n_steps, check_val_every_n_epoch=config.validation.every_n_epochs,
        num_sanity_val_steps=0, use_distributed_sampler=False, enable_progress_bar=False,
        enable_model_summary=False, fast_dev_run=options.fast_dev_run,
        limit_val_batches=None if has_val else 0,
    )


def _fit(trainer, module, dm, run_dir: Path, options: RunOptions) -> dict[str, float]:
    """Train (from last.ckpt when resuming); the final validation metrics (``val/...``)."""
    last = last_checkpoint(run_dir)
    trainer.fit(module, datamodule=dm, ckpt_path=str(last) if options.resume else None)
    if (dm.val_exams and not options.fast_dev_run
            and not any(k.startswith("val/") for k in trainer.callback_metrics)):
        trainer.validate(module, datamodule=dm, verbose=False)  # short run: no epoch ended yet
    return {k: float(v) for k, v in trainer.callback_metrics.items()
            if k.startswith("val/") and v.numel() == 1}


def _finish(result: TrainResult, config: TrainConfig, module, dm, options: RunOptions) -> None:
    """On the main process: RUN/metrics.json, then the exported model and ``after_export``."""
    from gdsynth.io import write_json
    from gdsynth.preprocess.domain import reference_from_files
    from gdsynth.training.cohort import label_sources
    from gdsynth.training.export import build_card, export_model
    from gdsynth.training.finetune import init_provenance

    run_dir, steps, metrics = result.run_dir, result.steps, result.metrics
    training = {"data": options.data_summary or {}, "split": dm.summary(), "steps": steps,
                "batch_size": config.data.batch_size, "val_metrics": metrics,
                "nonfinite_steps_skipped": module.nonfinite, "seed": config.trainer.seed,
                "labels": label_sources([*dm.train_exams, *dm.val_exams]),
                "adversarial_weight": config.loss.adversarial_weight}
    if (init := init_provenance(config)) is not None:
        training["init_from"] = init
    write_json(run_dir / "metrics.json", {"steps": steps, "val": metrics})
    if not options.export:
        return
    card = build_card(config, module.generator, spacing_mm=_spacing(dm.train_exams),
                      training=training)
    card.normalization["domain"] = reference_from_files(
        (e.paths for e in dm.train_exams), list(config.data.inputs))
    result.model_dir = export_model(run_dir / "model", module.generator.cpu(), card)
    if options.after_export is not None:
        result.after_export = options.after_export(result.model_dir, [e.id for e in dm.val_exams])
