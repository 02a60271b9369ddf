"""The work of ``gdsynth train`` below the CLI: the run's configuration, the training exams of a
BIDS cohort (prepared, cached), then the run and the fit of its lesion stage.

``gdsynth train`` parses its options, then calls :func:`load_run_config`,
:func:`collect_training_set` and :func:`train_from_set` in that order (so a bad recipe, setting
or tracker fails before any exam is prepared or folder written).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from gdsynth.data.subjects import TrainingExam
from gdsynth.training.config import TrainConfig

#: The CLI's logger (its messages read ``WARNING gdsynth: ...``).
log = logging.getLogger("gdsynth")


def load_run_config(recipe: Path | None, run_dir: Path, *, resume: bool,
                    settings: Sequence[str] = (), overrides: dict[str, Any] | None = None,
                    init_from: str | Path | None = None) -> TrainConfig:
    """The configuration of the run in ``run_dir``: the ``recipe`` YAML (when resuming without
    one: the run's own config.yaml), then ``settings`` (``KEY=VALUE``), then ``overrides``
    (dotted keys; None values are left alone), then ``init_from`` (``init.model``: fine-tune from
    ``phantom`` or a model folder, checked against the recipe here, before any exam is prepared;
    ignored with a warning when resuming: last.ckpt wins). Raises :class:`TrainingError` when
    ``resume`` finds no last.ckpt, :class:`ConfigError` for a bad field or tracker,
    :class:`ModelError` for a source model that does not fit the recipe."""
    from gdsynth.errors import TrainingError
    from gdsynth.training.config import apply_overrides, apply_settings, load_config
    from gdsynth.training.loggers import validate_tracker
    from gdsynth.training.run import last_checkpoint

    if resume and not last_checkpoint(run_dir).is_file():
        raise TrainingError(last_checkpoint(run_dir), "nothing to resume: no last.ckpt in this run folder")
    saved = run_dir / "config.yaml"
    if recipe is None and resume and saved.is_file():
        recipe = saved  # resume with the exact configuration of the run
    cfg = apply_settings(load_config(recipe), list(settings))
    apply_overrides(cfg, **(overrides or {}))
    validate_tracker(cfg.trainer.tracker)  # before any exam is prepared or folder written
    return _with_init(cfg, init_from, resume)


def _with_init(cfg: TrainConfig, init_from: str | Path | None, resume: bool) -> TrainConfig:
    """``cfg`` starting from ``init_from`` (a folder as an absolute path), checked against the
    recipe; when resuming, ``init_from`` is not used (the run continues from last.ckpt)."""
    from gdsynth.models.folder import SHIPPED
    from gdsynth.training.finetune import check_init_compatible, load_init_source

    if resume:
        if init_from is not None:
            log.warning("--resume continues the run from last.ckpt; --init-from %s is not used "
                        "(the run's config keeps init.model=%s)", init_from, cfg.init.model)
        return cfg
    if init_from is not None:
        model = str(init_from) if str(init_from) in SHIPPED else str(Path(init_from).resolve())
        if model != cfg.init.model:
            cfg.init.model, cfg.init.sha256 = model, None  # the recipe's pin was for another model
    if cfg.init.model:
        source = load_init_source(cfg.init.model, cfg.init.sha256)
        check_init_compatible(source, cfg)
        cfg.init.sha256 = source.sha256
    return cfg


@dataclass
class TrainingSet:
    """The exams of ``bids`` a run trains on: ``usable`` (those with a post-Gd T1w),
    ``training`` (the ones prepared), ``outcomes`` (one preparation outcome per usable exam)."""

    bids: Path
    usable: list  # list[gdsynth.io.bids.Exam]
    training: list[TrainingExam]
    outcomes: list  # list[gdsynth.training.cohort.PrepOutcome]


def collect_training_set(bids: Path, run_dir: Path, cfg: TrainConfig, *,
                         participant_labels: Sequence[str] = (), labels: Sequence[Path] = (),
                         prep_dir: Path | None = None, progress: bool = False) -> TrainingSet:
    """Discover the exams of ``bids`` (``participant_labels``: only these subjects), keep those
    with a post-Gd T1w, and prepare them (cached in ``prep_dir``, default
    ``BIDS/derivatives/gdsynth-prep``) with their enhancing-lesion ``labels`` folders. Raises
    :class:`ConfigError` when no exam has a post-Gd T1w."""
    from gdsynth.errors import ConfigError
    from gdsynth.io.atomic import sweep_stale_temps
    from gdsynth.io.bids import discover
    from gdsynth.training import cohort
    from gdsynth.training.finetune import check_init_spacing

    exams = discover(bids, list(participant_labels) or None)
    for folder in (run_dir, prep_dir or (bids / "derivatives" / "gdsynth-prep" if bids.is_dir() else None)):
        if folder is not None:  # temporary files killed processes left there
            sweep_stale_temps(Path(folder))
    usable = [e for e in exams if e.t1w_gd is not None]
    if len(usable) < len(exams):
        log.warning("%d exam(s) without post-Gd T1w are not used for training",
                    len(exams) - len(usable))
    if not usable:
        raise ConfigError(bids, "no exam with a post-gadolinium T1w (the training target)")
    check_init_spacing(cfg, usable[0].path("T1w"))  # fine-tuning: before anything is prepared
    training, outcomes = cohort.prepare_cohort(bids, usable, prep_root=prep_dir,
                                               prep_config=cfg.prep, inputs=cfg.data.inputs,
                                               labels=tuple(labels), progress=progress)
    return TrainingSet(bids=bids, usable=usable, training=training, outcomes=outcomes)


def train_from_set(data: TrainingSet, run_dir: Path, cfg: TrainConfig, *, resume: bool = False,
                   prep_dir: Path | None = None, fit_detector: bool = True,
                   progress: bool = False):  # -> gdsynth.training.run.TrainResult
    """Train on ``data.training`` into ``run_dir`` (third-party messages only at DEBUG level);
    then, unless ``fit_detector`` is false, fit the model's lesion stage on the held-out exams
    (its figures in ``TrainResult.after_export``)."""
    from gdsynth.training.run import RunOptions, train_run

    def fit(model_dir: Path, held_out: list[str]) -> str:
        from gdsynth.inference.fit_stage import FitOptions, fit_after_training

        held = [e for e in data.usable if e.prefix in held_out]
        return fit_after_training(model_dir, held, FitOptions(prep_dir=prep_dir),
                                  bids_root=data.bids if data.bids.is_dir() else None)

    summary = {"source": str(data.bids), "n_exams": len(data.training),
               "exams": [e.id for e in data.training]}
    options = RunOptions(resume=resume, progress=progress, data_summary=summary,
                         verbose=logging.getLogger().isEnabledFor(logging.DEBUG),  # --verbose
                         after_export=fit if fit_detector else None)
    return train_run(data.training, run_dir, cfg, options)
