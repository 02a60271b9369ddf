"""Preparation of a 2 mm digital phantom exam, scored against its ground truth."""

import pytest

from gdsynth.io.bids import discover
from gdsynth.preprocess import prepare_arrays
from tests.preprocess.truth import score


@pytest.fixture(scope="module")
def phantom(tmp_path_factory):
    from gdsynth.phantom import generate_dataset

    root = tmp_path_factory.mktemp("phantom")
    generate_dataset(root, subjects=1, seed=3, resolution=2)
    exam = discover(root)[0]
    return root, exam, prepare_arrays(exam)


def test_phantom_registration_and_normalization(phantom):
    root, exam, vols = phantom
    result = score(root, exam, vols)
    for role, err in result["registration_error_mm"].items():
        assert err < 1.0, f"{role}: {err:.2f} mm"
    assert abs(result["nawm_enhancement_median"]) < 0.02
    assert result["enhancing_voxels"] > 0
    assert result["enhancing_lesion_median"] > 0.1
    assert result["mask_dice"] > 0.95
    for seq, median in result["nawm_medians"].items():
        assert abs(median - 1.0) < 0.06, seq


def test_clipping_is_measured_on_every_file_and_absent_from_a_phantom_exam(phantom):
    _, _, vols = phantom
    quality = vols.provenance["quality"]
    for seq in ("T1w", "T2w", "FLAIR", "T1w_gd"):
        assert 0 <= quality[seq]["clipped_fraction"] < 0.001, seq
    assert not any("clipped" in f for f in vols.provenance["quality_flags"])


def test_clipped_fraction_counts_the_head_voxels_at_the_maximum():
    import numpy as np

    from gdsynth.preprocess.quality import clipped_fraction

    rng = np.random.default_rng(0)
    head = rng.normal(1000, 200, 9000)
    image = np.concatenate([np.zeros(1000), head])
    assert clipped_fraction(image) == pytest.approx(1 / 9000, abs=1e-9)  # unclipped: one voxel
    top = np.percentile(head, 80)
    clipped = np.minimum(image, top)
    assert clipped_fraction(clipped) == pytest.approx(0.2, abs=0.01)
    assert clipped_fraction(np.zeros(10)) == 0.0 and clipped_fraction(-np.ones(10)) == 0.0
