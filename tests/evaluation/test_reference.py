"""Normalization helpers and the derived enhancement reference."""

import numpy as np
import pytest

from gdsynth.evaluation.reference import (
    derive_enhancement_reference,
    nawm_from_truth,
    nawm_normalize,
    scale_field,
)

SHAPE = (32, 32, 24)


def test_scale_field_undoes_constant_and_smooth_bias():
    rng = np.random.default_rng(0)
    brain = np.zeros(SHAPE, bool)
    brain[4:28, 4:28, 4:20] = True
    prepared = np.where(brain, 1.0 + 0.1 * rng.standard_normal(SHAPE), 0.0)
    x = np.linspace(-1, 1, SHAPE[0])[:, None, None]
    bias = 1.0 + 0.15 * x * np.ones(SHAPE)  # smooth 30 % gradient across the head
    raw = prepared * 300.0 * bias
    f = scale_field(prepared, raw, brain, (1.0, 1.0, 1.0))
    inner = np.zeros(SHAPE, bool)
    inner[8:24, 8:24, 8:16] = True
    rel = np.abs(raw * f - prepared)[inner].mean()
    assert rel < 0.02  # within 2 % of the normalized intensities
    const = scale_field(prepared, prepared * 300.0, brain, (1.0, 1.0, 1.0))
    assert np.allclose(const[brain], 1 / 300.0, rtol=1e-6)


def test_nawm_mask_and_normalize():
    brain = np.ones(SHAPE, bool)
    wm = np.zeros(SHAPE)
    wm[10:20, 10:20, 5:15] = 0.9
    les = np.zeros(SHAPE, np.int32)
    les[14, 14, 10] = 1
    m = nawm_from_truth(brain, wm, les)
    assert not m[13:16, 13:16, 9:12].any() and m[11, 11, 6]
    img = np.full(SHAPE, 5.0, np.float32)
    assert np.allclose(nawm_normalize(img, m)[m], 1.0)
    with pytest.raises(ValueError):
        nawm_normalize(img, np.zeros(SHAPE, bool))


def test_derived_reference_keeps_real_enhancement_only():
    brain = np.zeros(SHAPE, bool)
    brain[2:30, 2:30, 2:22] = True
    pre = np.where(brain, 1.0, 0.0).astype(np.float32)
    post = pre.copy()
    post[8:13, 8:13, 8:13] += 0.8  # 125 mm³ enhancing lesion
    post[20, 20, 12] += 0.8  # one hot voxel: noise, removed by smoothing + size
    labels = derive_enhancement_reference(pre, post, brain, (1.0, 1.0, 1.0))
    assert labels.max() == 1 and labels[10, 10, 10] == 1 and labels[20, 20, 12] == 0
