"""Reading a phantom exam back and aligning its images on the T1w grid (for the truth tests)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from scipy import ndimage as ndi

from gdsynth.io import Geometry, read_image, read_tsv
from gdsynth.io.bids import Exam, discover
from gdsynth.phantom import truth_path


def resample_to(moving: np.ndarray, moving_geo: Geometry, fixed_geo: Geometry,
                matrix_lps: np.ndarray | None = None) -> np.ndarray:
    """Sample ``moving`` at ``M p`` for every fixed-grid world point ``p`` (trilinear)."""
    m = np.eye(4) if matrix_lps is None else np.asarray(matrix_lps)
    t = np.linalg.inv(moving_geo.affine_lps) @ m @ fixed_geo.affine_lps
    return ndi.affine_transform(moving, t[:3, :3], offset=t[:3, 3], output_shape=fixed_geo.shape,
                                order=1, mode="constant", cval=0.0)


def exams(root: Path) -> list[Exam]:
    return discover(root)


def load_exam(root: Path, exam: Exam) -> dict:
    """Images, truth maps, lesion rows and motion of one exam."""
    out: dict = {}
    for seq in ("T1w", "T1w_gd", "T2w", "FLAIR"):
        out[seq] = read_image(exam.path(seq))
    t = lambda suffix, **e: read_image(truth_path(root, exam, suffix, **e))  # noqa: E731
    out["enhancing"] = t("dseg", desc="enhancing")
    out["lesions"] = t("mask", label="L", desc="all")
    out["brain"] = t("mask", desc="brain")
    out["vessel"] = t("mask", label="vessel")
    out["WM"] = t("probseg", label="WM")
    out["rows"] = read_tsv(truth_path(root, exam, "lesions", ".tsv"))
    out["motion"] = json.loads(truth_path(root, exam, "headmotion", ".json").read_text())
    return out


def nawm(data: dict) -> np.ndarray:
    """Normal-appearing white matter: WM probability > 0.9, no lesion, no vessel."""
    return (data["WM"][0] > 0.9) & (data["lesions"][0] == 0) & (data["vessel"][0] == 0)


def aligned(data: dict, seq: str) -> np.ndarray:
    """``seq`` resampled onto the T1w grid with its motion matrix."""
    arr, geo = data[seq]
    return resample_to(arr, geo, data["T1w"][1], data["motion"][seq]["matrix_lps"])
