"""The difference module's rules for a real post − pre: bright-tissue level, tissue gate and its
waiver, surface fraction, and the real-post parameters."""

import numpy as np

from gdsynth.detection import DetectionParams, real_post_params
from gdsynth.detection.context import TissueContext, bright_tissue_level, surface_fraction
from gdsynth.detection.real_post import REAL_POST_DEFAULTS
from gdsynth.detection.suppression import suppression_reason


def _feat(**changes):
    feat = {"volume_mm3": 100.0, "dist_surface_mm": 10.0, "surface_fraction": 0.0,
            "elongation": 1.2, "length_mm": 4.0, "dist_csf_mm": 10.0, "csf_fraction": 0.0,
            "flair_contrast": 1.3, "tissue_contrast": 1.2, "max_enhancement": 0.3}
    feat.update(changes)
    return feat


def test_real_post_params_are_the_difference_detector_with_the_defaults():
    p = real_post_params(min_tissue_ratio=1.2)
    assert p.detector == "difference" and p.min_tissue_ratio == 1.2
    assert real_post_params(detector="combined").detector == "difference"
    for key, value in REAL_POST_DEFAULTS.items():
        if key != "min_tissue_ratio":
            assert getattr(p, key) == value


def test_tissue_gate_rejects_grey_matter_like_candidates_and_is_off_by_default():
    p = real_post_params()
    grey = _feat(tissue_contrast=1.0)
    assert suppression_reason(grey, p) == "not-brighter-than-tissue"
    assert suppression_reason(_feat(tissue_contrast=1.2), p) is None
    assert suppression_reason(grey, DetectionParams()) is None  # synthetic maps: unchanged
    assert suppression_reason(_feat(tissue_contrast=None), p) is None  # no FLAIR/T2w: skipped


def test_strong_enhancement_waives_the_tissue_gate_except_next_to_the_ventricles():
    p = real_post_params()
    strong = _feat(tissue_contrast=1.0, max_enhancement=p.tissue_waiver_enhancement + 0.1)
    assert suppression_reason(strong, p) is None
    plexus = {**strong, "dist_csf_mm": p.periventricular_mm - 1.0}
    assert suppression_reason(plexus, p) == "not-brighter-than-tissue"


def test_surface_rule_needs_a_fraction_of_the_candidate_along_the_surface():
    p = real_post_params()
    touching = _feat(dist_surface_mm=0.0, surface_fraction=0.1)
    along = _feat(dist_surface_mm=0.0, surface_fraction=0.8)
    assert suppression_reason(touching, p) is None
    assert suppression_reason(along, p) == "surface"
    assert suppression_reason(touching, DetectionParams()) == "surface"  # default: any voxel


def test_bright_tissue_level_is_a_percentile_of_non_csf_flair():
    rng = np.random.default_rng(0)
    brain = np.ones((20, 20, 20), bool)
    flair = rng.uniform(0.9, 1.3, brain.shape).astype(np.float32)
    flair[:5] = 0.2  # CSF: excluded
    level = bright_tissue_level(brain, DetectionParams(), flair=flair)
    assert abs(level - np.percentile(flair[5:], 90)) < 1e-6
    t2w_level = bright_tissue_level(brain, DetectionParams(), t2w=flair)
    assert t2w_level is not None
    assert bright_tissue_level(brain, DetectionParams()) is None


def test_surface_fraction_counts_voxels_near_the_brain_edge():
    brain = np.zeros((30, 30, 30), bool)
    brain[5:25, 5:25, 5:25] = True
    ctx = TissueContext(brain=brain, spacing=(1.0, 1.0, 1.0), csf=None, k_range=(5, 24))
    box = (slice(0, 30),) * 3
    comp = np.zeros_like(brain)
    comp[5:9, 10:12, 10:12] = True  # x = 5 (edge, 0 mm), 6 (1 mm), 7, 8 (2, 3 mm)
    assert surface_fraction(ctx, box, comp, 1.5) == 0.5
    inner = np.zeros_like(brain)
    inner[14:16, 14:16, 14:16] = True
    assert surface_fraction(ctx, box, inner, 1.5) == 0.0


def test_real_post_params_round_trip_through_the_card_json():
    import json

    p = real_post_params()
    assert DetectionParams.from_dict(json.loads(json.dumps(p.to_dict(), allow_nan=False))) == p


def test_trim_to_local_peak_keeps_a_weak_lesion_joined_to_a_strong_neighbour():
    from gdsynth.detection.candidates import trim_to_peak

    value = np.zeros((30, 10, 10), np.float32)
    value[2:6, 3:7, 3:7] = 1.0  # strong (a vessel)
    value[6:20, 4:6, 4:6] = 0.15  # low bridge
    value[20:24, 3:7, 3:7] = 0.3  # weak lesion, joined to the vessel by the bridge
    labels = (value > 0.1).astype(np.int32)
    whole = trim_to_peak(labels, value, 0.5)
    assert whole.max() == 1 and not whole[21, 4, 4]  # trimmed against the vessel's peak: lost
    local = trim_to_peak(labels, value, 0.5, radius_mm=4.0, spacing=(1.0, 1.0, 1.0))
    assert local[21, 4, 4] and local[3, 4, 4] and local[21, 4, 4] != local[3, 4, 4]
