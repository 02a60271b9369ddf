"""Tiny fake prepared exams (32x32x16 voxels at 2 mm, NAWM = 1) written with gdsynth.io.

Each exam has a brain ellipsoid, a few lesions hyperintense on T2w/FLAIR, of which some enhance
(post − pre ≈ 0.6 inside them), and an enhancing truth label map on a differently ordered
"native" grid (LPS voxel order), as the phantom truth is.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gdsynth.data.subjects import TrainingExam
from gdsynth.io import Geometry, write_image, write_labels

SHAPE = (32, 32, 16)
SPACING = (2.0, 2.0, 2.0)
RAS = (-1, 0, 0, 0, -1, 0, 0, 0, 1)
GEOMETRY = Geometry(SHAPE, SPACING, (31.0, 31.0, -15.0), RAS)


def _native_geometry() -> Geometry:
    """The same voxels stored in LPS order (axes 0, 1 flipped): a different grid, same space."""
    far = GEOMETRY.index_to_world(np.array([SHAPE[0] - 1, SHAPE[1] - 1, 0]))
    return Geometry(SHAPE, SPACING, tuple(float(v) for v in far), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def fake_exam_arrays(seed: int, n_lesions: int = 3) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in SHAPE], indexing="ij")
    brain = (x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 0.9) ** 2 < 1
    gm = brain & ((x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 0.9) ** 2 > 0.6)
    t1 = np.where(brain, np.where(gm, 0.75, 1.0), 0.1)
    t2 = np.where(brain, np.where(gm, 1.3, 1.0), 0.1)
    fl = np.where(brain, np.where(gm, 1.2, 1.0), 0.1)
    enh = np.zeros(SHAPE, dtype=np.float32)
    truth = np.zeros(SHAPE, dtype=np.uint8)
    idx = np.argwhere(brain & ~gm)
    for n in range(n_lesions):
        c = idx[rng.integers(len(idx))]
        r = ((np.indices(SHAPE).T - c).T ** 2).sum(0)
        blob = r <= rng.integers(2, 5)
        t1 = np.where(blob, 0.8, t1)
        t2 = np.where(blob, 1.6, t2)
        fl = np.where(blob, 1.7, fl)
        if n % 2 == 0:  # every other lesion enhances
            enh[blob] = 0.6
            truth[blob] = n + 1
    noise = {k: rng.normal(0, 0.02, SHAPE) for k in ("t1", "t2", "fl", "gd")}
    pre = t1 + noise["t1"]
    return {"T1w": pre, "T2w": t2 + noise["t2"], "FLAIR": fl + noise["fl"],
            "T1w_gd": t1 + enh + noise["gd"], "mask": brain.astype(np.uint8), "truth": truth}


def write_fake_exam(root: Path, subject: str, seed: int, *, truth: bool = True) -> TrainingExam:
    """Write one fake prepared exam under ``root/sub-<subject>`` and return its TrainingExam."""
    folder = Path(root) / f"sub-{subject}"
    arrays = fake_exam_arrays(seed)
    paths = {}
    for key in ("T1w", "T2w", "FLAIR", "T1w_gd"):
        paths[key] = write_image(folder / f"{key}.nii.gz", arrays[key].astype(np.float32), GEOMETRY)
    paths["mask"] = write_labels(folder / "mask.nii.gz", arrays["mask"], GEOMETRY)
    truth_path = None
    if truth:
        native = arrays["truth"][::-1, ::-1, :]
        truth_path = write_labels(folder / "truth_dseg.nii.gz", native, _native_geometry())
    return TrainingExam(id=f"sub-{subject}", paths=paths, truth=truth_path)


def write_fake_cohort(root: Path, n: int = 3, *, truth: bool = True) -> list[TrainingExam]:
    return [write_fake_exam(root, f"{i:02d}", seed=i, truth=truth) for i in range(n)]
