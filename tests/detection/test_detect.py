"""detect_lesions on a synthetic exam: lesions kept, non-lesion enhancement suppressed."""

import numpy as np
import pytest

from gdsynth.detection import DetectionParams, add_world_coordinates, detect_lesions
from gdsynth.detection.context import tissue_context
from gdsynth.detection.features import LOCATIONS, component_features
from gdsynth.detection.suppression import suppression_reason
from gdsynth.errors import ConfigError, GeometryError
from gdsynth.io import Geometry
from tests.detection.synthetic import (
    LESION_A,
    LESION_B,
    SHAPE,
    SPACING,
    VENTRICLE,
    base_exam,
    ellipsoid,
    full_exam,
)

# the synthetic brain is ~31 mL: relax the adult-brain quality limit for these tiny volumes
PARAMS = DetectionParams(min_brain_ml=10.0)


def _near(lesion, centre, tol=1.5):
    return np.linalg.norm(np.array([lesion["i"], lesion["j"], lesion["k"]]) - centre) < tol


@pytest.fixture(scope="module")
def exam():
    return full_exam(seed=0)


@pytest.fixture(scope="module")
def result(exam):
    return detect_lesions(exam.enhancement, **exam.inputs(), params=PARAMS)


def test_exactly_the_two_lesions_are_detected(result):
    assert len(result.lesions) == 2
    assert result.labels.dtype == np.int32
    assert set(np.unique(result.labels)) == {0, 1, 2}
    centres = [LESION_A[0], LESION_B[0]]
    assert all(any(_near(les, c) for les in result.lesions) for c in centres)
    for les in result.lesions:
        assert 0.0 <= les["score"] <= 1.0
        assert les["flair_contrast"] > 1.3
        assert les["location"] in LOCATIONS
        assert (result.labels == les["label"]).sum() * np.prod(SPACING) == les["volume_mm3"]


def test_vessel_plexus_and_edges_suppressed_with_reasons(result):
    reasons = result.summary["suppressed"]
    # surface vessel + brain-edge rim; choroid plexus; ventricle-edge rim (not FLAIR-bright)
    assert reasons == {"too-large": 0, "surface": 2, "vessel": 0, "csf": 1, "not-flair-bright": 1,
                       "not-brighter-than-tissue": 0}
    plexus = [s for s in result.suppressed if s["reason"] == "csf"][0]
    assert _near(plexus, VENTRICLE[0])
    vessel = [s for s in result.suppressed if s["reason"] == "surface" and s["k"] > 27]
    assert len(vessel) == 1 and vessel[0]["elongation"] > 2.0


def test_labels_ordered_by_decreasing_score(result):
    scores = [les["score"] for les in result.lesions]
    assert [les["label"] for les in result.lesions] == [1, 2]
    assert scores == sorted(scores, reverse=True)
    assert _near(result.lesions[0], LESION_A[0])  # stronger, larger lesion first


def test_min_volume_respected(exam, result):
    small = min(les["volume_mm3"] for les in result.lesions)
    params = PARAMS.replace(min_volume_mm3=small + 1.0)
    out = detect_lesions(exam.enhancement, **exam.inputs(), params=params)
    assert len(out.lesions) == 1
    assert all(les["volume_mm3"] >= small + 1.0 for les in out.lesions)


def test_patient_summary_refers_active_exam(result):
    s = result.summary
    assert s["n_lesions"] == 2 and s["refer_for_gadolinium"] is True
    assert s["probability_active"] > 0.5 and s["quality_flags"] == []


def test_all_zero_enhancement_gives_nothing():
    exam = base_exam(seed=1)
    out = detect_lesions(np.zeros(SHAPE, np.float32), **exam.inputs(), params=PARAMS)
    assert out.lesions == [] and not out.labels.any()
    assert out.summary["probability_active"] < 0.01
    assert out.summary["refer_for_gadolinium"] is False
    assert "no active lesion" in out.summary["reason"]


def test_empty_brain_mask_is_referred_for_quality(exam):
    inputs = {**exam.inputs(), "brain_mask": np.zeros(SHAPE, bool)}
    out = detect_lesions(np.zeros(SHAPE, np.float32), **inputs, params=PARAMS)
    assert out.summary["refer_for_gadolinium"] is True
    assert out.summary["reason"].startswith("quality: empty brain mask")


def test_implausible_brain_or_no_white_matter_is_referred():
    exam = base_exam(seed=2)
    zero = np.zeros(SHAPE, np.float32)
    out = detect_lesions(zero, **exam.inputs())  # default limits: 31 mL is no adult brain
    assert out.summary["refer_for_gadolinium"] and "brain volume" in out.summary["reason"]
    inputs = {**exam.inputs(), "t1w": exam.t1w * 3.0}  # nothing near NAWM = 1
    out = detect_lesions(zero, **inputs, params=PARAMS)
    assert out.summary["refer_for_gadolinium"] and "no white matter" in out.summary["reason"]


def test_tubular_vessel_inside_brain_is_rejected_by_shape():
    exam = base_exam(seed=3)
    grids = np.meshgrid(*[np.arange(s) for s in SHAPE], indexing="ij")
    tube = ((grids[1] - 16) ** 2 + (grids[2] - 14) ** 2 <= 1) & (grids[0] >= 12) & (grids[0] <= 32)
    labels = tube.astype(np.int32)
    exam.flair[tube] = 1.6  # even FLAIR-bright, the shape gives it away
    ctx = tissue_context(exam.brain, SPACING, PARAMS, t1w=exam.t1w, t2w=exam.t2w, flair=exam.flair)
    feat = component_features(labels, tube * 1.0, ctx, PARAMS, flair=exam.flair)[0]
    assert feat["elongation"] > PARAMS.max_elongation
    assert suppression_reason(feat, PARAMS) == "vessel"


def test_location_classes():
    exam = base_exam(seed=4)
    labels = np.zeros(SHAPE, np.int32)
    labels[ellipsoid((24.0, 30.0, 27.5), (2, 2, 1.5))] = 1  # just above the ventricle
    labels[ellipsoid(LESION_A[0], (2, 2, 2))] = 2
    labels[ellipsoid((24.0, 5.5, 20.0), (1.5, 1.5, 1.5))] = 3  # near the brain edge
    labels[ellipsoid((24.0, 24.0, 6.5), (1.5, 1.5, 1.5))] = 4  # lowest slices
    ctx = tissue_context(exam.brain, SPACING, PARAMS, t1w=exam.t1w, flair=exam.flair)
    feats = component_features(labels, np.ones(SHAPE), ctx, PARAMS)
    assert [f["location"] for f in feats] == [
        "periventricular", "deep-white-matter", "juxtacortical", "infratentorial-unknown"
    ]


def test_world_coordinates_use_ras_geometry(result):
    geometry = Geometry(SHAPE, SPACING, (10.0, -20.0, 5.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    out = add_world_coordinates(result.lesions, geometry)
    les = out[0]
    expected = geometry.index_to_world(np.array([les["i"], les["j"], les["k"]]), ras=True)
    np.testing.assert_allclose([les["x_mm"], les["y_mm"], les["z_mm"]], expected)
    assert "x_mm" not in result.lesions[0]  # inputs untouched


def test_shape_mismatch_raises(exam):
    with pytest.raises(GeometryError, match="flair shape"):
        detect_lesions(exam.enhancement, **{**exam.inputs(), "flair": exam.flair[:-1]})


def _head_map(exam):
    head = np.zeros(SHAPE, np.float32)
    head[ellipsoid(*LESION_A)] = 0.9
    head[ellipsoid(*LESION_B)] = 0.8
    extra = ellipsoid((14.0, 32.0, 18.0), (2.0, 2.0, 2.0))  # seen by the head only
    head[extra] = 0.85
    exam.flair[ellipsoid((14.0, 32.0, 18.0), (3.0, 3.0, 3.0))] = 1.6
    return head


@pytest.mark.parametrize("detector, n_expected", [("difference", 2), ("segmentation", 3), ("combined", 3)])
def test_detectors_with_segmentation_head(detector, n_expected):
    exam = full_exam(seed=5)
    heads = {"enhancing": _head_map(exam)}
    params = PARAMS.replace(detector=detector)
    out = detect_lesions(exam.enhancement, **exam.inputs(), params=params, heads=heads)
    assert len(out.lesions) == n_expected
    assert out.summary["detector"] == detector
    assert all(les["head_max"] is not None for les in out.lesions)
    extra = [les for les in out.lesions if _near(les, (14.0, 32.0, 18.0))]
    assert len(extra) == (0 if detector == "difference" else 1)
    if detector == "combined":  # both evidences: the lesions with enhancement outrank the extra one
        assert out.lesions[-1] is extra[0]


def test_segmentation_detector_needs_the_head(exam):
    with pytest.raises(ConfigError, match="enhancing"):
        detect_lesions(exam.enhancement, **exam.inputs(), params=PARAMS.replace(detector="segmentation"))


def test_non_finite_enhancement_is_referred_for_quality(exam):
    enh = exam.enhancement.copy()
    enh[24, 24, 20] = np.nan
    out = detect_lesions(enh, **exam.inputs(), params=PARAMS)
    assert out.summary["refer_for_gadolinium"] is True
    assert "non-finite" in out.summary["reason"]
    assert len(out.lesions) == 2  # the NaN voxel is treated as 0, detection still runs


def test_noisy_offset_map_does_not_merge_into_one_brain_wide_component():
    """A real-difference-like map (noise + smooth offset) still gives the lesion, not the brain."""
    exam = full_exam(seed=6)
    rng = np.random.default_rng(6)
    grids = np.meshgrid(*[np.linspace(0, 1, s) for s in SHAPE], indexing="ij")
    noisy = exam.enhancement + 0.15 + 0.1 * grids[0] + rng.normal(0, 0.6, SHAPE)
    out = detect_lesions(noisy.astype(np.float32), **exam.inputs(), params=PARAMS)
    assert out.summary["high_used"] > PARAMS.high  # thresholds raised to the noise
    assert out.summary["suppressed"]["too-large"] == 0
    assert any(_near(les, LESION_A[0]) for les in out.lesions)
    assert len(out.lesions) <= 3


def test_too_large_component_is_suppressed(exam):
    out = detect_lesions(exam.enhancement, **exam.inputs(), params=PARAMS.replace(max_volume_mm3=80.0))
    assert out.summary["suppressed"]["too-large"] >= 1
    assert all(les["volume_mm3"] <= 80.0 for les in out.lesions)


def test_non_3d_input_raises():
    with pytest.raises(GeometryError, match="3D"):
        detect_lesions(np.zeros((10, 10)), brain_mask=np.ones((10, 10), bool), spacing=(1.0, 1.0))


def test_uncertainty_is_reported_and_lowers_the_score(exam, result):
    unc = np.zeros(SHAPE, np.float32)
    unc[ellipsoid(LESION_B[0], (4.0, 4.0, 4.0))] = 0.5  # the model is unsure about lesion B
    out = detect_lesions(exam.enhancement, **exam.inputs(), params=PARAMS, uncertainty=unc)
    by_centre = {_near(les, LESION_B[0]): les for les in out.lesions}
    before = {_near(les, LESION_B[0]): les for les in result.lesions}
    assert by_centre[True]["mean_uncertainty"] == pytest.approx(0.5)
    assert by_centre[False]["mean_uncertainty"] == 0.0
    assert by_centre[True]["score"] < before[True]["score"]
    assert by_centre[False]["score"] == pytest.approx(before[False]["score"])
