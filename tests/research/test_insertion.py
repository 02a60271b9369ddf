"""RandomLesionInsertion: lesions bright on FLAIR/T2w, darker on T1w, enhancing on post only when
active, labels updated, phantom subjects left alone, wired into the augmentation config."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gdsynth.data.augment import AugmentConfig, build_augmentation
from gdsynth.data.insertion import RandomLesionInsertion
from gdsynth.data.subjects import ALL_LESIONS, AddLesionLabels, make_subject
from tests.data.fakes import write_fake_cohort


@pytest.fixture()
def subject(tmp_path):
    exam = write_fake_cohort(tmp_path, 1, truth=False)[0]
    s = AddLesionLabels(all_lesions=True)(make_subject(exam, ["T1w", "T2w", "FLAIR"]))
    for name in ("T1w", "T2w", "FLAIR", "T1w_gd"):  # clean NAWM: lesions only from insertion
        s[name].set_data(torch.where(s["brain"].data.bool(), torch.ones_like(s[name].data),
                                     s[name].data))
    s["lesion"].set_data(torch.zeros_like(s["lesion"].data))
    s[ALL_LESIONS].set_data(torch.zeros_like(s[ALL_LESIONS].data))
    return s


def _arrays(s):
    return {k: s[k].data[0].numpy() for k in ("T1w", "T2w", "FLAIR", "T1w_gd")}


def test_active_lesion_visible_on_flair_and_enhancing_on_post(subject):
    torch.manual_seed(0)
    out = RandomLesionInsertion(max_lesions=1, active_probability=1.0)(subject)
    a = _arrays(out)
    every = out[ALL_LESIONS].data[0].numpy() > 0
    enh = out["lesion"].data[0].numpy() > 0
    assert every.sum() > 0 and enh.sum() > 0
    assert a["FLAIR"][every].mean() > 1.15 and a["T2w"][every].mean() > 1.15
    assert a["T1w"][every].mean() < 0.97  # T1 prolongation
    assert (a["T1w_gd"] - a["T1w"])[enh].mean() > 0.1  # gadolinium on the post only
    assert (out["sampling"].data[0].numpy()[enh] == 2).all()
    before = _arrays(subject)  # the input subject is not modified
    assert np.all(before["FLAIR"][every] == 1.0)


def test_chronic_lesion_does_not_enhance(subject):
    torch.manual_seed(1)
    out = RandomLesionInsertion(max_lesions=2, active_probability=0.0)(subject)
    a = _arrays(out)
    every = out[ALL_LESIONS].data[0].numpy() > 0
    assert every.sum() > 0 and out["lesion"].data.sum() == 0
    assert a["FLAIR"][every].mean() > 1.1
    diff = a["T1w_gd"] - a["T1w"]
    assert np.abs(diff[every]).max() < 0.05  # T1 change on both, no enhancement


def test_phantom_subjects_are_skipped_and_config_wires_it(tmp_path, subject):
    exam = write_fake_cohort(tmp_path / "p", 1, truth=True)[0]
    phantom = AddLesionLabels()(make_subject(exam, ["T1w", "T2w", "FLAIR"]))
    torch.manual_seed(0)
    out = RandomLesionInsertion(active_probability=1.0)(phantom)
    assert torch.equal(out["FLAIR"].data, phantom["FLAIR"].data)
    aug = build_augmentation(AugmentConfig(lesion_insertion_p=1.0, affine_p=0, flip_p=0,
                                           bias_p=0, gamma_p=0, noise_p=0, motion_p=0,
                                           ghosting_p=0), ["T1w", "T2w", "FLAIR"])
    assert isinstance(aug.transforms[0], RandomLesionInsertion)
    assert build_augmentation(AugmentConfig(), ["T1w"]).transforms[0].__class__ is not \
        RandomLesionInsertion


def test_insertion_variants_are_registered_by_name_and_checked():
    from gdsynth.data.insertion import INSERTIONS, get_insertion, register_insertion
    from gdsynth.errors import ConfigError

    class Marked(RandomLesionInsertion):
        """A variant, selected by name."""

    assert get_insertion("phantom") is RandomLesionInsertion
    with pytest.raises(ConfigError, match="unknown; choose from .*phantom"):
        get_insertion("nope")
    with pytest.raises(ConfigError, match="must be a RandomLesionInsertion"):
        register_insertion("bad", dict)
    register_insertion("test-marked", Marked)
    try:
        with pytest.raises(ConfigError, match="already registered"):
            register_insertion("test-marked", Marked)
        config = AugmentConfig(lesion_insertion_p=1.0, lesion_insertion_kind="test-marked",
                               affine_p=0, flip_p=0, bias_p=0, gamma_p=0, noise_p=0, motion_p=0,
                               ghosting_p=0)
        aug = build_augmentation(config, ["T1w", "T2w", "FLAIR"])
        assert type(aug.transforms[0]) is Marked
        with pytest.raises(ConfigError, match="lesion_insertion_kind 'gone' unknown"):
            build_augmentation(AugmentConfig(lesion_insertion_p=1.0, lesion_insertion_kind="gone"),
                               ["T1w"])
    finally:
        INSERTIONS.pop("test-marked", None)


def test_finish_sees_the_inserted_lesions(subject):
    class Seen(RandomLesionInsertion):
        def finish(self, subject, lesions, maps):
            self.seen = (len(lesions), int((maps.all_mask > 0).sum()))
            return subject

    torch.manual_seed(1)
    transform = Seen(max_lesions=2, active_probability=1.0)
    transform(subject)
    assert transform.seen[0] >= 1 and transform.seen[1] > 0
