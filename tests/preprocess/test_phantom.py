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
