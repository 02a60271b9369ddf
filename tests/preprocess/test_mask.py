"""Brain mask on a skull-stripped phantom and on a head with a bright scalp shell; NAWM."""

import numpy as np
import pytest

from gdsynth.preprocess.mask import brain_mask, head_mask, otsu_threshold
from gdsynth.preprocess.normalize import kmeans_1d, nawm_mask
from tests.preprocess import synth


def _dice(a, b):
    return 2 * (a & b).sum() / (a.sum() + b.sum())


@pytest.fixture(scope="module", params=[False, True], ids=["stripped", "bright-shell"])
def head(request):
    skull = request.param
    geom = synth.grid("LPS", (2.0, 2.0, 2.0))
    eye = np.eye(4)
    t1 = synth.render("T1w", geom, eye, skull=skull, seed=1, scale=700.0)
    flair = synth.render("FLAIR", geom, eye, skull=skull, seed=2, scale=3.0)
    labels = synth.truth_labels(geom, skull=skull)
    return skull, geom, t1, flair, labels


def test_brain_mask_matches_truth_and_excludes_scalp(head):
    skull, geom, t1, flair, labels = head
    truth = np.isin(labels, [synth.WM, synth.GM, synth.LESION, synth.ENH])
    mask = brain_mask([t1, flair], geom.spacing)
    assert _dice(mask, truth) > 0.93
    if skull:
        scalp = labels == synth.SCALP
        assert (mask & scalp).sum() < 0.01 * scalp.sum()
    # ventricles (CSF inside the brain) are filled in
    centre = tuple(np.round(geom.world_to_index(synth.CENTRE + [8.0, 0, 0])).astype(int))
    assert labels[centre] == synth.CSF and mask[centre]


def test_head_mask_covers_the_head(head):
    skull, geom, t1, _, labels = head
    hm = head_mask(t1, geom.spacing)
    assert hm[labels > 0].mean() > 0.97


def test_nawm_is_white_matter_without_lesions(head):
    _, geom, t1, flair, labels = head
    mask = brain_mask([t1, flair], geom.spacing)
    nawm = nawm_mask(t1, mask, geom.spacing, lesion_image=flair)
    assert nawm.sum() > 1000
    assert (labels[nawm] == synth.WM).mean() > 0.97
    assert not np.any(np.isin(labels[nawm], [synth.LESION, synth.ENH]))


def test_threshold_helpers():
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.normal(0, 1, 5000), rng.normal(10, 1, 5000)])
    assert 3 < otsu_threshold(values) < 7
    three = np.concatenate([rng.normal(m, 0.5, 3000) for m in (1, 5, 9)])
    np.testing.assert_allclose(kmeans_1d(three), [1, 5, 9], atol=0.1)
