"""Mixed datasets / multitask (issue #18): exams with a post-Gd T1w train everything, mask-only
exams (a lesion mask, no contrast) train only the ``lesions`` head; each loss applies where its
target exists; all-lesion masks are read from any derivative folder by one naming rule."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gdsynth.cli.main import main
from gdsynth.data.module import DataConfig, GdsynthDataModule
from gdsynth.data.patches import HAS_ALL_LESIONS, HAS_TARGET, PatchCollate
from gdsynth.data.subjects import (
    ALL_LESIONS,
    LESION,
    SAMPLING,
    TARGET,
    AddLesionLabels,
    TrainingExam,
    make_subject,
)
from gdsynth.errors import ConfigError
from gdsynth.io import write_image, write_labels
from gdsynth.io.bids import Exam, derivative_path, discover
from gdsynth.models.folder import load_model_folder
from gdsynth.training.cohort import LabelsError, all_lesions_path, require_all_lesions
from gdsynth.training.config import load_config
from gdsynth.training.module import Pix2PixModule
from tests.data.fakes import GEOMETRY, _native_geometry, fake_exam_arrays, write_fake_exam
from tests.fixtures.training import TINY

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

HEADS = "generator.heads=[enhancing, lesions]"


def _all_lesions(seed: int) -> np.ndarray:
    """Every lesion of fake exam ``seed`` (the enhancing ones and the others)."""
    a = fake_exam_arrays(seed)
    return ((a["FLAIR"] > 1.5) & (a["mask"] > 0)).astype(np.uint8)


def _raw_exam(root, seed: int, *, post: bool) -> Exam:
    """One tiny raw exam ``sub-00`` (32x32x16 at 2 mm) under BIDS folder ``root``; with ``post``
    its post-Gd T1w and a phantom-style enhancing truth, else no contrast at all."""
    a = fake_exam_arrays(seed)
    anat = root / "sub-00" / "anat"
    names = [("T1w", "T1w"), ("T2w", "T2w"), ("FLAIR", "FLAIR")]
    for key, name in names + ([("T1w_gd", "ce-gadolinium_T1w")] if post else []):
        write_image(anat / f"sub-00_{name}.nii.gz", a[key].astype(np.float32), GEOMETRY)
    if post:
        write_labels(derivative_path(root / "derivatives" / "phantom", Exam("00"), "dseg",
                                     desc="enhancing"), a["truth"], GEOMETRY)
    return Exam("00")


def _lps_mask(path, mask: np.ndarray) -> None:
    """``mask`` (on the fakes' RAS grid) written in LPS voxel order: another grid, same space."""
    write_labels(path, mask[::-1, ::-1, :], _native_geometry())


# -- the loss ---------------------------------------------------------------------------------
def _batch(n: int = 4, size: int = 16) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    one = lambda: torch.rand(n, 1, size, size, generator=g)  # noqa: E731
    return {"input": torch.rand(n, 9, size, size, generator=g), "pre": one(), "target": one(),
            "brain": torch.ones(n, 1, size, size), "lesion": (one() > 0.8).float(),
            ALL_LESIONS: (one() > 0.7).float(),
            HAS_TARGET: torch.tensor([1.0, 1.0, 0.0, 1.0]),
            HAS_ALL_LESIONS: torch.ones(n)}


def test_synthesis_loss_ignores_mask_only_patches_and_the_lesions_head_uses_them():
    cfg = load_config(TINY)
    cfg.generator.heads = ["enhancing", "lesions"]
    cfg.loss.ssim_weight = 1.0
    module = Pix2PixModule(cfg.to_dict())
    batch = _batch()
    out = torch.randn(4, 3, 16, 16, generator=torch.Generator().manual_seed(1))
    terms = module.generator_loss(out, batch)
    assert set(terms) == {"l1", "ssim", "head_enhancing", "head_lesions"}
    # the mask-only patch (row 2) has another fake target and enhancing map: nothing changes
    other = {**batch, "target": batch["target"].clone(), "lesion": batch["lesion"].clone()}
    other["target"][2] += 5.0
    other["lesion"][2] = 1.0 - other["lesion"][2]
    changed = module.generator_loss(out, other)
    for k in ("l1", "ssim", "head_enhancing"):
        assert torch.equal(terms[k], changed[k]), k
    # ... and the synthesis terms are those of the patches with a target alone
    keep = [0, 1, 3]
    alone = module.generator_loss(out[keep], {k: v[keep] for k, v in batch.items()
                                              if k not in (HAS_TARGET, HAS_ALL_LESIONS)})
    for k in ("l1", "ssim", "head_enhancing"):
        assert torch.allclose(terms[k], alone[k]), k
    # the lesions head learns from the mask-only patch: its all-lesion map counts
    other[ALL_LESIONS] = batch[ALL_LESIONS].clone()
    other[ALL_LESIONS][2] = 1.0 - other[ALL_LESIONS][2]
    assert not torch.equal(module.generator_loss(out, other)["head_lesions"], terms["head_lesions"])
    # a batch with no target at all: the synthesis terms are left out, no NaN
    none = {**batch, HAS_TARGET: torch.zeros(4)}
    terms = module.generator_loss(out, none)
    assert set(terms) == {"head_lesions"} and torch.isfinite(terms["head_lesions"])
    assert torch.isfinite(module.total_generator_loss(terms))
    # patches without an all-lesion map do not train the lesions head
    terms = module.generator_loss(out, {**batch, HAS_ALL_LESIONS: torch.zeros(4)})
    assert "head_lesions" not in terms and "l1" in terms


# -- data: a mask-only exam ---------------------------------------------------------------------
def test_mask_only_exam_patches_centre_on_its_lesions(tmp_path):
    exam = write_fake_exam(tmp_path, "01", seed=1)
    every = _all_lesions(1)
    _lps_mask(tmp_path / "lesions_mask.nii.gz", every)
    mask_only = TrainingExam(id="sub-01", paths={k: v for k, v in exam.paths.items()
                                                 if k != TARGET},
                             lesions=tmp_path / "lesions_mask.nii.gz")
    assert not mask_only.has_target
    subject = AddLesionLabels(all_lesions=True)(
        make_subject(mask_only, ["T1w", "T2w", "FLAIR"], need_target=False))
    brain = subject["brain"].data[0].numpy() > 0
    # resampled from its LPS grid by world coordinates: the mask itself, on the lesion class
    np.testing.assert_array_equal(subject[ALL_LESIONS].data[0].numpy(), every * brain)
    np.testing.assert_array_equal(subject[SAMPLING].data[0].numpy() == 2, (every * brain) > 0)
    assert not subject[LESION].data.any()  # nothing is known about its enhancement
    # a batch of one patch with a target and one without: flags and a stand-in target
    full = AddLesionLabels(all_lesions=True)(make_subject(exam, ["T1w", "T2w", "FLAIR"]))
    crop = lambda s: {k: v.data[:, 8:24, 8:24, 6:9] for k, v in s.get_images_dict(  # noqa: E731
        intensity_only=False).items()}
    batch = PatchCollate(["T1w", "T2w", "FLAIR"], "2.5d", all_lesions=True)(
        [crop(full), crop(subject)])
    assert batch[HAS_TARGET].tolist() == [1.0, 0.0] and HAS_ALL_LESIONS not in batch
    assert torch.equal(batch["target"][1], batch["pre"][1])
    # the data module refuses a mask-only exam it cannot train, naming it
    with pytest.raises(ConfigError, match="sub-01 has no post-Gd T1w.*'lesions' head"):
        GdsynthDataModule(exams=[exam, mask_only], config=DataConfig(val_fraction=0))
    bare = TrainingExam(id="sub-01", paths=mask_only.paths)
    with pytest.raises(ConfigError, match="mask-only exam sub-01 .* no all-lesion mask"):
        GdsynthDataModule(exams=[exam, bare], config=DataConfig(val_fraction=0,
                                                                all_lesion_labels=True))


# -- all-lesion masks from any derivative ---------------------------------------------------------
def test_all_lesion_masks_follow_one_naming_rule(tmp_path):
    bids = tmp_path / "bids"
    exam = _raw_exam(bids, 1, post=False)
    assert all_lesions_path(bids, exam) == (None, "")
    phantom = derivative_path(bids / "derivatives" / "phantom", exam, "mask", label="L", desc="all")
    write_labels(phantom, _all_lesions(1), GEOMETRY)
    assert all_lesions_path(bids, exam) == (phantom, "truth")  # the phantom's name: one case
    mine = derivative_path(tmp_path / "mine", exam, "mask", desc="lesions")
    write_labels(mine, _all_lesions(1), GEOMETRY)
    assert all_lesions_path(bids, exam, [tmp_path / "mine"]) == (mine, "annotation")  # wins
    dseg = derivative_path(tmp_path / "other", exam, "dseg", desc="lesions")
    write_labels(dseg, _all_lesions(1), GEOMETRY)
    assert all_lesions_path(bids, exam, [tmp_path / "other", tmp_path / "mine"])[0] == dseg


def test_mask_only_exam_without_mask_is_refused_naming_it(tmp_path, capsys):
    gd, other = tmp_path / "gd", tmp_path / "nomask"
    _raw_exam(gd, 0, post=True)
    _raw_exam(other, 1, post=False)
    with pytest.raises(LabelsError, match="exam sub-00 has no post-Gd T1w and no all-lesion mask"):
        require_all_lesions(other, discover(other))
    code = main(["-q", "train", str(gd), str(other), "-o", str(tmp_path / "run"), "--config",
                 str(TINY), "--set", HEADS, "--max-steps", "1", "--no-fit-detector"])
    err = capsys.readouterr().err
    assert code != 0 and "sub-00 has no post-Gd T1w and no all-lesion mask" in err
    assert "desc-lesions_mask" in err
    assert not (other / "derivatives").exists() and not (tmp_path / "run" / "model").exists()


# -- a mixed run through the CLI ----------------------------------------------------------------
def test_mixed_run_with_two_bids_folders(tmp_path, capsys):
    gd, masks = tmp_path / "gd", tmp_path / "masks"
    _raw_exam(gd, 0, post=True)
    exam = _raw_exam(masks, 1, post=False)  # another dataset, its own sub-00, no contrast
    deriv = masks / "derivatives" / "lesions"  # inside that dataset: applies to it only
    _lps_mask(derivative_path(deriv, exam, "mask", desc="lesions"), _all_lesions(1))
    run = tmp_path / "run"
    code = main(["-q", "train", str(gd), str(masks), "-o", str(run), "--config", str(TINY),
                 "--set", HEADS, "--max-steps", "3", "--no-fit-detector", "--labels", str(deriv),
                 "--set", "data.lesion_probability=1.0"])
    err = capsys.readouterr().err
    assert code == 0, err
    assert ("training on 1 exam(s) with a post-Gd T1w and 1 mask-only exam(s) (lesions head "
            "only), from 2 dataset(s): gd (1 post-Gd, 0 mask-only), masks (0 post-Gd, 1 "
            "mask-only)") in err
    _, card = load_model_folder(run / "model")
    data, split, labels = card.training["data"], card.training["split"], card.training["labels"]
    assert data["n_with_target"] == 1 and data["n_mask_only"] == 1
    assert [(d["name"], d["n_with_target"], d["n_mask_only"]) for d in data["datasets"]] == [
        ("gd", 1, 0), ("masks", 0, 1)]
    assert split["train_exams"] == ["gd:sub-00", "masks:sub-00"] and split["n_train_mask_only"] == 1
    assert labels["kinds"] == {"with_target": 1, "mask_only": 1}
    one = labels["exams"]["masks:sub-00"]
    assert one["source"] == "none" and one["all_lesions_source"] == "annotation"
    assert labels["exams"]["gd:sub-00"]["source"] == "truth"
