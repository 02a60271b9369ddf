"""Fixed text of a phantom dataset: dataset description, README, table columns and their sidecars."""

from __future__ import annotations

from gdsynth import __version__

LESION_COLUMNS = (
    "label", "kind", "centre_x", "centre_y", "centre_z", "voxel_i", "voxel_j", "voxel_k",
    "volume_mm3", "n_voxels", "n_enhancing_voxels", "radius_mm", "radius_a_mm", "radius_b_mm",
    "radius_c_mm", "enhancement", "gd_concentration_mM", "t1_change_ms", "t2_change_ms",
    "pd_change", "border", "halo_strength", "lookalike", "onset_session",
)

LESIONS_SIDECAR = {
    "label": {"Description": "Instance id of the lesion in the _desc-enhancing_dseg image "
              "(active lesions); 0 for chronic lesions"},
    "kind": {"Description": "Lesion kind", "Levels": {
        "chronic": "chronic lesion, sharp border", "blackhole": "chronic T1 black hole",
        "active": "active lesion, enhancing after gadolinium"}},
    "centre_x": {"Description": "Lesion centre, world x (RAS)", "Units": "mm"},
    "centre_y": {"Description": "Lesion centre, world y (RAS)", "Units": "mm"},
    "centre_z": {"Description": "Lesion centre, world z (RAS)", "Units": "mm"},
    "voxel_i": {"Description": "Centre voxel index along the T1w file's first axis"},
    "voxel_j": {"Description": "Centre voxel index along the T1w file's second axis"},
    "voxel_k": {"Description": "Centre voxel index along the T1w file's third axis"},
    "volume_mm3": {"Description": "Volume of the ovoid (4/3 pi a b c)", "Units": "mm^3"},
    "n_voxels": {"Description": "Voxels of this lesion in _label-L_desc-all_mask (T1w grid)"},
    "n_enhancing_voxels": {"Description": "Voxels with this label in the enhancing dseg"},
    "radius_mm": {"Description": "Radius of the sphere of equal volume", "Units": "mm"},
    "radius_a_mm": {"Description": "First semi-axis", "Units": "mm"},
    "radius_b_mm": {"Description": "Second semi-axis", "Units": "mm"},
    "radius_c_mm": {"Description": "Third semi-axis", "Units": "mm"},
    "enhancement": {"Description": "Enhancement pattern", "Levels": {
        "none": "no enhancement", "nodular": "solid", "ring": "closed ring",
        "open-ring": "ring with a gap"}},
    "gd_concentration_mM": {"Description": "Peak gadolinium concentration", "Units": "mM"},
    "t1_change_ms": {"Description": "T1 prolongation in the lesion core", "Units": "ms"},
    "t2_change_ms": {"Description": "T2 prolongation in the lesion core", "Units": "ms"},
    "pd_change": {"Description": "Proton density increase in the lesion core"},
    "border": {"Description": "Border profile", "Levels": {
        "sharp": "partial-volume ramp", "ill-defined": "smooth (erfc) profile"}},
    "halo_strength": {"Description": "Strength (0-1) of the oedema-like halo on T2w/FLAIR"},
    "lookalike": {"Description": "Chronic lesion with an active-like halo (true/false)"},
    "onset_session": {"Description": "First session (1-based) in which the lesion exists"},
}

MOTION_CONVENTION = (
    "matrix_lps maps a point of the T1w image's world (LPS mm) to the world position of the "
    "same anatomical point in that image: the transform a rigid registration with the T1w as "
    "fixed and that image as moving finds"
)

PARTICIPANT_COLUMNS = (
    "participant_id", "site", "voxel_order", "sessions", "n_active_lesions", "n_active_exams",
    "n_chronic_lesions", "n_blackholes",
)

PARTICIPANTS_SIDECAR = {
    "participant_id": {"Description": "Subject label"},
    "site": {"Description": "Virtual scanner site (sequence parameters, SNR, bias field)"},
    "voxel_order": {"Description": "Voxel order of the subject's files (e.g. RAS, LPS)"},
    "sessions": {"Description": "Number of sessions"},
    "n_active_lesions": {"Description": "Enhancing lesions, summed over sessions"},
    "n_active_exams": {"Description": "Sessions with at least one enhancing lesion"},
    "n_chronic_lesions": {"Description": "Chronic lesions at the first session"},
    "n_blackholes": {"Description": "Chronic T1 black holes at the first session"},
}

README = """gdsynth digital MS phantom
==========================

Simulated pre-contrast (T1w, T2w, FLAIR) and post-gadolinium (ce-gadolinium T1w) brain MRI of
virtual multiple sclerosis patients, made by `gdsynth phantom`. The anatomy is the MNI152 2009
template (skull-stripped) warped per subject; lesions, vessels, relaxation, gadolinium, scanner
bias, Rician noise, thick slices, motion and voxel orders are simulated. Ground truth (enhancing
lesion instances, all lesions, tissue probabilities, vessels, lesion table, motion) is in
derivatives/phantom/. This is synthetic data: it contains no personal data.
"""


def raw_description(seed: int) -> dict:
    """``dataset_description.json`` of the raw phantom dataset."""
    return {
        "Name": "gdsynth digital MS phantom",
        "BIDSVersion": "1.9.0",
        "DatasetType": "raw",
        "License": "CC0",
        "Authors": ["gdsynth developers"],
        "GeneratedBy": [{
            "Name": "gdsynth",
            "Version": __version__,
            "Description": f"gdsynth phantom (digital MS phantom), seed {seed}",
        }],
    }
