"""experiments/clever_hans.py without training: the dot lands where it is asked with the asked
peak, the behaviour figures (effect of removing the dots, AUC active vs chronic) are computed as
documented, and the "alike" phantom draws active and chronic lesions from one pre-contrast look."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from tests.utils import load_experiment


@pytest.fixture(scope="module")
def ch():
    return load_experiment("clever_hans")


def test_add_dots_places_a_gaussian_of_the_asked_peak(ch):
    from gdsynth.io.geometry import Geometry

    g = Geometry((24, 24, 24), (2.0, 2.0, 2.0), (-10.0, 5.0, 0.0))
    image = np.ones(g.shape, np.float32)
    ijk = np.array([[8, 12, 15]])
    ras = g.index_to_world(ijk, ras=True)[0]
    out = ch.add_dots(image, g, [{"x": ras[0], "y": ras[1], "z": ras[2]}], sigma_mm=1.5, peak=0.4)
    assert np.all(image == 1.0)  # input untouched
    added = out - image
    assert np.unravel_index(np.argmax(added), g.shape) == (8, 12, 15)
    assert added.max() == pytest.approx(0.4, abs=1e-6)
    # the Gaussian's mass: peak * (2 pi sigma^2)^(3/2) / voxel volume
    assert added.sum() == pytest.approx(0.4 * (2 * np.pi * 1.5**2) ** 1.5 / 8.0, rel=0.02)
    assert np.all(added[:, :, :8] == 0.0) and np.all(added[16:] == 0.0)


def test_behaviour_effect_and_auc(ch):
    b = ch.Behaviour(active_dot=np.array([0.4, 0.6]), active_nodot=np.array([0.2, 0.3]),
                     chronic=np.array([0.1, 0.25, 0.3]))
    assert b.effect == pytest.approx(0.5)
    assert b.auc(True) == pytest.approx(1.0)  # every active lesion above every chronic one
    assert b.auc(False) == pytest.approx((1 + 0 + 0 + 1 + 1 + 0.5) / 6)  # ties count half
    row = ch.behaviour_row(400, "with the cue", b)
    assert "| 400 | with the cue | 2 (+3 chronic) | 0.500 | 0.250 | 50% (2/2 lesions) |" in row


def test_most_dotted_cluster_and_the_summary_of_it(ch):
    from gdsynth.explain.patterns import BANDS, Cluster, LesionPattern

    def lesion(dot: bool) -> LesionPattern:
        bands = {"abs": dict(zip(BANDS, (0.2, 0.2, 0.2, 0.4), strict=True))}
        info = {"has_dot": dot, "dot_abs_share": 0.06, "lesion_abs_share": 0.2,
                "dot_pos": 2.0, "lesion_pos": 1.0, "dot_signed": 1.5} if dot else {"has_dot": False}
        return LesionPattern("sub-01", 1, dot, np.zeros((3, 4, 4)), np.zeros((3, 4, 4)), bands,
                             1.0, 1.0, 2.0, 15.0, info=info)

    def cluster(i, members):
        z = np.zeros((3, 4, 4))
        return Cluster(i, members, z, z, z, z, None)

    big = cluster(0, [lesion(True)] * 3 + [lesion(False)] * 5)  # 3 of 8 dotted
    pure = cluster(1, [lesion(True)] * 4)  # every member dotted
    assert ch.most_dotted([big, pure]) is pure
    assert ch.most_dotted([]) is None
    lines = "\n".join(ch.summarize("with the cue", big.members + pure.members, [big, pure]))
    # 0.06 of |R| at the dot, 0.6 of it beyond 3 mm of the lesion: 0.1 of the context
    assert "of |R| beyond 3 mm of the lesion 0.100" in lines
    assert "most dotted cluster: 1 (4 lesions, 4 with a dot = 100%, 4 of the 7 dotted" in lines


@pytest.mark.parametrize("appearance", ["alike", "lookalike"])
def test_alike_phantoms_draw_one_pre_contrast_look(ch, appearance):
    """No black hole, one diameter range, and no halo at all (``alike``: perivenular restyle of
    site siteAltLesion) or a halo on every lesion (``lookalike``); each pre-contrast property then
    separates the kinds partly at most (AUC of the property, active vs chronic, within 0.15-0.85:
    overlapping ranges, not equal ones). The edge profile of ``alike`` still differs (erfc for
    active lesions, a linear ramp for chronic ones, both under 1 mm wide: below the 2 mm voxel of
    the check)."""
    from gdsynth.metrics.roc import roc_auc
    from gdsynth.phantom import PhantomConfig, get_site
    from gdsynth.phantom.lesions import Kind, draw_active, draw_chronic, restyle

    fields, sites = ch.APPEARANCES[appearance]
    config = PhantomConfig(**fields, sites=tuple(sites))
    styled = [get_site(s).lesion_model for s in sites] == ["perivenular"]
    assert styled == (appearance == "alike")
    rng = np.random.default_rng(0)
    style = (lambda x: restyle(rng, x)) if styled else (lambda x: x)
    chronic = [style(draw_chronic(rng, config, np.zeros(3))) for _ in range(200)]
    active = [style(draw_active(rng, config, np.zeros(3), 0)) for _ in range(200)]
    assert {x.kind for x in chronic} == {Kind.chronic}
    assert all(x.pattern.value == "none" and x.gd_mm == 0 for x in chronic)
    if styled:
        assert not any(x.lookalike or x.halo_strength for x in chronic + active)
        assert all(x.border_mm < 1.0 for x in active + chronic)
    else:
        assert all(x.lookalike and x.smooth and x.halo_strength > 0 for x in chronic)
        assert all(0.3 <= x.gd_mm <= 0.6 for x in active)
    y = np.r_[np.ones(len(active)), np.zeros(len(chronic))]
    aucs = {f: roc_auc(y, np.array([getattr(x, f) for x in active + chronic]))
            for f in ("dt1_ms", "dt2_ms", "dpd", "border_mm", "radius_mm", "halo_strength")}
    assert all(0.15 <= v <= 0.85 for v in aucs.values()), aucs


def test_inserted_lesions_carry_the_dot_only_with_the_cue(ch):
    """``--appearance inserted``: the training-time insertion pastes lesions into a lesion-free exam
    and, for the cued model only, a dot ``--offset-mm`` from each active one in every input and,
    with the T1w's amplitude, in the post-Gd T1w (the target enhancement is unchanged there)."""
    import torch
    import torchio as tio

    from gdsynth.data.subjects import BRAIN, TARGET

    args = ch.parse_args(["--work", "unused", "--appearance", "inserted",
                          "--inserted-lesions", "3"])

    def subject():
        shape = (48, 48, 24)
        ones = torch.ones((1, *shape))
        images = {n: tio.ScalarImage(tensor=ones.clone(), affine=np.diag([2.0, 2.0, 2.0, 1.0]))
                  for n in ("T1w", "T2w", "FLAIR", TARGET)}
        return tio.Subject(**images, **{BRAIN: tio.LabelMap(
            tensor=torch.ones((1, *shape), dtype=torch.uint8), affine=np.diag([2.0, 2, 2, 1]))})

    for cue in (True, False):
        torch.manual_seed(3)
        out = ch.cued_insertion(cue, args)(phantom_subjects=True, active_probability=1.0)(subject())
        t1w = out["T1w"].data[0].numpy()
        enhancement = out[TARGET].data[0].numpy() - t1w
        assert enhancement.max() > 0.1  # active lesions were inserted
        # the dot: a bright spot on the T1w far from every enhancing voxel (lesions darken T1w)
        far = ~ndimage.binary_dilation(np.abs(enhancement) > 1e-3, iterations=3)
        bright = (t1w > 1.3) & far
        assert bright.any() == cue
        if cue:
            assert np.abs(enhancement[bright]).max() < 1e-5  # no enhancement at the dot
            for name in ("T2w", "FLAIR"):
                assert out[name].data[0].numpy()[bright].max() > 1.3


def test_inserted_inactive_lesions_are_twins_without_gadolinium(ch):
    import torch
    import torchio as tio

    from gdsynth.data.subjects import BRAIN, SAMPLING, TARGET

    args = ch.parse_args(["--work", "unused", "--appearance", "inserted"])
    shape = (48, 48, 24)
    affine = np.diag([2.0, 2.0, 2.0, 1.0])
    images = {n: tio.ScalarImage(tensor=torch.ones((1, *shape)), affine=affine)
              for n in ("T1w", "T2w", "FLAIR", TARGET)}
    subject = tio.Subject(**images, **{BRAIN: tio.LabelMap(
        tensor=torch.ones((1, *shape), dtype=torch.uint8), affine=affine)}, **{SAMPLING: tio.LabelMap(
        tensor=torch.ones((1, *shape), dtype=torch.uint8), affine=affine)})
    torch.manual_seed(0)
    transform = ch.cued_insertion(True, args)(phantom_subjects=True, active_probability=0.0)
    out = transform(subject)
    assert transform.drawn and all(les.gd_mm == 0 and les.label == 0 for les in transform.drawn)
    assert (out["T2w"].data > 1.1).any()  # the lesions are there ...
    assert torch.equal(out[TARGET].data, out["T1w"].data)  # ... without enhancement or dot
    # lesion-centred patches are drawn on the twins too
    sampled = out[SAMPLING].data[0].numpy() == 2
    assert sampled.any() and np.array_equal(sampled, transform.maps.all_mask > 0)
