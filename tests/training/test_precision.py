"""trainer.precision (auto | bf16 | fp32) and channels-last reach the training step."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from gdsynth.data.module import GdsynthDataModule
from gdsynth.errors import ConfigError
from gdsynth.runtime import cpu_has_bf16
from gdsynth.training.config import TrainConfig, apply_settings
from gdsynth.training.module import Pix2PixModule
from gdsynth.training.run import trainer_precision
from tests.inference.test_precision import needs_bf16


def test_precision_key_is_validated(tiny):
    assert TrainConfig().trainer.precision == "auto"
    assert apply_settings(tiny, ["trainer.precision=bf16"]).trainer.precision == "bf16"
    with pytest.raises(ConfigError, match="trainer.precision 'fp16' invalid; choose one of auto"):
        apply_settings(tiny, ["trainer.precision=fp16"])


def test_trainer_precision():
    assert trainer_precision("bf16", "cpu") == "bf16-mixed"
    assert trainer_precision("32-true", "cpu") == "32-true"  # run folders written before
    assert trainer_precision("auto", "cpu") == ("bf16-mixed" if cpu_has_bf16() else "32-true")


@needs_bf16
def test_bf16_step_runs_in_autocast_channels_last_with_float32_losses(cohort, tiny):
    module = Pix2PixModule(tiny.to_dict())
    seen = {}

    def hook(m, args, out):
        seen.setdefault("in", args[0])
        seen.setdefault("out", out)

    module.generator.register_forward_hook(hook)
    dm = GdsynthDataModule(exams=cohort, config=tiny.data, seed=0)
    trainer = pl.Trainer(max_steps=2, accelerator="cpu", precision=trainer_precision("bf16", "cpu"),
                         logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    assert seen["out"].dtype == torch.bfloat16  # autocast active in the manual-optimization step
    assert seen["in"].is_contiguous(memory_format=torch.channels_last)
    assert all(p.dtype == torch.float32 for p in module.parameters())  # master weights fp32
    assert module.generator.stem[0].weight.is_contiguous(memory_format=torch.channels_last)
    logged = trainer.callback_metrics
    assert all(torch.isfinite(logged[k]) and logged[k].dtype == torch.float32
               for k in ("train/loss_g", "train/loss_d", "train/l1"))
