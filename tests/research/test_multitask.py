"""Multitask heads: all-lesion targets (truth or FLAIR-derived), head losses, joint training and
export of a generator with the enhancing and lesions heads, recipe validation."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gdsynth.data.subjects import ALL_LESIONS, AddLesionLabels, all_lesions_truth_path, make_subject
from gdsynth.errors import ConfigError
from gdsynth.models.folder import load_model_folder
from gdsynth.training.config import TrainConfig, load_config
from gdsynth.training.module import head_loss, soft_dice_loss
from gdsynth.training.run import train_run
from tests.data.fakes import fake_exam_arrays, write_fake_cohort

torch.set_num_threads(1)
ROOT = Path(__file__).resolve().parents[2]


def test_all_lesion_target_from_flair_covers_non_enhancing_lesions(tmp_path):
    exam = write_fake_cohort(tmp_path, 1)[0]
    subject = AddLesionLabels(all_lesions=True)(make_subject(exam, ["T1w", "T2w", "FLAIR"]))
    every = subject[ALL_LESIONS].data[0].numpy().astype(bool)
    enhancing = subject["lesion"].data[0].numpy().astype(bool)
    arrays = fake_exam_arrays(0)
    flair_bright = (arrays["FLAIR"] > 1.5) & (arrays["mask"] > 0)
    assert enhancing.sum() > 0 and (every & enhancing).sum() == enhancing.sum()
    assert every.sum() > enhancing.sum()  # the non-enhancing (odd) lesions too
    assert (every & flair_bright).sum() >= 0.6 * flair_bright.sum()


def test_all_lesion_truth_path_next_to_enhancing_truth(tmp_path):
    enh = tmp_path / "sub-01_label-L_desc-enhancing_dseg.nii.gz"
    every = tmp_path / "sub-01_label-L_desc-all_mask.nii.gz"
    enh.write_bytes(b"x")
    assert all_lesions_truth_path(enh) is None
    every.write_bytes(b"x")
    assert all_lesions_truth_path(enh) == every
    assert all_lesions_truth_path(tmp_path / "sub-01_desc-enhancing_dseg.nii.gz") == every  # current name


def test_head_losses():
    target = torch.zeros(2, 1, 8, 8)
    target[:, :, 2:5, 2:5] = 1
    good, bad = 20 * (2 * target - 1), -20 * (2 * target - 1)
    assert soft_dice_loss(good, target) < 0.01 < 0.9 < soft_dice_loss(bad, target)
    assert head_loss(good, target, 1.0) < head_loss(good, target, 0.0) + 0.01
    assert head_loss(bad, target, 1.0) > head_loss(bad, target, 0.0) + 0.9


def test_multitask_recipe_loads_with_both_heads():
    cfg = load_config(ROOT / "experiments" / "multitask.yaml")
    assert cfg.generator.heads == ["enhancing", "lesions"]
    assert cfg.data.all_lesion_labels and cfg.loss.head_weights["lesions"] == 0.5
    with pytest.raises(ConfigError, match="head_weights"):
        TrainConfig.from_dict({"loss": {"head_weights": {"lesions": 1.0}}})


def test_joint_training_exports_both_heads(tmp_path):
    cohort = write_fake_cohort(tmp_path / "cohort", 3)
    cfg = load_config(ROOT / "experiments" / "tiny.yaml")
    cfg.generator.heads = ["enhancing", "lesions"]
    cfg.loss.head_dice_weight = 1.0
    cfg.loss.head_weights = {"lesions": 0.5}
    cfg.trainer.max_steps = 2
    cfg = TrainConfig.from_dict(cfg.to_dict())
    result = train_run(cohort, tmp_path / "run", cfg)
    generator, card = load_model_folder(result.model_dir)
    assert card.heads == ["enhancing", "lesions"]
    out = generator(torch.zeros(1, 9, 16, 16))
    assert out.shape == (1, 3, 16, 16) and np.isfinite(out.detach().numpy()).all()
