"""Tiny fake BIDS + prediction trees (40x48x32 voxels at 2 mm) for the review tests."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest

from gdsynth.io import Geometry, write_image, write_json, write_labels, write_tsv
from gdsynth.io.bids import Exam, derivative_path, write_dataset_description

SHAPE = (40, 48, 32)
RAS = (-1.0, 0.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 1.0)  # LPS direction of a RAS voxel order
LESIONS = [(12, 30, 16, 2.5), (27, 18, 12, 2.0)]  # i, j, k, radius (voxels)


def _grid(shape):
    return np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")


def _brain(shape, seed, scale):
    rng = np.random.default_rng(seed)
    x, y, z = _grid(shape)
    c = [(s - 1) / 2 for s in shape]
    r = ((x - c[0]) / (shape[0] * 0.42)) ** 2 + ((y - c[1]) / (shape[1] * 0.42)) ** 2 + (
        (z - c[2]) / (shape[2] * 0.42)) ** 2
    vol = np.where(r < 1, scale * (0.6 + 0.4 * np.cos(3 * np.sqrt(r))), 0.0)
    return (vol + rng.normal(0, scale * 0.02, shape) * (r < 1)).astype(np.float32)


def make_cohort(root: Path, subjects=("01", "02"), with_real=("01",), reason="lesions found"):
    """Write BIDS raw exams and a prediction folder; return (bids, pred)."""
    bids, pred = root / "bids", root / "pred"
    geometry = Geometry(SHAPE, (2.0, 2.0, 2.0), (38.0, 46.0, -30.0), RAS)
    thick = Geometry((40, 48, 22), (2.0, 2.0, 3.0), (38.0, 46.0, -30.0), RAS)
    x, y, z = _grid(SHAPE)
    labels = np.zeros(SHAPE, np.uint8)
    for n, (i, j, k, rad) in enumerate(LESIONS, start=1):
        labels[(x - i) ** 2 + (y - j) ** 2 + (z - k) ** 2 <= rad**2] = n
    enh = np.where(labels > 0, 0.8, 0.0).astype(np.float32)
    write_dataset_description(pred, "gdsynth predictions")
    for s, sub in enumerate(subjects):
        anat = bids / f"sub-{sub}" / "anat"
        t1 = _brain(SHAPE, s, 800.0)
        write_image(anat / f"sub-{sub}_T1w.nii.gz", t1, geometry)
        write_image(anat / f"sub-{sub}_T2w.nii.gz", _brain((40, 48, 22), s + 10, 600.0), thick)
        write_image(anat / f"sub-{sub}_FLAIR.nii.gz", _brain(SHAPE, s + 20, 500.0)[::-1].copy(), geometry)
        if sub in with_real:
            write_image(anat / f"sub-{sub}_ce-gadolinium_T1w.nii.gz", t1 * (1 + enh), geometry)
        exam = Exam(sub)
        write_image(derivative_path(pred, exam, "T1w", ce="gadolinium", desc="synthetic"),
                    t1 * (1 + 0.9 * enh), geometry)
        write_image(derivative_path(pred, exam, "T1w", desc="enhancement"), enh, geometry)
        write_image(derivative_path(pred, exam, "T1w", desc="uncertainty"), enh * 0.2 + 0.01, geometry)
        write_labels(derivative_path(pred, exam, "dseg", desc="enhancing"), labels, geometry)
        rows = []
        for n, (i, j, k, _rad) in enumerate(LESIONS, start=1):
            ras = geometry.index_to_world(np.array([i, j, k], float), ras=True)
            rows.append({"label": n, "x_mm": ras[0], "y_mm": ras[1], "z_mm": ras[2],
                         "i": i, "j": j, "k": k, "volume_mm3": 60.0 * n, "mean_enhancement": 0.7,
                         "max_enhancement": 0.8, "score": 0.9, "uncertainty": 0.1,
                         "location": "periventricular"})
        write_tsv(derivative_path(pred, exam, "lesions", ".tsv", desc="enhancing"), rows)
        write_json(derivative_path(pred, exam, "summary", ".json", desc="activity"),
                   {"probability_active": 0.9 - 0.5 * s, "n_lesions": len(LESIONS),
                    "refer_for_gadolinium": s == 0, "reason": reason,
                    "detection": {"low_used": 0.3}})
    return bids, pred


@pytest.fixture(scope="session")
def cohort():
    """A session-wide fake cohort (bids, pred); the tests only read it."""
    root = Path(tempfile.mkdtemp(prefix="gdsynth-review-"))
    try:
        yield make_cohort(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
