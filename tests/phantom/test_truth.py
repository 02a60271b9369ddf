"""The truth derivative agrees with the images: enhancement, vessels, FLAIR lesions, motion, grids."""

from __future__ import annotations

import numpy as np
import pytest

from tests.phantom.helpers import aligned, exams, load_exam, nawm, resample_to


@pytest.fixture(scope="module")
def loaded(cohort):
    return [load_exam(cohort, e) for e in exams(cohort)]


def _normalised(data: dict) -> tuple[np.ndarray, np.ndarray]:
    """Pre and motion-corrected post T1w, each divided by its NAWM median."""
    ref = nawm(data)
    pre = data["T1w"][0]
    post = aligned(data, "T1w_gd")
    return pre / np.median(pre[ref]), post / np.median(post[ref])


def test_enhancing_lesions_brighter_on_post(loaded):
    for data in loaded:
        pre, post = _normalised(data)
        labels = data["enhancing"][0].astype(int)
        active = [r for r in data["rows"] if r["kind"] == "active"]
        assert active, "cohort made with active fraction 1 must have active lesions"
        assert {int(r["label"]) for r in active} == set(np.unique(labels[labels > 0]).tolist())
        diff = post - pre
        assert diff[labels > 0].mean() > 0.1
        for r in active:
            region = labels == int(r["label"])
            assert diff[region].mean() > 0.0, r


def test_vessels_enhance_and_are_not_lesions(loaded):
    for data in loaded:
        pre, post = _normalised(data)
        vessel = data["vessel"][0] > 0
        assert vessel.sum() > 20
        assert np.median((post - pre)[vessel]) > 0.3
        assert not np.any(vessel & (data["enhancing"][0] > 0))
        assert not np.any(vessel & (data["lesions"][0] > 0))


def test_flair_hyperintense_in_lesions(loaded):
    for data in loaded:
        flair = aligned(data, "FLAIR")
        flair /= np.median(flair[nawm(data)])
        lesions = data["lesions"][0] > 0
        assert np.median(flair[lesions]) > 1.15


def _corr(a: np.ndarray, b: np.ndarray, roi: np.ndarray) -> float:
    return float(np.corrcoef(a[roi], b[roi])[0, 1])


def test_motion_matrix_aligns_post_with_pre(loaded):
    for data in loaded:
        pre, (post, post_geo) = data["T1w"][0], data["T1w_gd"]
        t1w_geo = data["T1w"][1]
        m = np.asarray(data["motion"]["T1w_gd"]["matrix_lps"])
        roi = (data["brain"][0] > 0) & (data["vessel"][0] == 0)
        right = _corr(pre, resample_to(post, post_geo, t1w_geo, m), roi)
        wrong = _corr(pre, resample_to(post, post_geo, t1w_geo, np.linalg.inv(m)), roi)
        assert right > 0.9
        assert right > wrong
        for seq in ("T2w", "FLAIR", "T1w_gd"):
            info = data["motion"][seq]
            r = np.asarray(info["matrix_lps"])[:3, :3]
            assert np.allclose(r @ r.T, np.eye(3), atol=1e-9)
            assert 0 <= info["rotation_deg"] <= 2.0
            assert np.linalg.norm(info["translation_mm"]) <= 2.0 + 1e-9


def test_truth_on_t1w_grid_and_lesion_positions_consistent(loaded):
    for data in loaded:
        grid = data["T1w"][1]
        for key in ("enhancing", "lesions", "brain", "vessel", "WM"):
            assert data[key][1].same_grid(grid), key
        assert data["T1w_gd"][1].same_grid(grid)
        labels = data["enhancing"][0]
        for r in data["rows"]:
            ras = np.array([float(r["centre_x"]), float(r["centre_y"]), float(r["centre_z"])])
            ijk = grid.world_to_index(ras, ras=True)
            expected = np.array([int(r["voxel_i"]), int(r["voxel_j"]), int(r["voxel_k"])])
            assert np.all(np.abs(ijk - expected) <= 0.5 + 1e-6)
            if r["kind"] == "active":
                assert labels[tuple(expected)] == int(r["label"])


def test_thick_slices_run_along_superior_inferior(loaded):
    for data in loaded:
        for seq in ("T2w", "FLAIR"):
            geo = data[seq][1]
            assert geo.orientation == data["T1w"][1].orientation
            si_axis = int(np.argmax(np.abs(geo.direction_matrix[2, :])))
            assert geo.spacing[si_axis] == pytest.approx(4.0)
            assert sorted(geo.spacing)[:2] == [pytest.approx(2.0), pytest.approx(2.0)]
