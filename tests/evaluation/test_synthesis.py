"""Synthesis metrics against independent implementations (scikit-image)."""

import numpy as np
import pytest
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from gdsynth.evaluation.synthesis import DATA_RANGE, mae, psnr, ssim, ssim_map_3d, synthesis_metrics


def _pair(shape=(20, 18, 16), seed=0):
    rng = np.random.default_rng(seed)
    real = 1.0 + 0.3 * rng.standard_normal(shape)
    synth = real + 0.1 * rng.standard_normal(shape)
    return synth, real


def test_ssim_map_matches_skimage_3d():
    synth, real = _pair()
    _, ref_map = structural_similarity(
        synth, real, gaussian_weights=True, sigma=1.5, use_sample_covariance=False,
        data_range=DATA_RANGE, full=True,
    )
    np.testing.assert_allclose(ssim_map_3d(synth, real, DATA_RANGE), ref_map, atol=1e-10)


def test_ssim_unmasked_mean_matches_skimage_on_cropped_interior():
    synth, real = _pair(seed=1)
    ref = structural_similarity(synth, real, gaussian_weights=True, sigma=1.5,
                                use_sample_covariance=False, data_range=DATA_RANGE)
    inner = np.zeros(synth.shape, bool)
    inner[5:-5, 5:-5, 5:-5] = True  # skimage crops (win_size - 1) / 2 = 5 voxels
    assert ssim_map_3d(synth, real)[inner].mean() == pytest.approx(ref, abs=1e-10)
    assert ssim(real, real, inner) == pytest.approx(1.0)


def test_psnr_and_mae_match_skimage_in_mask():
    synth, real = _pair(seed=2)
    mask = np.zeros(synth.shape, bool)
    mask[3:15, 2:12, 4:10] = True
    expected = peak_signal_noise_ratio(real[mask], synth[mask], data_range=DATA_RANGE)
    assert psnr(synth, real, mask) == pytest.approx(expected, rel=1e-12)
    assert mae(synth, real, mask) == pytest.approx(np.abs(synth - real)[mask].mean())
    assert psnr(real, real, mask) == float("inf")


def test_synthesis_metrics_regions_and_empty_region():
    synth, real = _pair(seed=3)
    brain = np.ones(synth.shape, bool)
    lesion = np.zeros(synth.shape, bool)
    lesion[5:8, 5:8, 5:8] = True
    synth = synth.copy()
    synth[lesion] += 0.5  # too bright in the lesion only
    out = synthesis_metrics(synth, real, brain, {"enhancing": lesion,
                                                 "none": np.zeros_like(lesion)})
    assert out["bias_enhancing"] > 0.4
    assert out["mae_enhancing"] > out["mae"]
    assert out["voxels_enhancing"] == 27
    assert np.isnan(out["mae_none"]) and out["voxels_none"] == 0
