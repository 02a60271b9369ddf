"""Candidate extraction: smoothing in the mask, hysteresis, minimum size."""

import numpy as np

from gdsynth.detection.candidates import (
    hysteresis_components,
    remove_background,
    remove_small,
    smooth_in_mask,
    trim_to_peak,
    union_components,
)


def test_hysteresis_grows_seed_and_ignores_unseeded_regions():
    v = np.zeros((20, 10, 10), np.float32)
    v[2:8, 2:5, 2:5] = 0.2  # low region ...
    v[4, 3, 3] = 0.5  # ... with one seed
    v[12:18, 2:5, 2:5] = 0.24  # low region without a seed
    labels = hysteresis_components(v, high=0.25, low=0.12)
    assert labels.max() == 1
    assert labels.dtype == np.int32
    expected = v >= 0.12
    expected[10:] = False
    np.testing.assert_array_equal(labels == 1, expected)  # the whole low region of the seed
    assert not labels[12:18].any()


def test_hysteresis_uses_26_connectivity_and_mask():
    v = np.zeros((6, 6, 6), np.float32)
    v[1, 1, 1] = 1.0
    v[2, 2, 2] = 0.2  # corner neighbour of the seed: joined under 26-connectivity
    labels = hysteresis_components(v, high=0.5, low=0.1)
    assert labels[2, 2, 2] == labels[1, 1, 1] == 1
    mask = np.ones_like(v, bool)
    mask[1, 1, 1] = False
    assert hysteresis_components(v, 0.5, 0.1, mask).max() == 0


def test_remove_small_uses_mm3_and_relabels():
    labels = np.zeros((10, 10, 10), np.int32)
    labels[0:2, 0:2, 0:2] = 1  # 8 voxels
    labels[5:9, 5:9, 5:9] = 2  # 64 voxels
    out = remove_small(labels, min_volume_mm3=10.0, spacing=(1.0, 1.0, 1.0))
    assert out.max() == 1 and (out == 1).sum() == 64
    out = remove_small(labels, min_volume_mm3=10.0, spacing=(1.0, 1.0, 2.0))  # 8 voxels = 16 mm³
    assert out.max() == 2


def test_smooth_in_mask_keeps_constant_inside_and_zero_outside():
    mask = np.zeros((16, 16, 16), bool)
    mask[3:13, 3:13, 3:13] = True
    img = np.where(mask, 0.7, 5.0).astype(np.float32)  # bright outside must not leak in
    out = smooth_in_mask(img, mask, 1.5, (1.0, 1.0, 1.0))
    np.testing.assert_allclose(out[mask], 0.7, atol=1e-5)
    assert np.all(out[~mask] == 0)


def test_union_components_merges_touching_masks():
    a = np.zeros((8, 8, 8), bool)
    b = np.zeros((8, 8, 8), bool)
    a[1:3, 1:3, 1:3] = True
    b[3:5, 3:5, 3:5] = True
    b[6, 6, 6] = True
    assert union_components(a, b).max() == 2


def test_trim_to_peak_keeps_the_half_maximum_core():
    v = np.zeros((12, 12, 12), np.float32)
    v[2:10, 2:10, 2:10] = 0.2  # smoothing tail
    v[5:7, 5:7, 5:7] = 1.0  # core
    labels = hysteresis_components(v, high=0.5, low=0.1)
    trimmed = trim_to_peak(labels, v, 0.5)
    assert (labels > 0).sum() == 512 and (trimmed > 0).sum() == 8
    assert trim_to_peak(labels, v, 0.0) is labels


def test_remove_background_flattens_offsets_and_measures_noise():
    rng = np.random.default_rng(0)
    mask = np.ones((40, 40, 40), bool)
    x = np.linspace(0, 1, 40)[:, None, None]
    noise = rng.normal(0, 0.05, mask.shape).astype(np.float32)
    smoothed = (0.3 * x + noise).astype(np.float32)  # a slow ramp (bias) plus noise
    smoothed[18:22, 18:22, 18:22] += 1.0  # a lesion
    residual, sd = remove_background(smoothed, mask, 6.0, (1.0, 1.0, 1.0))
    assert 0.04 < sd < 0.07
    ramp = float(smoothed[-5:].mean() - smoothed[:5].mean())  # 0.27 before
    assert abs(float(residual[-5:].mean() - residual[:5].mean())) < 0.25 * ramp
    assert residual[19, 19, 19] > 0.8  # lesion kept
