"""Scoring a prepared exam against phantom ground truth (registration, NAWM, enhancement)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from gdsynth.io import read_image
from gdsynth.io.bids import Exam
from gdsynth.preprocess import PreparedVolumes, move_to_grid
from gdsynth.preprocess.register import mean_displacement


def truth_on_prepared(path: Path, vols: PreparedVolumes, *, nearest: bool = True) -> np.ndarray:
    """A truth image (on the native T1w grid) moved onto the prepared grid."""
    arr, geom = read_image(path, allow_constant=True)
    return move_to_grid(arr, geom, vols.geometry, interpolation="nearest" if nearest else "linear")


def score(root: Path, exam: Exam, vols: PreparedVolumes) -> dict:
    """Registration error (mm, mean over brain voxels), NAWM and lesion enhancement medians."""
    truth = Path(root) / "derivatives" / "phantom" / f"sub-{exam.subject}" / "anat"
    pre = exam.prefix
    motion = json.loads((truth / f"{pre}_headmotion.json").read_text())
    brain = truth_on_prepared(truth / f"{pre}_desc-brain_mask.nii.gz", vols) > 0.5
    wm = truth_on_prepared(truth / f"{pre}_label-WM_probseg.nii.gz", vols, nearest=False)
    lesions = truth_on_prepared(truth / f"{pre}_label-L_desc-all_mask.nii.gz", vols) > 0.5
    enh_lab = truth_on_prepared(truth / f"{pre}_desc-enhancing_dseg.nii.gz", vols) > 0.5
    vessels = truth_on_prepared(truth / f"{pre}_label-vessel_mask.nii.gz", vols) > 0.5
    pts = vols.geometry.index_to_world(np.argwhere(brain))
    out: dict = {"registration_error_mm": {}}
    for role, reg in vols.provenance.get("registration", {}).items():
        true = np.asarray(motion[role]["matrix_lps"])
        out["registration_error_mm"][role] = mean_displacement(np.asarray(reg["matrix_lps"]), true, pts)
        out.setdefault("identity_error_mm", {})[role] = mean_displacement(np.eye(4), true, pts)
    from scipy import ndimage as ndi

    nawm = (wm > 0.9) & brain & ~ndi.binary_dilation(lesions | vessels, iterations=2)
    if "T1w_gd" in vols.images:
        enh = vols.images["T1w_gd"] - vols.images["T1w"]
        out["nawm_enhancement_median"] = float(np.median(enh[nawm]))
        out["enhancing_lesion_median"] = float(np.median(enh[enh_lab])) if enh_lab.any() else None
        out["enhancing_voxels"] = int(enh_lab.sum())
    out["nawm_medians"] = {k: float(np.median(v[nawm])) for k, v in vols.images.items()}
    out["mask_dice"] = float(2 * (vols.mask & brain).sum() / (vols.mask.sum() + brain.sum()))
    return out
