"""Rules that reject enhancement that is not a lesion, applied to each candidate's features.

Rules, in order (the first that fires is the reason recorded; a rule whose input is missing is
skipped):

0. ``too-large`` — over ``max_volume_mm3``: the thresholds failed (brain-wide enhancement).
1. ``surface`` — the component reaches within ``surface_margin_mm`` of the outermost brain voxels
   with at least ``surface_fraction_min`` of its voxels (0: any voxel): dural sinuses,
   meningeal/cortical vessels and misregistration rims at the brain border, which lie along the
   surface; a juxtacortical lesion that merely touches it is kept when the fraction is > 0.
2. ``vessel`` — tubular: ``elongation`` (major/second axis) > ``max_elongation`` and
   ``length_mm`` ≥ ``elongation_min_length_mm`` (short specks are not judged on shape).
3. ``csf`` — choroid plexus and ventricular-edge artefacts: ``csf_fraction`` ≥ ``csf_fraction_max``
   (the component sits in CSF or is mostly surrounded by it; a periventricular lesion touches
   CSF on one side only). Needs a CSF estimate (T1w/T2w/FLAIR).
4. ``not-flair-bright`` — gating by the pre-contrast appearance: active MS lesions are
   FLAIR/T2w-hyperintense, so ``flair_contrast`` (vs local NAWM) < ``min_flair_ratio`` is rejected.
   Needs FLAIR or T2w.
5. ``not-brighter-than-tissue`` — ``tissue_contrast`` (mean FLAIR, else T2w, over the exam's
   bright-tissue level: the 90th percentile of the non-CSF brain, i.e. grey matter) <
   ``min_tissue_ratio`` (0 = off). Normal grey matter enhances (higher blood volume than white
   matter) and is 0.9–1.2 × NAWM on FLAIR, so on a noisy real post − pre its noise peaks pass
   rule 4; an active lesion is brighter than cortex. Choroid plexus fails it too. Waived when
   ``max_enhancement`` ≥ ``tissue_waiver_enhancement`` farther than ``periventricular_mm`` from
   CSF: an enhancement far above normal grey matter's is no noise peak of the cortex, whatever
   the FLAIR (next to the ventricles it is the choroid plexus's, so the rule stays).
"""

from __future__ import annotations

from typing import Any

from gdsynth.detection.params import DetectionParams

REASONS = ("too-large", "surface", "vessel", "csf", "not-flair-bright", "not-brighter-than-tissue")


def _strong_enhancement_away_from_csf(feat: dict[str, Any], params: DetectionParams) -> bool:
    """Enhancement ≥ ``tissue_waiver_enhancement`` (> 0; 0 = no waiver) farther than
    ``periventricular_mm`` from CSF (next to the ventricles strong enhancement is the choroid
    plexus's)."""
    if params.tissue_waiver_enhancement <= 0:
        return False
    far = feat["dist_csf_mm"] is None or feat["dist_csf_mm"] > params.periventricular_mm
    return far and feat["max_enhancement"] >= params.tissue_waiver_enhancement


def suppression_reason(feat: dict[str, Any], params: DetectionParams) -> str | None:
    """The first rule that rejects the candidate ``feat`` (see module doc), or ``None`` to keep it."""
    if feat["volume_mm3"] > params.max_volume_mm3:
        return "too-large"
    if feat["dist_surface_mm"] <= params.surface_margin_mm and (
        feat.get("surface_fraction", 1.0) >= params.surface_fraction_min
    ):
        return "surface"
    if (
        feat["elongation"] > params.max_elongation
        and feat["length_mm"] >= params.elongation_min_length_mm
    ):
        return "vessel"
    if feat["dist_csf_mm"] is not None and feat["csf_fraction"] >= params.csf_fraction_max:
        return "csf"
    if feat["flair_contrast"] is not None and feat["flair_contrast"] < params.min_flair_ratio:
        return "not-flair-bright"
    if (
        params.min_tissue_ratio > 0
        and feat.get("tissue_contrast") is not None
        and feat["tissue_contrast"] < params.min_tissue_ratio
        and not _strong_enhancement_away_from_csf(feat, params)
    ):
        return "not-brighter-than-tissue"
    return None
