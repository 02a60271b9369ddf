"""Parameters do what they claim (in memory, 2 mm), and the building blocks behave."""

from __future__ import annotations

import numpy as np
import pytest

from gdsynth.errors import ConfigError
from gdsynth.io import Geometry
from gdsynth.phantom import PhantomConfig, get_site, simulate_subject
from gdsynth.phantom.config import ORIENTATIONS, TISSUES
from gdsynth.phantom.scanner import reorient, thick_slice_grid
from gdsynth.phantom.signal import draw_protocol, signal

TINY = PhantomConfig(resolution=2.0)


def test_active_fraction_zero_and_one():
    for index in range(2):
        none = simulate_subject(index, 3, PhantomConfig(resolution=2.0, active_fraction=0.0))
        exam = none.exams[0]
        assert exam.truth["enhancing"].max() == 0
        assert all(r["kind"] != "active" for r in exam.lesions)
        assert exam.n_active == 0
    every = simulate_subject(0, 3, PhantomConfig(resolution=2.0, active_fraction=1.0))
    assert every.exams[0].n_active >= 1 and every.exams[0].truth["enhancing"].max() >= 1


def test_sessions_share_anatomy_and_heal_old_active_lesions():
    subject = simulate_subject(0, 5, PhantomConfig(resolution=2.0, active_fraction=1.0,
                                                   sessions=2))
    first, second = subject.exams
    assert (first.exam.session, second.exam.session) == ("01", "02")
    assert np.array_equal(first.truth["brain"], second.truth["brain"])
    onset_one = [r for r in second.lesions if r["onset_session"] == 1]
    assert all(r["kind"] in ("chronic", "blackhole") for r in onset_one)
    assert all(r["onset_session"] == 2 for r in second.lesions if r["kind"] == "active")


@pytest.mark.parametrize("resolution, thick", [(2.0, 4.0), (1.0, 3.0)])
def test_resolution_sets_voxel_sizes(resolution, thick):
    cfg = PhantomConfig(resolution=resolution, sites=("siteA",), orientations=("RAS",))
    exam = simulate_subject(0, 1, cfg).exams[0]
    assert exam.images["T1w"][1].spacing == (resolution,) * 3
    assert exam.images["FLAIR"][1].spacing == (resolution, resolution, thick)


def test_sites_differ_and_are_assigned_round_robin():
    cfg = PhantomConfig(resolution=2.0, sites=("siteA", "siteB"))
    a, b = simulate_subject(0, 2, cfg), simulate_subject(1, 2, cfg)
    assert (a.site, b.site) == ("siteA", "siteB")
    ta = a.exams[0].sidecars["T1w"]["RepetitionTime"] * 1000
    tb = b.exams[0].sidecars["T1w"]["RepetitionTime"] * 1000
    assert ta == pytest.approx(get_site("siteA").t1w_tr_ms, rel=0.15)
    assert tb == pytest.approx(get_site("siteB").t1w_tr_ms, rel=0.15)
    assert a.exams[0].protocol.snr > b.exams[0].protocol.snr


def test_subjects_differ_in_anatomy():
    a, b = (simulate_subject(i, 0, TINY).exams[0] for i in (0, 1))
    wa, wb = (reorient(e.truth["WM"], e.geometry, "RAS")[0] for e in (a, b))
    assert wa.shape == wb.shape
    assert np.abs(wa - wb).mean() > 0.02


def test_invalid_choices_list_valid_ones():
    with pytest.raises(ConfigError, match="siteA"):
        PhantomConfig(sites=("siteX",))
    with pytest.raises(ConfigError, match="voxel order"):
        PhantomConfig(orientations=("RRR",))
    with pytest.raises(ConfigError, match="resolution"):
        PhantomConfig(resolution=1.5)


@pytest.mark.parametrize("code", ORIENTATIONS)
def test_reorient_keeps_world_positions(code):
    rng = np.random.default_rng(0)
    geo = Geometry((5, 6, 7), (1.0, 2.0, 3.0), (10.0, -4.0, 2.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    arr = rng.random(geo.shape)
    out, new = reorient(arr, geo, code)
    assert new.orientation == code
    for ijk in [(0, 0, 0), (4, 5, 6), (2, 3, 1)]:
        world = geo.index_to_world(np.array(ijk, float))
        idx = np.rint(new.world_to_index(world)).astype(int)
        assert out[tuple(idx)] == arr[ijk]
    back, back_geo = reorient(out, new, "RAS")
    assert np.array_equal(back, arr) and back_geo.same_grid(geo)


def test_thick_grid_covers_reference():
    ref = Geometry((10, 10, 30), (1.0, 1.0, 1.0), (0.0, 0.0, 0.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    thick = thick_slice_grid(ref, 4.0)
    assert thick.shape == (10, 10, 8) and thick.spacing == (1.0, 1.0, 4.0)
    centre = lambda g: g.index_to_world((np.array(g.shape) - 1) / 2)  # noqa: E731
    assert np.allclose(centre(ref), centre(thick))


def test_signal_contrasts():
    protocol = draw_protocol(np.random.default_rng(0), get_site("siteA"), TINY)
    s = {k: {seq: float(signal(seq, t.pd, t.t1_ms, t.t2_ms, protocol))
             for seq in ("T1w", "T2w", "FLAIR")} for k, t in TISSUES.items()}
    assert s["WM"]["T1w"] > s["GM"]["T1w"] > s["CSF"]["T1w"]
    assert s["CSF"]["T2w"] > s["GM"]["T2w"] > s["WM"]["T2w"]
    assert s["CSF"]["FLAIR"] < 0.2 * s["WM"]["FLAIR"]  # CSF nulled
    wm = TISSUES["WM"]
    pre = signal("T1w_gd", wm.pd, wm.t1_ms, wm.t2_ms, protocol, gd_mm=0.0)
    post = signal("T1w_gd", wm.pd, wm.t1_ms, wm.t2_ms, protocol, gd_mm=0.2)
    assert post > 1.1 * pre


def test_voxel_order_changes_storage_not_content():
    """The same subject stored as RAS and as PIR: different arrays/grids, identical in world."""
    stored = {}
    for code in ("RAS", "PIR"):
        cfg = PhantomConfig(resolution=2.0, orientations=(code,), active_fraction=1.0)
        stored[code] = simulate_subject(0, 11, cfg).exams[0]
    ras, pir = stored["RAS"], stored["PIR"]
    assert pir.geometry.orientation == "PIR" and ras.geometry.orientation == "RAS"
    assert pir.images["T1w"][0].shape != ras.images["T1w"][0].shape
    for seq in ("T1w", "T1w_gd", "T2w", "FLAIR"):
        back, geo = reorient(*pir.images[seq], "RAS")
        assert geo.same_grid(ras.images[seq][1])
        assert np.array_equal(back, ras.images[seq][0])
    back, _ = reorient(pir.truth["enhancing"], pir.geometry, "RAS")
    assert np.array_equal(back, ras.truth["enhancing"]) and back.max() >= 1
    centres = lambda e: [(r["centre_x"], r["centre_y"], r["centre_z"]) for r in e.lesions]  # noqa: E731
    assert centres(pir) == centres(ras)


@pytest.mark.parametrize("slice_mm", [None, 3.0])
def test_acquire_puts_point_p_at_motion_of_p(slice_mm):
    """Motion convention: anatomy at T1w-world point p appears at M p in the moved image."""
    from scipy import ndimage as ndi

    from gdsynth.phantom.scanner import Motion, acquire

    grid = Geometry((60, 60, 60), (1.0,) * 3, (30.0, 30.0, -30.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    blob = np.zeros(grid.shape, np.float32)
    blob[20, 35, 28] = 1000.0
    blob = ndi.gaussian_filter(blob, 1.5)
    p = grid.index_to_world(np.array([20.0, 35.0, 28.0]))
    motion = Motion(5.0, np.array([0.3, 0.2, 0.93]) / np.linalg.norm([0.3, 0.2, 0.93]),
                    np.array([3.0, -2.0, 1.0]), np.array([1.0, 2.0, 3.0]))
    target = grid if slice_mm is None else thick_slice_grid(grid, slice_mm)
    moved = acquire(blob, grid, target, motion, slice_mm)
    found = target.index_to_world(np.array(ndi.center_of_mass(moved)))
    expected = (motion.matrix_lps @ np.r_[p, 1.0])[:3]
    assert np.allclose(found, expected, atol=0.1)


@pytest.mark.parametrize("fraction", [0.0, 0.3, 0.5, 1.0])
def test_share_of_active_exams_follows_active_fraction(fraction):
    from gdsynth.phantom.simulate import exam_is_active

    for n in (10, 40):
        active = sum(exam_is_active(3, i, 0, fraction) for i in range(n))
        assert abs(active - fraction * n) <= 1.5
