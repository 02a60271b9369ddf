"""Experiment trackers. W&B runs OFFLINE by default (files under ``RUN/wandb``, no network, no
account); ``csv`` and ``tensorboard`` are alternatives, ``none`` logs nothing."""

from __future__ import annotations

import os
from enum import Enum
from pathlib import Path
from typing import Any

from gdsynth.errors import ConfigError
from gdsynth.models.unet import parse_choice


class Tracker(str, Enum):
    wandb = "wandb"
    csv = "csv"
    tensorboard = "tensorboard"
    none = "none"


def make_logger(tracker: str, run_dir: Path, *, name: str, config: dict[str, Any]):
    """A Lightning logger for ``tracker`` writing under ``run_dir`` (False for ``none``)."""
    choice = parse_choice(Tracker, tracker, "tracker")
    run_dir = Path(run_dir)
    if choice is Tracker.none:
        return False
    if choice is Tracker.csv:
        from pytorch_lightning.loggers import CSVLogger

        return CSVLogger(save_dir=str(run_dir), name="logs")
    if choice is Tracker.tensorboard:
        try:
            import tensorboard  # noqa: F401
        except ImportError:
            raise ConfigError(None, "--tracker tensorboard needs 'pip install tensorboard'; "
                              "use wandb (offline) or csv") from None
        from pytorch_lightning.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(run_dir), name="tensorboard")
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
    return WandbLogger(save_dir=str(run_dir), offline=offline, project="gdsynth", name=name,
                       config=config, log_model=False)


def finish_logger(logger: Any) -> None:
    """Flush and close the tracker (W&B writes its summary on finish)."""
    if logger is False or logger is None:
        return
    try:
        from pytorch_lightning.loggers import WandbLogger
    except ImportError:  # pragma: no cover
        return
    if isinstance(logger, WandbLogger):
        logger.experiment.finish()  # blocks until the offline run file is written
