"""Site kinds: the original sites never change, new kinds write valid data with truth, and the
domain-randomized mode is deterministic per seed."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from gdsynth.cli.phantom import SITE_NAMES
from gdsynth.errors import ConfigError
from gdsynth.io.bids import discover
from gdsynth.phantom import PhantomConfig, generate_dataset, get_site
from gdsynth.phantom.config import SITES, Site
from gdsynth.phantom.sites import draw_site
from gdsynth.preprocess.quality import clipped_fraction
from tests.phantom.fingerprint import subject_digest
from tests.phantom.helpers import aligned, load_exam, nawm

#: simulate_subject(0, 11, 2 mm, 2 sessions, active fraction 1) before any new site kind existed
#: (commit 42a3ca5): other experiments depend on these cohorts, they must stay byte-identical.
ORIGINAL_DIGESTS = {
    "siteA": "479fb71ed064da43a7f56236293577f676db8e89205cdc7133a229abfb37ac21",
    "siteB": "6ac79d1986ef7c632abfc9493dd3320beb2a41583d8b2d4606d0ea1686d979a3",
    "siteC": "9806c47950d6592466cd6da7327a21aa6d92981f235f99a5254b9ce36259d73f",
}
NEW_KINDS = tuple(s for s in SITES if s not in ORIGINAL_DIGESTS)


@pytest.mark.parametrize("site", sorted(ORIGINAL_DIGESTS))
def test_original_sites_stay_byte_identical(site):
    cfg = PhantomConfig(resolution=2.0, sites=(site,), active_fraction=1.0, sessions=2)
    assert subject_digest(0, 11, cfg) == ORIGINAL_DIGESTS[site]


def test_cli_help_lists_every_site_kind_and_errors_list_them():
    assert SITE_NAMES == tuple(SITES)
    with pytest.raises(ConfigError, match="siteMPRAGE.*randomAll"):
        PhantomConfig(sites=("siteQ",))
    with pytest.raises(ConfigError, match="mprage"):
        Site("bad", "x", 9, 4, 15, 4500, 95, 9000, 120, 3, 30, 0.1, t1w_family="flash")


def test_randomized_site_is_deterministic_per_seed_and_varies_per_subject():
    cfg = PhantomConfig(resolution=2.0, sites=("randomAll",))
    assert subject_digest(3, 5, cfg) == subject_digest(3, 5, cfg)
    draws = [draw_site(np.random.default_rng(i), get_site("randomAll")) for i in range(40)]
    assert not any(d.randomized for d in draws)
    assert {d.field_strength_t for d in draws} == {1.5, 3.0}
    assert {d.t1w_family for d in draws} == {"spgr", "mprage"}
    assert {d.t2_acquisition for d in draws} == {"2D", "3D"}
    assert {d.lesion_model for d in draws} == {"standard", "perivenular"}
    assert {d.lesion_model for d in (draw_site(np.random.default_rng(i), get_site("random"))
                                     for i in range(20))} == {"standard"}
    assert len({round(d.snr, 6) for d in draws}) == len(draws)


def _normalised(data: dict) -> tuple[np.ndarray, np.ndarray]:
    ref = nawm(data)
    pre, post = data["T1w"][0].astype(float), aligned(data, "T1w_gd")
    return pre / np.median(pre[ref]), post / np.median(post[ref])


def test_every_new_site_kind_writes_valid_data_with_truth(tmp_path):
    root = tmp_path / "bids"
    generate_dataset(root, subjects=len(NEW_KINDS), seed=2, resolution=2, active_fraction=1.0,
                     sites=NEW_KINDS)
    found = discover(root)
    assert len(found) == len(NEW_KINDS)
    for exam, kind in zip(found, NEW_KINDS, strict=True):
        site = get_site(kind)
        assert not exam.missing(("T1w", "T2w", "FLAIR", "T1w_gd"))
        data = load_exam(root, exam)
        meta = {s: json.loads(Path(str(exam.path(s)).replace(".nii.gz", ".json")).read_text())
                for s in ("T1w", "FLAIR")}
        assert meta["T1w"]["InstitutionName"] == kind
        if not site.randomized:
            assert meta["T1w"]["MagneticFieldStrength"] == site.field_strength_t
            assert ("InversionTime" in meta["T1w"]) == (site.t1w_family == "mprage")
            assert meta["FLAIR"]["MRAcquisitionType"] == site.t2_acquisition
            for seq in ("T1w", "T2w", "FLAIR", "T1w_gd"):
                image = data[seq][0]
                assert int(image.max()) <= site.storage_max
                # a scanner saturates vessels, not tissue: at most a sliver of the head clips
                clipped = clipped_fraction(image)
                assert clipped <= 2 * site.storage_clip_fraction, (kind, seq, clipped)
        if site.t2_acquisition == "3D" and not site.randomized:
            assert data["FLAIR"][1].spacing[2] == pytest.approx(2.0)
        if site.slice_gap_mm > 0:
            assert data["FLAIR"][1].spacing[2] == pytest.approx(
                max(site.slice_mm, 4.0) + site.slice_gap_mm)
        labels = data["enhancing"][0].astype(int)
        assert labels.max() >= 1, kind
        pre, post = _normalised(data)
        assert (post - pre)[labels > 0].mean() > 0.05, kind
        assert abs(np.median((post - pre)[nawm(data)])) < 0.05, kind
        flair = aligned(data, "FLAIR")
        flair /= np.median(flair[nawm(data)])
        assert np.median(flair[data["lesions"][0] > 0]) > 1.1, kind


def test_storage_scales_down_rather_than_clip_tissue():
    from gdsynth.phantom.scanner import to_storage

    rng = np.random.default_rng(0)
    # white matter at 100, CSF-like tissue (30 % of the head) at 400, a few vessels at 2000
    image = np.concatenate([np.full(6000, 100.0), np.full(3000, 400.0), np.full(20, 2000.0),
                            np.zeros(1000)]) + rng.normal(0, 1, 10020)
    image = np.maximum(image, 0)
    kept = to_storage(image, 100.0, 3000.0, max_value=4095)  # no limit: "CSF" saturates
    assert (kept == 4095).mean() > 0.25
    limited = to_storage(image, 100.0, 3000.0, max_value=4095, clip_fraction=0.005)
    # the vessels and the top of the "CSF" noise only (rounding: up to twice the fraction)
    assert 20 <= (limited == 4095).sum() <= 2 * 0.005 * (image > 25).sum()
    assert 900 < np.median(limited[:6000]) < 3000  # white matter stored lower than asked
    assert np.median(limited[6000:9000]) < 4095
    # nothing to clip: the white-matter target holds exactly as without a limit
    assert np.array_equal(to_storage(image, 100.0, 50.0, max_value=4095, clip_fraction=0.005),
                          to_storage(image, 100.0, 50.0, max_value=4095))


def test_site_refuses_a_clip_fraction_outside_0_1():
    with pytest.raises(ConfigError, match="storage_clip_fraction"):
        Site("x", "X", 9.0, 4.0, 15.0, 4500.0, 95.0, 9000.0, 120.0, 3.0, 30.0, 0.15,
             storage_clip_fraction=1.5)
