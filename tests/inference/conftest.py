"""Fixtures for inference tests: tiny exams on disk, a tiny exported model, a simple preparation.

``simple_prepare`` is the test double for :func:`gdsynth.inference.prep.prepare_exam`: it builds a
:class:`PreparedExam` from gdsynth's real preprocessing pieces (reorientation to RAS, world-space
resampling of T2w/FLAIR onto it, brain mask, division by the median in the mask) without the
registration, so cohort tests stay fast and do not depend on the full preparation.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from gdsynth.io import Geometry, read_image, write_image
from gdsynth.io.bids import Exam
from gdsynth.models.card import ModelCard
from gdsynth.models.folder import save_model_folder
from gdsynth.models.unet import UNetGenerator
from tests.utils import ORIENTATIONS, oblique_direction

torch.set_num_threads(1)

SHAPE = (22, 26, 18)  # 2 mm voxels: 44 x 52 x 36 mm


def head(shape, seed: int, lesion: bool = True) -> np.ndarray:
    """A smooth ellipsoid 'brain' with noise and a bright blob, float32."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    r = x**2 + y**2 + z**2
    vol = np.where(r < 0.7, 300.0, 20.0) + rng.normal(0, 5, shape)
    if lesion:
        vol += 200 * np.exp(-((x - 0.2) ** 2 + y**2 + (z + 0.1) ** 2) / 0.02)
    return vol.astype(np.float32)


def grid(orientation: str, shape=SHAPE, spacing=(2.0, 2.0, 2.0)) -> Geometry:
    """A grid in ``orientation`` whose centre is at world (3, -4, 5) mm whatever its voxel order."""
    direction = oblique_direction() if orientation == "oblique" else ORIENTATIONS[orientation]
    d = np.asarray(direction, dtype=float).reshape(3, 3)
    origin = np.array([3.0, -4.0, 5.0]) - d @ ((np.asarray(shape) - 1) * np.asarray(spacing) / 2)
    return Geometry(shape, spacing, tuple(origin), direction)


def write_exam(root: Path, subject: str, orientation: str = "RAS", seed: int = 0) -> Exam:
    """A raw BIDS exam: T1w/T2w in ``orientation``, a thick-slice (4 mm) axial FLAIR in RAS."""
    anat = root / f"sub-{subject}" / "anat"
    g = grid(orientation)
    paths = {}
    for i, seq in enumerate(("T1w", "T2w")):
        paths[seq] = anat / f"sub-{subject}_{seq}.nii.gz"
        write_image(paths[seq], head(g.shape, seed + i), g)
    fl = grid("RAS", (22, 26, 9), (2.0, 2.0, 4.0))
    paths["FLAIR"] = anat / f"sub-{subject}_FLAIR.nii.gz"
    write_image(paths["FLAIR"], head(fl.shape, seed + 2), fl)
    return Exam(subject, None, paths["T1w"], paths["T2w"], paths["FLAIR"])


def simple_prepare(exam: Exam, card: ModelCard):
    """Prepared exam without registration (see module docstring)."""
    from gdsynth.inference.prep import PreparedExam
    from gdsynth.preprocess.mask import brain_mask
    from gdsynth.preprocess.orient import reorient_to_ras
    from gdsynth.preprocess.resample import resample

    exam.require(("T1w", *card.inputs))
    t1, native = read_image(exam.t1w)
    t1, prepared = reorient_to_ras(t1, native)
    vols = {"T1w": t1}
    for seq in ("T2w", "FLAIR"):
        arr, g = read_image(exam.path(seq))
        vols[seq] = resample(arr, g, prepared)
    mask = brain_mask([vols["T1w"], vols["FLAIR"]], prepared.spacing, erode=2.0, close=2.0)
    medians = {s: float(np.median(v[mask])) for s, v in vols.items()}
    vols = {s: (v / medians[s]).astype(np.float32) for s, v in vols.items()}
    return PreparedExam(vols, mask, prepared, native, medians["T1w"],
                        {"nawm_median": medians})


def make_model(folder: Path, *, mode: str = "2.5d", heads=("enhancing",), dropout: float = 0.5,
               seed: int = 0) -> Path:
    """Export a tiny randomly initialised U-Net (depth 2, 4 features) with its card."""
    context = 1 if mode == "2.5d" else 0
    per = 2 * context + 1
    kwargs = {"in_channels": 3 * per, "spatial_dims": 3 if mode == "3d" else 2, "features": 4,
              "depth": 2, "dropout": dropout, "heads": list(heads), "max_features": 8}
    torch.manual_seed(seed)
    gen = UNetGenerator(**kwargs)
    card = ModelCard(architecture={"name": "unet", "kwargs": kwargs}, mode=mode,
                     context_slices=context, heads=list(heads), name="tiny-test",
                     patch_size=[16, 16, 16] if mode == "3d" else None)
    return save_model_folder(folder, gen, card)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return make_model(tmp_path_factory.mktemp("model") / "tiny")


@pytest.fixture()
def cohort(tmp_path) -> Path:
    """A BIDS folder with 5 exams stored RAS, LPS, oblique, PIR, LAS."""
    root = tmp_path / "bids"
    for i, orient in enumerate(("RAS", "LPS", "oblique", "PIR", "LAS")):
        write_exam(root, f"{i + 1:02d}", orient, seed=10 * i)
    return root
