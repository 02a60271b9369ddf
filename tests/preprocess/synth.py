"""Phantom-like synthetic exams with known motion, for preprocessing tests and the benchmark.

The anatomy is analytic in the T1w world (LPS mm): an ellipsoidal brain (white matter, a cortical
grey-matter rim, deep grey blobs, ventricles), subarachnoid CSF, optionally a dark skull and a
bright scalp shell, white-matter lesions (some enhancing after gadolinium). Each sequence is
sampled on its own grid (voxel order, thick slices) through a known rigid motion ``matrix_lps``
(T1w world -> image world, ITK convention), with a bias field, noise and an arbitrary scale.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from gdsynth.io import Geometry, write_image, write_json
from tests.utils import ORIENTATIONS

# label codes
BG, WM, GM, CSF, SKULL, SCALP, LESION, ENH = 0, 1, 2, 3, 4, 5, 6, 7

INTENSITY = {  # relative signal per label: BG WM GM CSF SKULL SCALP LESION ENH(pre)
    "T1w": [0.0, 1.0, 0.68, 0.25, 0.05, 1.15, 0.6, 0.62],
    "T2w": [0.0, 0.5, 0.72, 1.5, 0.05, 0.8, 1.1, 1.15],
    "FLAIR": [0.0, 0.6, 0.82, 0.12, 0.05, 0.75, 1.35, 1.4],
}
GD_EXTRA = 0.55  # post-Gd T1w increase in enhancing lesions (in T1w WM units)
CENTRE = np.array([2.0, -10.0, 12.0])
RADII = np.array([62.0, 74.0, 56.0])
ENH_CENTRES = [(-25.0, -30.0, 10.0), (22.0, 10.0, 20.0)]
LESION_CENTRES = [(-20.0, 20.0, 5.0), (25.0, -25.0, -5.0)]
LESION_RADIUS = 5.0


def rigid(angles_deg=(0.0, 0.0, 0.0), shift=(0.0, 0.0, 0.0), centre=CENTRE) -> np.ndarray:
    """4x4 rigid matrix rotating about ``centre`` (LPS mm) then shifting."""
    ax, ay, az = np.deg2rad(angles_deg)
    rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
    ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
    rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
    r = rz @ ry @ rx
    m = np.eye(4)
    m[:3, :3] = r
    m[:3, 3] = np.asarray(centre) + np.asarray(shift) - r @ np.asarray(centre)
    return m


def labels_at(p: np.ndarray, *, skull: bool) -> np.ndarray:
    """Label of each T1w-world point (N, 3) LPS mm."""
    q = (p - CENTRE) / RADII
    r = np.sqrt((q**2).sum(axis=1))
    lab = np.full(len(p), BG, np.uint8)
    if skull:
        lab[r < 1.22] = SCALP
        lab[r < 1.13] = SKULL
    lab[r < 1.06] = CSF
    brain = r < 1.0
    lab[brain] = WM
    texture = np.sin(p[:, 0] / 6.0) * np.sin(p[:, 1] / 7.0) * np.sin(p[:, 2] / 5.0)
    lab[brain & ((r > 0.86 + 0.05 * texture) | (texture > 0.55))] = GM
    vent = np.sqrt((((p - CENTRE - [8.0, 0, 0]) / [6.0, 22.0, 9.0]) ** 2).sum(1))
    vent2 = np.sqrt((((p - CENTRE + [8.0, 0, 0]) / [6.0, 22.0, 9.0]) ** 2).sum(1))
    lab[(vent < 1) | (vent2 < 1)] = CSF
    for c in LESION_CENTRES:
        lab[np.linalg.norm(p - CENTRE - c, axis=1) < LESION_RADIUS] = LESION
    for c in ENH_CENTRES:
        lab[np.linalg.norm(p - CENTRE - c, axis=1) < LESION_RADIUS] = ENH
    return lab


def bias(p: np.ndarray, strength: float) -> np.ndarray:
    """Smooth multiplicative field over the head."""
    q = (p - CENTRE) / 100.0
    return np.exp(strength * (0.8 * q[:, 0] - 0.6 * q[:, 1] + 0.5 * q[:, 2] ** 2 - 0.3 * q[:, 0] * q[:, 2]))


def render(sequence: str, geometry: Geometry, matrix_lps: np.ndarray, *, skull: bool, seed: int,
           scale: float, bias_strength: float = 0.25, noise: float = 0.02,
           post: bool = False, slice_samples: int = 1) -> np.ndarray:
    """Sample ``sequence`` on ``geometry`` through motion ``matrix_lps`` (T1w world -> image world).

    ``slice_samples`` > 1 averages sub-samples along the thickest axis (partial volume).
    """
    thick = int(np.argmax(geometry.spacing))
    idx = np.indices(geometry.shape).reshape(3, -1).T.astype(float)
    inv = np.linalg.inv(matrix_lps)
    acc = np.zeros(len(idx))
    offsets = np.linspace(-0.5, 0.5, slice_samples + 2)[1:-1] if slice_samples > 1 else [0.0]
    for off in offsets:
        sub = idx.copy()
        sub[:, thick] += off
        q = geometry.index_to_world(sub)  # image world
        p = q @ inv[:3, :3].T + inv[:3, 3]  # anatomy (T1w world)
        lab = labels_at(p, skull=skull)
        val = np.asarray(INTENSITY[sequence])[lab]
        if post:
            val = val + GD_EXTRA * (lab == ENH)
        acc += val * bias(p, bias_strength)
    img = acc / len(offsets)
    rng = np.random.default_rng(seed)
    img = np.abs(img + noise * rng.normal(size=img.shape) + 1j * noise * rng.normal(size=img.shape))
    return (scale * img).reshape(geometry.shape).astype(np.float32)


def grid(orientation: str, spacing, fov=(180.0, 210.0, 170.0), centre=CENTRE) -> Geometry:
    """A grid of ``spacing`` mm covering ``fov`` mm (in RAS axis order) around ``centre``."""
    d = np.asarray(ORIENTATIONS[orientation], float).reshape(3, 3)
    # world extent along each index axis: the fov of the world axis it points to
    ras_axis = [int(np.argmax(np.abs(d[:, c]))) for c in range(3)]
    spacing = np.asarray(spacing, float)
    shape = np.array([int(round(fov[a] / s)) for a, s in zip(ras_axis, spacing, strict=True)])
    origin = np.asarray(centre) - d @ ((shape - 1) * spacing / 2)
    return Geometry(tuple(shape), tuple(spacing), tuple(origin), tuple(d.ravel()))


@dataclass
class SynthExam:
    """Paths of a written synthetic exam and its truth."""

    root: Path
    paths: dict[str, Path]
    motion: dict[str, np.ndarray]
    t1w_geometry: Geometry
    extra: dict = field(default_factory=dict)


DEFAULT_MOTION = {
    "T2w": rigid((2.0, -1.5, 3.0), (2.0, -3.0, 1.5)),
    "FLAIR": rigid((-3.0, 2.0, -2.0), (-2.5, 1.0, 3.0)),
    "T1w_gd": rigid((1.5, 2.5, -1.0), (1.5, 2.0, -2.0)),
}


def make_exam(root: Path, subject: str = "01", *, t1_spacing=2.0, thick=4.0, skull: bool = True,
              orientations=None, sequences=("T1w", "T2w", "FLAIR", "T1w_gd"),
              motion=None, seed: int = 0) -> SynthExam:
    """Write a synthetic BIDS exam under ``root`` and return its paths and true motions."""
    orientations = orientations or {"T1w": "LPS", "T2w": "RAS", "FLAIR": "PIR", "T1w_gd": "LAS"}
    motion = DEFAULT_MOTION if motion is None else motion
    anat = root / f"sub-{subject}" / "anat"
    names = {"T1w": "T1w", "T2w": "T2w", "FLAIR": "FLAIR", "T1w_gd": "ce-gadolinium_T1w"}
    scales = {"T1w": 850.0, "T2w": 330.0, "FLAIR": 2.5, "T1w_gd": 910.0}
    paths, motions = {}, {}
    t1_geom = None
    for n, seq in enumerate(sequences):
        if seq in ("T1w", "T1w_gd"):
            sp = (t1_spacing,) * 3
        else:  # thick slices along the grid's through-plane (last index) axis
            sp = (t1_spacing * 0.9, t1_spacing * 0.9, thick)
        g = grid(orientations.get(seq, "RAS"), sp,
                 fov=(180.0, 210.0, 170.0) if seq != "FLAIR" else (190.0, 200.0, 160.0))
        m = np.eye(4) if seq == "T1w" else motion.get(seq, np.eye(4))
        contrast = "T1w" if seq == "T1w_gd" else seq
        img = render(contrast, g, m, skull=skull, seed=seed + n, scale=scales[seq],
                     post=seq == "T1w_gd", slice_samples=3 if sp[2] > sp[0] * 1.5 else 1)
        p = anat / f"sub-{subject}_{names[seq]}.nii.gz"
        write_image(p, img, g)
        paths[seq], motions[seq] = p, m
        if seq == "T1w":
            t1_geom = g
    write_json(root / "dataset_description.json", {"Name": "synth", "BIDSVersion": "1.9.0"})
    assert t1_geom is not None
    return SynthExam(root, paths, motions, t1_geom)


def truth_labels(geometry: Geometry, *, skull: bool) -> np.ndarray:
    """Labels on a grid in the T1w world (no motion)."""
    idx = np.indices(geometry.shape).reshape(3, -1).T.astype(float)
    return labels_at(geometry.index_to_world(idx), skull=skull).reshape(geometry.shape)
