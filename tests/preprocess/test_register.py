"""Rigid registration against known motion: thick slices, other voxel orders, other FOV."""

import numpy as np
import pytest

from gdsynth.errors import GeometryError, RegistrationError
from gdsynth.io import read_image
from gdsynth.preprocess.mask import head_mask
from gdsynth.preprocess.pipeline import _coarse
from gdsynth.preprocess.register import (
    RegistrationParams,
    mean_displacement,
    register_rigid,
    rotation_angle_deg,
)
from gdsynth.preprocess.resample import overlap_fraction, require_overlap
from tests.preprocess import synth


@pytest.fixture(scope="module")
def exam(tmp_path_factory):
    root = tmp_path_factory.mktemp("reg")
    ex = synth.make_exam(root, t1_spacing=2.0, sequences=("T1w", "FLAIR", "T1w_gd"))
    t1, g1 = read_image(ex.paths["T1w"])
    small, sg = _coarse(t1, g1)
    labels = synth.truth_labels(g1, skull=True)
    brain = np.argwhere(np.isin(labels, [synth.WM, synth.GM, synth.LESION, synth.ENH]))
    return ex, t1, g1, (head_mask(small, sg.spacing), sg), g1.index_to_world(brain)


@pytest.mark.parametrize("role", ["FLAIR", "T1w_gd"])
def test_recovers_known_motion_below_1mm(exam, role):
    ex, t1, g1, mask, brain_pts = exam
    moving, gm = read_image(ex.paths[role])
    assert gm.orientation != g1.orientation
    result = register_rigid(t1, g1, moving, gm, fixed_mask=mask, name=ex.paths[role])
    before = mean_displacement(np.eye(4), ex.motion[role], brain_pts)
    after = mean_displacement(result.matrix_lps, ex.motion[role], brain_pts)
    assert before > 3.0
    assert after < 1.0, f"{role}: {after:.2f} mm"
    assert np.isfinite(result.metric) and result.metric < result.initial_metric
    record = result.to_dict()
    assert np.asarray(record["matrix_lps"]).shape == (4, 4)


def test_deterministic(exam):
    ex, t1, g1, mask, _ = exam
    moving, gm = read_image(ex.paths["T1w_gd"])
    params = RegistrationParams(iterations=30)
    a = register_rigid(t1, g1, moving, gm, fixed_mask=mask, params=params)
    b = register_rigid(t1, g1, moving, gm, fixed_mask=mask, params=params)
    # same samples (fixed seed); only multithreaded summation order may differ (~1e-13)
    np.testing.assert_allclose(a.matrix_lps, b.matrix_lps, atol=1e-9)
    assert a.metric == pytest.approx(b.metric, abs=1e-9)


def test_implausible_result_raises(exam):
    ex, t1, g1, mask, _ = exam
    moving, gm = read_image(ex.paths["T1w_gd"])
    strict = RegistrationParams(iterations=10, max_rotation_deg=0.01)
    with pytest.raises(RegistrationError, match="diverged") as info:
        register_rigid(t1, g1, moving, gm, fixed_mask=mask, params=strict, name=ex.paths["T1w_gd"])
    assert "ce-gadolinium" in str(info.value)
    assert rotation_angle_deg(ex.motion["T1w_gd"]) > 1.0


def test_overlap_check_names_the_file(exam):
    ex, _, g1, _, _ = exam
    far = g1.replace(origin=tuple(np.asarray(g1.origin) + [0.0, 0.0, 900.0]))
    assert overlap_fraction(g1, g1) == pytest.approx(1.0)
    assert overlap_fraction(g1, far) == 0.0
    with pytest.raises(GeometryError, match="does not overlap") as info:
        require_overlap(ex.paths["FLAIR"], g1, far)
    assert "FLAIR" in str(info.value)
