"""One progress display for ``gdsynth train``: steps done / max, elapsed, ETA and the latest
losses and validation metrics on one line (rich, on stderr). Replaces Lightning's per-epoch bar
(which showed "Epoch 4/-2" for step-limited runs)."""

from __future__ import annotations

import sys

#: Metrics shown on the progress line, in order, with their short names.
SHOWN = (("train/loss_g", "loss_g"), ("train/loss_d", "loss_d"), ("train/l1", "l1"),
         ("val/mae_brain", "val mae"), ("val/ssim_brain_2d_slices", "val ssim"))


def metrics_text(metrics: dict) -> str:
    """``loss_g 1.23 · loss_d 0.69 · val mae 0.045`` from Lightning's callback metrics."""
    parts = []
    for key, short in SHOWN:
        value = metrics.get(key)
        if value is None:
            continue
        try:
            parts.append(f"{short} {float(value):.4g}")
        except (TypeError, ValueError):
            continue
    return " · ".join(parts)


def step_progress():  # -> pytorch_lightning.Callback
    """A Lightning callback drawing the progress line on rank 0 (``trainer.max_steps`` batches;
    an open-ended bar when only ``max_time`` limits the run)."""
    import pytorch_lightning as pl

    class StepProgress(pl.Callback):
        def __init__(self) -> None:
            self.progress = None
            self.task = None

        def on_train_start(self, trainer, pl_module) -> None:
            if not trainer.is_global_zero:
                return
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            total = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
            width = None if sys.stderr.isatty() else 160  # a log file gets the whole line
            self.progress = Progress(
                TextColumn("train"), BarColumn(bar_width=16), MofNCompleteColumn(),
                TextColumn("steps ·"), TimeElapsedColumn(), TextColumn("· ETA"),
                TimeRemainingColumn(), TextColumn("· {task.fields[metrics]}"),
                console=Console(file=sys.stderr, width=width), transient=False,
            )
            self.progress.start()
            self.task = self.progress.add_task("train", total=total, metrics="",
                                               completed=trainer.global_step)

        def _update(self, trainer, note: str = "") -> None:
            if self.progress is None:
                return
            text = metrics_text(trainer.callback_metrics)
            self.progress.update(self.task, completed=trainer.global_step,
                                 metrics=f"{text} {note}".strip())

        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            self._update(trainer)

        def on_validation_start(self, trainer, pl_module) -> None:
            self._update(trainer, "(validating…)")

        def on_validation_end(self, trainer, pl_module) -> None:
            self._update(trainer)

        def on_train_end(self, trainer, pl_module) -> None:
            self.close(trainer)

        def on_exception(self, trainer, pl_module, exception) -> None:
            self.close(trainer)

        def close(self, trainer) -> None:
            if self.progress is not None:
                self._update(trainer)
                self.progress.stop()
                self.progress = None

    return StepProgress()
