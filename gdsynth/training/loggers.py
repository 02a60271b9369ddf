"""Experiment trackers. W&B runs OFFLINE by default (files under ``RUN/wandb``, no network, no
account); ``csv`` and ``tensorboard`` are alternatives, ``none`` logs nothing. Every tracker but
``none`` also writes ``RUN/logs/version_*/metrics.csv``, which ``gdsynth runs`` reads.

Also here: :class:`TrainingSignals` (learning rates and gradient norms) and
:func:`quiet_libraries` (third-party tips, warnings and banners hidden unless ``--verbose``).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from gdsynth.errors import ConfigError, parse_choice
from gdsynth.training.config import Tracker


def validate_tracker(tracker: str | Tracker) -> Tracker:
    """The tracker named ``tracker``; a :class:`ConfigError` listing the valid ones, or saying
    which package is missing (tensorboard is not installed with gdsynth)."""
    choice = parse_choice(Tracker, tracker, "tracker")
    if choice is Tracker.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(None, "--tracker tensorboard needs the tensorboard package, which "
                              "gdsynth does not install ('pip install tensorboard'); or use "
                              "wandb (offline, the default), csv or none") from None
    return choice


def make_logger(tracker: str | Tracker, run_dir: Path, *, name: str, config: dict[str, Any]):
    """Lightning loggers for ``tracker`` writing under ``run_dir``: a list (the tracker first,
    then the CSV logger ``gdsynth runs`` reads), or False for ``none``."""
    from pytorch_lightning.loggers import CSVLogger

    choice = validate_tracker(tracker)
    run_dir = Path(run_dir)
    if choice is Tracker.none:
        return False
    csv = CSVLogger(save_dir=str(run_dir), name="logs")
    if choice is Tracker.csv:
        return [csv]
    if choice is Tracker.tensorboard:
        from pytorch_lightning.loggers import TensorBoardLogger

        return [TensorBoardLogger(save_dir=str(run_dir), name="tensorboard"), csv]
    from pytorch_lightning.loggers import WandbLogger

    wandb_dir = run_dir / "wandb"
    wandb_dir.mkdir(parents=True, exist_ok=True)
    os.environ.setdefault("WANDB_MODE", "offline")
    os.environ.setdefault("WANDB_SILENT", "true")
    os.environ.setdefault("WANDB_DISABLE_GIT", "true")
    for var, sub in (("WANDB_DIR", ""), ("WANDB_CACHE_DIR", ".cache"),
                     ("WANDB_CONFIG_DIR", ".config"), ("WANDB_DATA_DIR", ".data")):
        os.environ[var] = str(wandb_dir / sub) if sub else str(run_dir)  # this run owns them
    offline = os.environ.get("WANDB_MODE", "offline") != "online"
    return [WandbLogger(save_dir=str(run_dir), offline=offline, project="gdsynth", name=name,
                        config=config, log_model=False), csv]


def finish_logger(logger: Any) -> None:
    """Flush and close the trackers (W&B writes its summary on finish)."""
    if logger is False or logger is None:
        return
    try:
        from pytorch_lightning.loggers import WandbLogger
    except ImportError:  # pragma: no cover
        return
    for one in logger if isinstance(logger, list) else [logger]:
        if isinstance(one, WandbLogger):
            one.experiment.finish()  # blocks until the offline run file is written


def wandb_run(run_dir: Path) -> Path | None:
    """The newest offline W&B run folder of a run (``RUN/wandb/offline-run-…``), if any."""
    runs = sorted(Path(run_dir).glob("wandb/offline-run-*"))
    return runs[-1] if runs else None


#: Libraries whose INFO logs (tips, accelerator banners) and warnings ``train`` hides.
NOISY_LOGGERS = ("pytorch_lightning", "lightning", "lightning.pytorch", "lightning_fabric",
                 "torchio", "wandb")


@contextlib.contextmanager
def quiet_libraries(enabled: bool = True) -> Iterator[None]:
    """Hide third-party noise for the block: Lightning tips and banners (INFO logs), Python
    warnings raised outside gdsynth (deprecations, Lightning hints), W&B's console messages
    (``WANDB_SILENT`` and its stderr). Nothing changes when ``enabled`` is false (--verbose)."""
    if not enabled:
        yield
        return
    levels = {n: logging.getLogger(n).level for n in NOISY_LOGGERS}
    old_silent = os.environ.get("WANDB_SILENT")
    os.environ["WANDB_SILENT"] = "true"
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore")
            warnings.filterwarnings("default", module="gdsynth")
            for n in NOISY_LOGGERS:
                logging.getLogger(n).setLevel(logging.WARNING)
            yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)
        if old_silent is None:
            os.environ.pop("WANDB_SILENT", None)
        else:
            os.environ["WANDB_SILENT"] = old_silent


@contextlib.contextmanager
def swallow_stderr(enabled: bool = True) -> Iterator[None]:
    """Drop what the block prints on ``sys.stderr`` (W&B's 'wandb: WARNING …' lines)."""
    if not enabled:
        yield
        return
    with contextlib.redirect_stderr(io.StringIO()):
        yield


def grad_norm(optimizer: Any) -> float:
    """L2 norm of the gradients of an optimizer's parameters (0 when there are none)."""
    import torch

    norms = [p.grad.detach().norm(2) for g in optimizer.param_groups for p in g["params"]
             if p.grad is not None]
    return float(torch.linalg.vector_norm(torch.stack(norms), 2)) if norms else 0.0


def training_signals():  # -> pytorch_lightning.Callback
    """A callback logging, before each optimizer step, its learning rate and gradient norm
    (after clipping): ``train/lr_g``, ``train/grad_norm_g`` (generator; ``_d`` for the
    discriminator)."""
    import pytorch_lightning as pl

    class TrainingSignals(pl.Callback):
        def on_before_optimizer_step(self, trainer, pl_module, optimizer) -> None:
            names = ["g", "d"]
            index = next((i for i, o in enumerate(trainer.optimizers) if o is optimizer), 0)
            name = names[index] if index < len(names) else str(index)
            pl_module.log(f"train/lr_{name}", float(optimizer.param_groups[0]["lr"]),
                          on_step=True, on_epoch=False)
            pl_module.log(f"train/grad_norm_{name}", grad_norm(optimizer),
                          on_step=True, on_epoch=False)

    return TrainingSignals()
