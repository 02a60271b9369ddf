"""Attribution sanity: an ignored sequence gets ~0 by both methods; a FLAIR-only model puts ~all
attribution on FLAIR; IG completeness; regions for 2.5D and 3D."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gdsynth.explain.attribution import baseline_volume, lesion_region, shares
from gdsynth.explain.exam import explain_volume
from tests.explain.models import MaskedGenerator

torch.set_num_threads(1)
SEQS = ["T1w", "T2w", "FLAIR"]


def _exam(shape=(20, 18, 10), seed=0):
    rng = np.random.default_rng(seed)
    vol = np.ones((3, *shape), np.float32) + rng.normal(0, 0.05, (3, *shape)).astype(np.float32)
    brain = np.zeros(shape, bool)
    brain[2:-2, 2:-2, 1:-1] = True
    vol[:, ~brain] = 0.1
    labels = np.zeros(shape, np.int32)
    labels[6:10, 6:9, 4:6] = 1
    labels[12:15, 10:13, 3:5] = 2
    vol[1][labels > 0] = 1.8  # T2w/FLAIR bright, T1w darker
    vol[2][labels > 0] = 2.0
    vol[0][labels > 0] = 0.8
    return vol, brain, labels


def test_baseline_is_nawm_in_brain_and_mean_outside():
    vol, brain, _ = _exam()
    base = baseline_volume(vol, brain)
    assert np.all(base[:, brain] == 1.0)
    assert np.allclose(base[1][~brain], vol[1][~brain].mean())


def test_shares_normalize_and_handle_zero():
    assert shares([0.0, 0.0]) == [0.0, 0.0]
    assert np.allclose(shares([1.0, -3.0]), [0.25, -0.75])


@pytest.mark.parametrize("use", [["T1w", "FLAIR"], ["FLAIR"]])
def test_ignored_sequences_get_no_attribution(use):
    vol, brain, labels = _exam()
    gen = MaskedGenerator(SEQS, use)
    ex = explain_volume(gen, vol, brain, labels, [1, 2], sequences=SEQS, mode="2.5d", context=1,
                        n_steps=8)
    for label in (1, 2):
        cols = ex.columns[label]
        for s in SEQS:
            if s not in use:
                assert abs(cols[f"attr_ablation_{s}"]) < 1e-6
                assert abs(cols[f"attr_ig_{s}"]) < 1e-6
                assert np.abs(ex.maps[s]).max() < 1e-9
        if use == ["FLAIR"]:
            assert cols["attr_ablation_FLAIR"] == pytest.approx(1.0, abs=1e-6)
            assert cols["attr_ig_FLAIR"] == pytest.approx(1.0, abs=1e-6)
            assert cols["ablation_delta_FLAIR"] != 0.0
    assert max(ex.ig_delta.values()) < 1e-2 * max(1.0, np.abs(ex.maps["FLAIR"]).sum())


def test_ig_completeness_with_nonlinear_model():
    vol, brain, labels = _exam(seed=1)
    gen = MaskedGenerator(SEQS, SEQS, seed=3)
    ex = explain_volume(gen, vol, brain, labels, [1], sequences=SEQS, mode="2.5d", context=1,
                        methods=["ig"], n_steps=32)
    total = sum(np.abs(m).sum() for m in ex.maps.values())
    assert ex.ig_delta[1] < 0.02 * total
    assert "attr_ablation_T1w" not in ex.columns[1]


def test_regions_2p5d_whole_slices_and_3d_box():
    mask = np.zeros((20, 18, 10), bool)
    mask[5:8, 6:9, 0:2] = True
    r = lesion_region(mask, "2.5d", 1, 4)
    assert (r.x, r.y, r.z_out) == (slice(0, 20), slice(0, 18), slice(0, 2))
    assert r.z_in.tolist() == [0, 0, 1, 2]  # edge replicated like inference
    assert (20 + r.pad[0] + r.pad[1]) % 4 == 0 and (18 + r.pad[2] + r.pad[3]) % 4 == 0
    r3 = lesion_region(mask, "3d", 0, 8, margin=2)
    assert r3.x == slice(3, 10) and r3.z_out == slice(0, 4)
    assert all((n + a + b) % 8 == 0 for n, a, b in ((7, *r3.pad[:2]), (4, *r3.pad[4:])))


def test_3d_non_residual_model_ignored_sequence():
    from tests.explain.models import MaskedGenerator3D

    vol, brain, labels = _exam()
    gen = MaskedGenerator3D(SEQS, ["T1w", "FLAIR"])
    ex = explain_volume(gen, vol, brain, labels, [1], sequences=SEQS, mode="3d", residual=False,
                        n_steps=8, margin=3)
    cols = ex.columns[1]
    assert abs(cols["attr_ablation_T2w"]) < 1e-6 and abs(cols["attr_ig_T2w"]) < 1e-6
    assert abs(cols["attr_ig_T1w"]) > 0.01  # the T1w enters through post − pre too
