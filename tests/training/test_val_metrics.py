"""Training's validation metrics: evaluation's lesion-matching rule, and their own names."""

import json

import numpy as np
import pytest

from gdsynth.metrics.lesions import match_lesions
from gdsynth.training.metrics import RENAMED_VAL_METRICS, current_metric_name, detection_f1


def test_detection_f1_matches_lesions_by_the_evaluation_rule():
    truth = np.zeros((24, 24, 24), np.uint8)
    truth[2:5, 2:5, 2:5] = 1  # small lesion (27 voxels)
    truth[15:19, 15:19, 15:19] = 1  # second lesion (64 voxels)
    enh = np.zeros(truth.shape, np.float32)
    enh[1:12, 1:12, 1:12] = 1.0  # one huge blob over the small lesion: mostly outside it (beta)
    enh[15:19, 15:19, 15:17] = 1.0  # half of the second lesion
    brain = np.ones(truth.shape, np.uint8)
    out = detection_f1(enh, truth, brain, threshold=0.5)
    # the old rule (a truth lesion covered >= 10 %, a prediction touching a lesion) counted 2 and 2
    assert (out["detected"], out["tp_pred"], out["n_truth"], out["n_pred"]) == (1, 1, 2, 2)
    m = match_lesions(truth, (enh > 0.5).astype(np.uint8), (1.0, 1.0, 1.0))
    assert (m.n_detected, m.n_true_positive) == (1, 1)
    assert out["sensitivity"] == 0.5 and out["ppv"] == 0.5 and out["false_positives"] == 1.0


def test_components_under_min_voxels_are_dropped_on_both_sides():
    truth = np.zeros((10, 10, 10), np.uint8)
    truth[1, 1, 1:3] = 1  # 2 voxels: not a lesion with min_voxels 3
    enh = np.zeros(truth.shape, np.float32)
    enh[1, 1, 1:3] = 1.0
    out = detection_f1(enh, truth, np.ones_like(truth), threshold=0.5, min_voxels=3)
    assert out["n_truth"] == 0 and out["n_pred"] == 0 and out["f1"] == 1.0


def test_old_metric_names_read_as_the_new_ones(tmp_path):
    from gdsynth.review.runs import read_run

    assert current_metric_name("val/psnr_brain") == "val/psnr_brain_volume_range"
    assert current_metric_name("val/mae_brain") == "val/mae_brain"
    run = tmp_path / "run"
    (run / "model").mkdir(parents=True)
    (run / "logs" / "version_0").mkdir(parents=True)
    (run / "logs" / "version_0" / "metrics.csv").write_text(
        "epoch,step,val/ssim_brain,val/mae_brain\n0,4,0.9,0.05\n", encoding="utf-8")
    card = {"training": {"steps": 4, "val_metrics": {old: 1.0 for old in RENAMED_VAL_METRICS}}}
    (run / "model" / "model_card.json").write_text(json.dumps(card), encoding="utf-8")
    read = read_run(run)
    assert set(read.final) == {"steps", *RENAMED_VAL_METRICS.values()}
    assert read.series["val/ssim_brain_2d_slices"] == [(4, pytest.approx(0.9))]


def test_tracker_is_an_enum_in_the_config_and_its_name_in_the_recipe():
    import yaml

    from gdsynth.errors import ConfigError
    from gdsynth.training.config import Tracker, TrainConfig, apply_overrides

    cfg = TrainConfig.from_dict({"trainer": {"tracker": "csv"}})
    assert cfg.trainer.tracker is Tracker.csv
    assert yaml.safe_load(yaml.safe_dump(cfg.to_dict()))["trainer"]["tracker"] == "csv"
    assert apply_overrides(cfg, **{"trainer.tracker": "none"}).trainer.tracker is Tracker.none
    with pytest.raises(ConfigError, match="wandb, csv, tensorboard, none"):
        TrainConfig.from_dict({"trainer": {"tracker": "mlflow"}})
