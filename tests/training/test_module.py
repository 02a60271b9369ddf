"""Pix2PixModule: one step updates both networks, non-finite guard, fast_dev_run, config."""

from __future__ import annotations

import pytest
import pytorch_lightning as pl
import torch

from gdsynth.data.module import GdsynthDataModule
from gdsynth.errors import ConfigError, TrainingError
from gdsynth.training.config import TrainConfig, apply_overrides
from gdsynth.training.module import Pix2PixModule
from gdsynth.training.run import RunOptions, train_run


def _fit(module, cohort, cfg, steps: int) -> pl.Trainer:
    dm = GdsynthDataModule(exams=cohort, config=cfg.data, seed=0)
    trainer = pl.Trainer(max_steps=steps, accelerator="cpu", logger=False,
                         enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, limit_val_batches=0)
    trainer.fit(module, datamodule=dm)
    return trainer


def _params(net: torch.nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in net.parameters()]


def _changed(before, net) -> bool:
    return any(not torch.equal(a, b) for a, b in zip(before, net.parameters(), strict=True))


def test_one_step_changes_both_networks(cohort, tiny):
    module = Pix2PixModule(tiny.to_dict())
    g0, d0 = _params(module.generator), _params(module.discriminator)
    trainer = _fit(module, cohort, tiny, steps=1)
    assert trainer.global_step == 1  # one batch: one D step + one G step, counted once
    assert _changed(g0, module.generator) and _changed(d0, module.discriminator)
    assert module.hparams["config"]["generator"]["features"] == 8  # save_hyperparameters


def test_l1_only_has_no_discriminator(cohort, tiny):
    tiny.loss.adversarial_weight = 0.0
    module = Pix2PixModule(tiny.to_dict())
    assert module.discriminator is None
    g0 = _params(module.generator)
    assert _fit(module, cohort, tiny, steps=1).global_step == 1
    assert _changed(g0, module.generator)


def _nan_l1(module: Pix2PixModule) -> None:
    original = module.generator_loss

    def poisoned(out, batch):
        terms = original(out, batch)
        terms["l1"] = terms["l1"] * float("nan")
        return terms

    module.generator_loss = poisoned


def test_nonfinite_steps_are_skipped_then_stop(cohort, tiny):
    tiny.optim.max_nonfinite = 100
    module = Pix2PixModule(tiny.to_dict())
    _nan_l1(module)
    g0 = _params(module.generator)
    _fit(module, cohort, tiny, steps=3)
    assert module.nonfinite >= 3
    assert not _changed(g0, module.generator)  # every generator step was skipped
    tiny.optim.max_nonfinite = 1
    module = Pix2PixModule(tiny.to_dict())
    _nan_l1(module)
    with pytest.raises(TrainingError, match="non-finite"):
        _fit(module, cohort, tiny, steps=5)


def test_fast_dev_run(cohort, tiny, tmp_path):
    result = train_run(cohort, tmp_path / "run", tiny,
                       RunOptions(fast_dev_run=True, export=False))
    assert result.steps == 1
    assert (tmp_path / "run" / "config.yaml").is_file()


def test_config_errors_and_overrides(tiny):
    with pytest.raises(ConfigError, match="valid: .*max_steps"):
        TrainConfig.from_dict({"trainer": {"max_stepz": 3}})
    with pytest.raises(ConfigError, match="residual needs T1w"):
        TrainConfig.from_dict({"data": {"inputs": ["FLAIR"]}})
    apply_overrides(tiny, **{"trainer.max_steps": 7, "trainer.seed": None})
    assert tiny.trainer.max_steps == 7 and tiny.trainer.seed == 0
    with pytest.raises(ConfigError, match="heads"):
        Pix2PixModule(TrainConfig.from_dict({"generator": {"heads": ["oedema"]}}).to_dict())


def test_bad_strategy_and_tracker_list_choices(tmp_path):
    from gdsynth.training.loggers import make_logger
    from gdsynth.training.run import make_strategy, parse_max_time

    with pytest.raises(ConfigError, match="auto, ddp"):
        make_strategy("fsdp")
    with pytest.raises(ConfigError, match="wandb, csv, tensorboard, none"):
        make_logger("mlflow", tmp_path, name="x", config={})
    assert make_logger("none", tmp_path, name="x", config={}) is False
    assert parse_max_time("30") == {"minutes": 30.0}
    assert parse_max_time("00:01:00:00") == "00:01:00:00"


@pytest.mark.parametrize("mode", ["2d", "3d"])
def test_other_modes_train_validate_and_export(cohort, tiny, tmp_path, mode):
    from gdsynth.models.folder import load_model_folder

    tiny.data.mode = mode
    tiny.trainer.max_steps = 2
    result = train_run(cohort, tmp_path / mode, tiny)
    generator, card = load_model_folder(result.model_dir)
    assert card.mode == mode and card.context_slices == 0 and card.in_channels == 3
    assert generator.spatial_dims == (3 if mode == "3d" else 2)
    assert "val/mae_brain" in result.metrics


def test_set_key_value_settings(tiny):
    from gdsynth.training.config import apply_settings

    cfg = apply_settings(tiny, ["loss.l1_weight=0", "generator.heads=[enhancing]",
                                "data.augment.flip_p=0.25", "data.mode=2d", "data.context_slices=0"])
    assert cfg.loss.l1_weight == 0 and cfg.generator.heads == ["enhancing"]
    assert cfg.data.augment.flip_p == 0.25 and cfg.data.mode == "2d"
    assert tiny.loss.l1_weight != 0  # the input config is left as it was
    for bad, match in [("loss.l1_wieght=0", "unknown field loss.l1_wieght"),
                       ("loss", "KEY=VALUE"), ("trainer.max_steps.x=1", "not a section"),
                       ("trainer.max_steps=[1", "not valid YAML"),
                       ("trainer.max_steps=many", "max_steps")]:
        with pytest.raises(ConfigError, match=match):
            apply_settings(tiny, [bad])


def test_max_steps_counts_training_batches_exactly(cohort, tiny):
    """With two optimizers Lightning used to count each optimizer step (max_steps=20 stopped
    after 10 batches unless doubled); now one batch is one step, D and G both updated."""
    module = Pix2PixModule(tiny.to_dict())
    calls = {"n": 0}
    original = module.training_step

    def counting(batch, batch_idx):
        calls["n"] += 1
        return original(batch, batch_idx)

    module.training_step = counting
    trainer = _fit(module, cohort, tiny, steps=3)
    assert calls["n"] == 3 and trainer.global_step == 3 and module.batches_seen == 3
    state = trainer.optimizers[1].state_dict()["state"]  # D's Adam: one update per batch
    assert int(next(iter(state.values()))["step"]) == 3
