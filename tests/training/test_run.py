"""Runs: exact resume, atomic checkpoints, export round trip, wandb offline files, CLI errors."""

from __future__ import annotations

import json
import time

import pytest
import torch

from gdsynth.errors import OutputError, TrainingError
from gdsynth.models.folder import load_model_folder
from gdsynth.training.checkpoint import AtomicCheckpointIO
from gdsynth.training.run import RunOptions, train_run


def _state(model_dir):
    generator, card = load_model_folder(model_dir)
    return generator.state_dict(), card


def test_resume_reproduces_uninterrupted_run(cohort, tiny, tmp_path):
    tiny.trainer.max_steps = 4  # 2 epochs of 2 batches (2 training exams x 4 patches / 4)
    straight = train_run(cohort, tmp_path / "a", tiny)
    tiny.trainer.max_steps = 2
    train_run(cohort, tmp_path / "b", tiny)
    assert (tmp_path / "b" / "checkpoints" / "last.ckpt").is_file()
    tiny.trainer.max_steps = 4
    resumed = train_run(cohort, tmp_path / "b", tiny, RunOptions(resume=True))
    assert straight.steps == resumed.steps == 4
    a, _ = _state(straight.model_dir)
    b, card = _state(resumed.model_dir)
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0, atol=0, msg=key)
    assert card.training["steps"] == 4
    with pytest.raises(OutputError, match="--resume"):
        train_run(cohort, tmp_path / "b", tiny)


def test_resume_without_checkpoint_is_clear(cohort, tiny, tmp_path):
    with pytest.raises(TrainingError, match="nothing to resume"):
        train_run(cohort, tmp_path / "empty", tiny, RunOptions(resume=True))


def test_export_round_trip_gives_identical_outputs(cohort, tiny, tmp_path):
    result = train_run(cohort, tmp_path / "run", tiny)
    generator, card = load_model_folder(result.model_dir)
    assert card.inputs == ["T1w", "T2w", "FLAIR"] and card.mode == "2.5d"
    assert card.context_slices == 1 and card.residual and card.spacing_mm == 2.0
    assert card.in_channels == 9 and card.architecture["name"] == "unet"
    assert card.training["steps"] == 4 and "val/mae_brain" in card.training["val_metrics"]
    ckpt = torch.load(tmp_path / "run" / "checkpoints" / "last.ckpt", weights_only=False)
    from gdsynth.training.module import Pix2PixModule

    module = Pix2PixModule(ckpt["hyper_parameters"]["config"])
    module.load_state_dict(ckpt["state_dict"])
    module.generator.eval()
    x = torch.randn(2, 9, 32, 32)
    with torch.no_grad():
        torch.testing.assert_close(generator(x), module.generator(x), rtol=0, atol=0)
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert metrics["steps"] == 4 and (tmp_path / "run" / "panels").is_dir()


def test_checkpoint_io_is_atomic(tmp_path, monkeypatch):
    io = AtomicCheckpointIO()
    target = tmp_path / "last.ckpt"
    io.save_checkpoint({"a": torch.ones(2)}, target)
    before = target.read_bytes()

    def boom(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", boom)
    with pytest.raises(OSError):
        io.save_checkpoint({"a": torch.zeros(2)}, target)
    assert target.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_wandb_offline_run_holds_metrics(cohort, tiny, tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE", raising=False)
    tiny.trainer.tracker = "wandb"
    tiny.trainer.max_steps = 2
    train_run(cohort, tmp_path / "run", tiny)
    runs = list((tmp_path / "run" / "wandb").glob("offline-run-*"))
    assert len(runs) == 1
    keys = (b"train/loss_g", b"train/loss_d", b"val/mae_brain", b"val/detection_f1")
    for _ in range(40):  # the W&B service may still be writing on a busy machine
        data = b"".join(p.read_bytes() for p in runs[0].glob("*.wandb"))
        if all(k in data for k in keys):
            break
        time.sleep(0.5)
    for key in keys:
        assert key in data, key
    assert list(runs[0].glob("files/media/images/val/panel_*.png"))
