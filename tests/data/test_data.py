"""Subjects, lesion labels on the prepared grid, split, patches and augmentation consistency."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchio as tio

from gdsynth.data.augment import AugmentConfig, SharedBiasField, SharedGamma, build_augmentation
from gdsynth.data.module import DataConfig, GdsynthDataModule, split_exams
from gdsynth.data.patches import to_tensors
from gdsynth.data.subjects import LESION, SAMPLING, AddLesionLabels, TrainingExam, make_subject
from gdsynth.errors import ConfigError, MissingSequenceError
from tests.data.fakes import fake_exam_arrays, write_fake_cohort, write_fake_exam

torch.set_num_threads(1)


def test_truth_is_resampled_onto_prepared_grid(tmp_path):
    exam = write_fake_exam(tmp_path, "01", seed=1)
    subject = AddLesionLabels()(make_subject(exam, ["T1w", "T2w", "FLAIR"]))
    arrays = fake_exam_arrays(1)
    expected = (arrays["truth"] > 0) & (arrays["mask"] > 0)
    assert expected.any()
    np.testing.assert_array_equal(subject[LESION].data[0].numpy(), expected)
    sampling = subject[SAMPLING].data[0].numpy()
    assert set(np.unique(sampling)) == {0, 1, 2}


def test_lesions_derived_from_real_enhancement_without_truth(tmp_path):
    exam = write_fake_exam(tmp_path, "02", seed=2, truth=False)
    subject = AddLesionLabels(threshold=0.25, smooth_mm=1.0)(make_subject(exam, ["T1w", "FLAIR"]))
    arrays = fake_exam_arrays(2)
    derived = subject[LESION].data[0].numpy() > 0
    truth = arrays["truth"] > 0
    assert derived.sum() > 0
    dice = 2 * (derived & truth).sum() / (derived.sum() + truth.sum())
    assert dice > 0.5


def test_missing_sequence_is_named(tmp_path):
    exam = write_fake_exam(tmp_path, "03", seed=3)
    partial = TrainingExam(id="sub-03", paths={k: v for k, v in exam.paths.items() if k != "T2w"})
    with pytest.raises(MissingSequenceError, match="T2w"):
        make_subject(partial, ["T1w", "T2w"])


def test_split_is_by_subject_and_deterministic(tmp_path):
    paths = {"T1w": tmp_path, "T1w_gd": tmp_path}  # exams with a target (validation needs one)
    exams = [TrainingExam(id=f"sub-{s}_ses-{t}", paths=paths) for s in "abcdefghij" for t in "12"]
    train, val = split_exams(exams, 0.2, seed=3)
    assert (train, val) == split_exams(exams, 0.2, seed=3)
    assert len(val) == 4 and len(train) == 16
    assert not {e.subject_id for e in train} & {e.subject_id for e in val}
    assert split_exams(exams, 0.2, seed=4)[1] != val
    assert split_exams(exams[:2], 0.5, seed=0)[1] == []  # one subject: nothing to validate on


def test_patch_tensors_25d_and_3d(tmp_path):
    exam = write_fake_exam(tmp_path, "04", seed=4)
    subject = AddLesionLabels()(make_subject(exam, ["T1w", "T2w", "FLAIR"]))
    patch = tio.LabelSampler((16, 16, 3), label_name=SAMPLING)(subject, 1).__next__()
    t = to_tensors(patch, ["T1w", "T2w", "FLAIR"], "2.5d")
    assert t["input"].shape == (9, 16, 16)
    assert t["target"].shape == t["pre"].shape == t["brain"].shape == (1, 16, 16)
    # channel s*(2k+1)+j is sequence s at slice z-k+j: the centre T1w slice is the pre image
    torch.testing.assert_close(t["input"][1], t["pre"][0])
    torch.testing.assert_close(t["input"][7], patch["FLAIR"].data[0, :, :, 1])
    vol = to_tensors(subject, ["T1w", "FLAIR"], "3d")
    assert vol["input"].shape == (2, 32, 32, 16)


def test_datamodule_batches_oversample_lesions(tmp_path):
    exams = write_fake_cohort(tmp_path, 3)
    cfg = DataConfig(patch_size=16, batch_size=8, samples_per_volume=16, queue_length=48,
                     num_workers=0, lesion_probability=0.5, val_fraction=0.34,
                     augment=AugmentConfig(enabled=False))
    dm = GdsynthDataModule(exams=exams, config=cfg, seed=0)
    assert len(dm.train_exams) == 2 and len(dm.val_exams) == 1
    batches = list(dm.train_dataloader())
    assert len(batches) == dm.batches_per_epoch() == 4
    b = batches[0]
    assert b["input"].shape == (8, 9, 16, 16) and b["target"].shape == (8, 1, 16, 16)
    centre_lesion = torch.cat([x["lesion"][:, 0, 8, 8] for x in batches])
    assert centre_lesion.float().mean() > 0.3  # ~50 % lesion-centred; lesions are ~1 % of voxels
    again = list(dm.train_dataloader())  # same epoch -> same patches (reseeded per epoch)
    torch.testing.assert_close(again[0]["input"], b["input"])
    val = next(iter(dm.val_dataloader()))
    assert val["input"].shape == (3, 32, 32, 16) and val["id"] == dm.val_exams[0].id


def test_config_validation():
    with pytest.raises(ConfigError, match="subset"):
        DataConfig(inputs=["T1w", "DWI"]).validate()
    with pytest.raises(ConfigError, match="2d, 2.5d, 3d"):
        DataConfig(mode="4d").validate()


def _pair_subject() -> tio.Subject:
    x = torch.rand(1, 16, 16, 8) + 0.5
    return tio.Subject(T1w=tio.ScalarImage(tensor=x.clone()), T1w_gd=tio.ScalarImage(tensor=x.clone()),
                       FLAIR=tio.ScalarImage(tensor=x.clone()))


def test_pre_and_post_share_bias_and_gamma():
    torch.manual_seed(0)
    for transform in (SharedBiasField(coefficients=0.5, include=["T1w", "T1w_gd"]),
                      SharedGamma(log_gamma=0.3, include=["T1w", "T1w_gd"])):
        out = transform(_pair_subject())
        torch.testing.assert_close(out["T1w"].data, out["T1w_gd"].data)
        assert not torch.allclose(out["T1w"].data, out["FLAIR"].data)


def test_noise_touches_inputs_only():
    torch.manual_seed(0)
    cfg = AugmentConfig(affine_p=0, flip_p=0, bias_p=0, gamma_p=0, noise_p=1.0, motion_p=0,
                        ghosting_p=0)
    subject = _pair_subject()
    out = build_augmentation(cfg, ["T1w", "FLAIR"])(subject)
    torch.testing.assert_close(out["T1w_gd"].data, subject["T1w_gd"].data)
    assert not torch.allclose(out["T1w"].data, subject["T1w"].data)
    assert build_augmentation(AugmentConfig(enabled=False), ["T1w"]) is None


def _randomizable_subject(seed: int = 0) -> tio.Subject:
    g = torch.Generator().manual_seed(seed)
    shape = (1, 24, 20, 16)
    t1 = 0.3 + 1.2 * torch.rand(shape, generator=g)
    enh = torch.zeros(shape)
    enh[:, 8:12, 8:12, 6:10] = 0.6
    mask = torch.zeros(shape, dtype=torch.uint8)
    mask[:, 2:-2, 2:-2, 2:-2] = 1
    return tio.Subject(
        T1w=tio.ScalarImage(tensor=t1), T1w_gd=tio.ScalarImage(tensor=t1 + enh),
        FLAIR=tio.ScalarImage(tensor=0.5 + torch.rand(shape, generator=g)),
        mask=tio.LabelMap(tensor=mask))


def test_input_randomization_keeps_the_enhancement_target_intact():
    cfg = AugmentConfig(affine_p=0, flip_p=0, bias_p=0, gamma_p=0, noise_p=0, motion_p=0,
                        ghosting_p=0, randomize_p=1.0)
    subject = _randomizable_subject()
    before = {k: subject[k].data.clone() for k in ("T1w", "T1w_gd", "FLAIR", "mask")}
    for seed in range(4):
        torch.manual_seed(seed)
        out = build_augmentation(cfg, ["T1w", "FLAIR"])(subject)
        torch.testing.assert_close(out["T1w_gd"].data - out["T1w"].data,
                                   before["T1w_gd"] - before["T1w"], atol=1e-5, rtol=0)
        assert (out["T1w"].data - before["T1w"]).abs().mean() > 0.01
        assert (out["FLAIR"].data - before["FLAIR"]).abs().mean() > 0.01
        assert torch.equal(out["mask"].data, before["mask"])
    assert build_augmentation(AugmentConfig(), ["T1w"]) is not None  # off by default:
    assert not any(type(t).__name__ == "RandomizeInputs"
                   for t in build_augmentation(AugmentConfig(), ["T1w"]).transforms)


def test_random_contrast_curve_is_monotonic_and_keeps_zero_and_nawm():
    from gdsynth.data.augment import CURVE_KNOTS, random_contrast_curve

    x = torch.linspace(0, 5, 501)
    for seed in range(5):
        log_slopes = torch.randn(len(CURVE_KNOTS) - 1, generator=torch.Generator().manual_seed(seed))
        y = random_contrast_curve(x, log_slopes)
        assert torch.all(torch.diff(y) > 0)
        f = random_contrast_curve(torch.tensor([0.0, 1.0]), log_slopes)
        torch.testing.assert_close(f, torch.tensor([0.0, 1.0]))


def test_input_dropout_zeroes_only_optional_sequences(tmp_path):
    """Drop-out zeroes whole optional sequences per patch (all their slices), never T1w, the
    target or the labels; each optional sequence goes missing about ``p`` of the time."""
    from gdsynth.data.patches import PatchCollate

    exam = write_fake_exam(tmp_path, "05", seed=5)
    subject = AddLesionLabels()(make_subject(exam, ["T1w", "T2w", "FLAIR"]))
    patches = list(tio.LabelSampler((16, 16, 3), label_name=SAMPLING)(subject, 200))
    full = PatchCollate(["T1w", "T2w", "FLAIR"], "2.5d")(patches)
    torch.manual_seed(0)
    dropped = PatchCollate(["T1w", "T2w", "FLAIR"], "2.5d", dropout=0.3,
                           optional=["T2w", "FLAIR"])(patches)
    for k in ("target", "pre", "brain", "lesion"):
        torch.testing.assert_close(dropped[k], full[k])
    torch.testing.assert_close(dropped["input"][:, 0:3], full["input"][:, 0:3])  # T1w intact
    rates = []
    for s in (1, 2):  # T2w, FLAIR: channels 3-5, 6-8
        block, ref = dropped["input"][:, 3 * s:3 * s + 3], full["input"][:, 3 * s:3 * s + 3]
        zero = (block == 0).flatten(1).all(1)
        same = (block == ref).flatten(1).all(1)
        assert bool((zero | same).all())  # a sequence is either kept as is or wholly missing
        rates.append(float(zero.float().mean()))
    assert all(0.2 < r < 0.4 for r in rates), rates
    torch.testing.assert_close(PatchCollate(["T1w", "T2w"], "2.5d")(patches[:4])["input"],
                               full["input"][:4, :6])  # no drop-out: nothing zeroed


def test_input_dropout_config_is_checked():
    with pytest.raises(ConfigError, match="optional_inputs"):
        DataConfig(inputs=["T1w", "FLAIR"], optional_inputs=["T2w"]).validate()
    with pytest.raises(ConfigError, match="optional_inputs"):
        DataConfig(inputs=["T1w", "FLAIR"], optional_inputs=["T1w", "FLAIR"]).validate()
    with pytest.raises(ConfigError, match="input_dropout"):
        DataConfig(input_dropout=1.0, optional_inputs=["FLAIR"]).validate()
    DataConfig(input_dropout=0.25, optional_inputs=["T2w", "FLAIR"]).validate()
