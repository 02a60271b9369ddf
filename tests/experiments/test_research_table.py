"""experiments/research_table.py and research_common.py without training: every variant gives a
valid recipe that differs from the baseline where it should, the training-free baselines score as
expected on hand-made exams, and a cached run is reused without training."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.utils import EXPERIMENTS, load_experiment


@pytest.fixture(scope="module")
def rt():
    return load_experiment("research_table")


@pytest.fixture(scope="module")
def base():
    from gdsynth.training.config import load_config

    return load_config(EXPERIMENTS / "tiny.yaml")


@pytest.mark.parametrize("variant", ["baseline", "head-enhancing", "head-lesions", "multitask",
                                     "insertion", "l1-only", "2d", "no-oversampling", "segnet"])
def test_variant_configs_are_valid_and_differ_as_named(rt, base, variant, tmp_path):
    cfg = rt.variant_config(base, variant, tmp_path, [], seed=3, cvae_steps=1)
    assert cfg.trainer.seed == 3 and cfg.data.val_fraction == 0.0
    expected_heads = {"head-enhancing": ["enhancing"], "head-lesions": ["lesions"],
                      "multitask": ["enhancing", "lesions"], "segnet": ["enhancing"]}
    assert cfg.generator.heads == expected_heads.get(variant, [])
    assert (cfg.loss.adversarial_weight == 0) == (variant in ("l1-only", "segnet"))
    assert (cfg.loss.l1_weight == 0) == (variant == "segnet")
    assert (cfg.data.mode == "2d") == (variant == "2d")
    assert (cfg.data.lesion_probability == 0) == (variant == "no-oversampling")
    assert cfg.data.augment.lesion_insertion_p == (0.5 if variant == "insertion" else
                                                   base.data.augment.lesion_insertion_p)


def _exam(rc, name: str, active: bool):
    shape = (40, 40, 30)
    brain = np.zeros(shape, bool)
    brain[5:35, 5:35, 5:25] = True
    imgs = {s: np.where(brain, 1.0, 0.0).astype(np.float32) for s in ("T1w", "T2w", "FLAIR", "T1w_gd")}
    enhancing = np.zeros(shape, np.uint8)
    imgs["FLAIR"][10:15, 10:15, 10:15] = 2.0  # a chronic-looking FLAIR lesion in every exam
    if active:
        enhancing[22:27, 22:27, 12:17] = 1
        imgs["FLAIR"][22:27, 22:27, 12:17] = 2.5
        imgs["T1w_gd"][22:27, 22:27, 12:17] = 1.5

    class G:
        spacing = (2.0, 2.0, 2.0)

    return rc.EvalExam(name, imgs, brain, enhancing, (imgs["FLAIR"] > 1.5).astype(np.uint8), G())


def test_training_free_baselines(rt):
    import research_common as rc

    exams = [_exam(rc, "a", True), _exam(rc, "b", False), _exam(rc, "c", True)]
    pre = rc.score_baseline(exams, "post=pre")
    assert pre["sensitivity"] == 0 and pre["patient_auc"] == pytest.approx(0.5)
    flair = rc.score_baseline(exams, "flair-heuristic")
    assert flair["sensitivity"] == 1.0  # every bright FLAIR lesion is called active...
    assert flair["ppv"] == pytest.approx(0.4)  # ...chronic ones too: 2 true of 5 calls
    assert flair["patient_auc"] == pytest.approx(1.0)  # active exams have the brighter lesion
    assert flair["n_exams"] == 3
    real = rc.score_baseline(exams, "real-post")  # the real post-Gd through the detector
    assert real["sensitivity"] == 1.0 and real["ppv"] == 1.0
    assert real["patient_auc"] == pytest.approx(1.0)
    with pytest.raises(ValueError, match="unknown baseline"):
        rc.score_baseline(exams, "nope")


def test_cached_run_is_not_retrained(rt, base, tmp_path, monkeypatch):
    import gdsynth.training.run as run_mod

    rows = [{"variant": "baseline", "n_train": 4, "detector": "difference", "lesion_f1": 0.5}]
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "rows.json").write_text(json.dumps(rows))
    monkeypatch.setattr(run_mod, "train_run", lambda *a, **k: pytest.fail("retrained"))
    assert rt.train_and_score("baseline", [], [], base, tmp_path / "run", None) == rows


def test_unknown_variant_is_refused(rt, tmp_path, capsys):
    assert rt.main(["--work", str(tmp_path), "--variants", "baseline,bogus"]) == 2
    assert "bogus" in capsys.readouterr().err
