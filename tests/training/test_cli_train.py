"""`gdsynth train` wiring: BIDS discovery → preparation (faked here) → training → export."""

from __future__ import annotations

import numpy as np
import yaml

from gdsynth.batch import CaseResult
from gdsynth.cli.main import main
from gdsynth.data.subjects import TrainingExam
from gdsynth.io import write_image, write_labels
from gdsynth.models.folder import load_model_folder
from gdsynth.training import cohort as cohort_mod
from tests.data.fakes import GEOMETRY, fake_exam_arrays
from tests.fixtures.training import TINY


def _bids(root):
    for i in range(3):
        anat = root / f"sub-{i:02d}" / "anat"
        a = fake_exam_arrays(i)
        p = f"sub-{i:02d}"
        for key, name in (("T1w", "T1w"), ("T2w", "T2w"), ("FLAIR", "FLAIR"),
                          ("T1w_gd", "ce-gadolinium_T1w")):
            write_image(anat / f"{p}_{name}.nii.gz", a[key].astype(np.float32), GEOMETRY)
        write_labels(anat / f"{p}_desc-brain_mask.nii.gz", a["mask"], GEOMETRY)
    return root


def _already_prepared(bids_root, exams, **kwargs):
    """Stand-in for gdsynth.preprocess: the fake raw files are already on the prepared grid."""
    training = [TrainingExam(id=e.prefix, paths=e.inputs(), subject=e.subject) for e in exams]
    return training, [CaseResult(e.prefix, "done", 0.0) for e in exams]


def test_cli_train_end_to_end(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cohort_mod, "prepare_cohort", _already_prepared)
    bids = _bids(tmp_path / "bids")
    run = tmp_path / "run"
    code = main(["-q", "train", str(bids), "-o", str(run), "--config", str(TINY),
                 "--max-steps", "2", "--seed", "3", "--tracker", "csv",
                 "--set", "loss.l1_weight=50", "--set", "data.augment.flip_p=0"])
    assert code == 0, capsys.readouterr().err
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["trainer"]["max_steps"] == 2 and saved["trainer"]["seed"] == 3
    assert saved["loss"]["l1_weight"] == 50 and saved["data"]["augment"]["flip_p"] == 0
    assert list((run / "logs").rglob("metrics.csv"))
    _, card = load_model_folder(run / "model")
    assert card.training["steps"] == 2 and card.training["data"]["n_exams"] == 3
    # resume continues the same run with its saved config, up to the new step budget
    code = main(["-q", "train", str(bids), "-o", str(run), "--resume", "--max-steps", "4"])
    assert code == 0, capsys.readouterr().err
    _, card = load_model_folder(run / "model")
    assert card.training["steps"] == 4 and card.training["seed"] == 3


def test_cli_train_output_is_one_progress_line_and_where_to_look(tmp_path, monkeypatch, capsys):
    """No third-party noise (tips, W&B warnings, deprecations, "Epoch 2/-2"), exactly the
    asked steps, no "prepare: N done" after training, and the way to look at the run."""
    monkeypatch.setattr(cohort_mod, "prepare_cohort", _already_prepared)
    bids = _bids(tmp_path / "bids")
    run = tmp_path / "run"
    code = main(["train", str(bids), "-o", str(run), "--config", str(TINY), "--max-steps", "3",
                 "--tracker", "wandb"])
    err = capsys.readouterr().err
    assert code == 0, err
    for noise in ("Epoch", "/-", "wandb: ", "deprecated", "Tip", "GPU available", "max_steps=6",
                  "prepare: 3 done"):
        assert noise not in err, noise
    assert "train" in err and "3/3" in err and "loss_g" in err  # the progress line
    assert f"trained 3 steps in {run}" in err and f"gdsynth runs {run}" in err
    assert f"wandb sync {run / 'wandb'}" in err
    assert yaml.safe_load((run / "metrics.json").read_text())["steps"] == 3
    header = next(run.glob("logs/version_*/metrics.csv")).read_text().splitlines()[0].split(",")
    for col in ("train/lr_g", "train/lr_d", "train/grad_norm_g", "train/grad_norm_d"):
        assert col in header, col
    # the dashboard command printed above works on what the run wrote
    assert main(["runs", str(run), "-o", str(tmp_path / "runs.html")]) == 0
    page = (tmp_path / "runs.html").read_text()
    assert 'alt="train/grad_norm_g"' in page and 'alt="val/mae_brain"' in page


def test_cli_bad_tracker_fails_before_preparing(tmp_path, monkeypatch, capsys):
    def never(*args, **kwargs):
        raise AssertionError("an exam was prepared before the tracker was checked")

    monkeypatch.setattr(cohort_mod, "prepare_cohort", never)
    bids = _bids(tmp_path / "bids")
    code = main(["train", str(bids), "-o", str(tmp_path / "run"), "--config", str(TINY),
                 "--tracker", "mlflow"])
    assert code == 2 and "wandb, csv, tensorboard, none" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    try:
        import tensorboard  # noqa: F401
    except ImportError:
        code = main(["train", str(bids), "-o", str(tmp_path / "run"), "--config", str(TINY),
                     "--tracker", "tensorboard"])
        assert code == 2 and "pip install tensorboard" in capsys.readouterr().err
        assert not (tmp_path / "run").exists()


def test_cli_resume_without_run_fails_clearly(tmp_path, capsys):
    code = main(["train", str(tmp_path), "-o", str(tmp_path / "nothing"), "--resume"])
    assert code == 2
    assert "nothing to resume" in capsys.readouterr().err


def test_cli_bad_setting_fails_before_any_work(tmp_path, capsys):
    code = main(["train", str(tmp_path), "-o", str(tmp_path / "run"), "--config", str(TINY),
                 "--set", "loss.l1_wieght=0"])
    assert code == 2
    assert "unknown field loss.l1_wieght" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
