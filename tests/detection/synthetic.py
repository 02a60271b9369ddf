"""Tiny synthetic exams for detection tests: normalized pre-contrast images and an enhancement map.

Layout (X, Y, Z) = (48, 48, 40) voxels of 1 mm; brain = ellipsoid; NAWM = 1.0 on every sequence.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

SHAPE = (48, 48, 40)
SPACING = (1.0, 1.0, 1.0)
CENTRE = (23.5, 23.5, 19.5)
RADII = (21.0, 21.0, 17.0)
VENTRICLE = ((24.0, 30.0, 22.0), (4.0, 6.0, 4.0))
LESION_A = ((14.0, 16.0, 20.0), (3.0, 3.0, 2.5))
LESION_B = ((32.0, 16.0, 14.0), (2.5, 2.0, 2.0))


def ellipsoid(centre, radii, shape=SHAPE) -> np.ndarray:
    """Boolean ellipsoid (voxel units)."""
    grids = np.meshgrid(*[np.arange(s, dtype=float) for s in shape], indexing="ij")
    r2 = sum(((g - c) / r) ** 2 for g, c, r in zip(grids, centre, radii, strict=True))
    return r2 <= 1.0


@dataclass
class Exam:
    """Arrays of one synthetic exam (all (X, Y, Z))."""

    enhancement: np.ndarray
    brain: np.ndarray
    t1w: np.ndarray
    t2w: np.ndarray
    flair: np.ndarray
    truth: np.ndarray
    heads: dict[str, np.ndarray] = field(default_factory=dict)

    def inputs(self) -> dict:
        return {"brain_mask": self.brain, "spacing": SPACING, "t1w": self.t1w, "t2w": self.t2w,
                "flair": self.flair}

    def case(self) -> dict:
        return {"enhancement": self.enhancement, "truth": self.truth, **self.inputs()}


def base_exam(seed: int = 0) -> Exam:
    """Brain with a ventricle, noise, no lesion and no enhancement."""
    rng = np.random.default_rng(seed)
    brain = ellipsoid(CENTRE, RADII)
    t1w = np.where(brain, 1.0, 0.0) + rng.normal(0, 0.03, SHAPE)
    t2w = np.where(brain, 1.0, 0.0) + rng.normal(0, 0.03, SHAPE)
    flair = np.where(brain, 1.0, 0.0) + rng.normal(0, 0.03, SHAPE)
    vent = ellipsoid(*VENTRICLE)
    t1w[vent], t2w[vent], flair[vent] = 0.3, 3.0, 0.2
    enh = rng.normal(0, 0.1, SHAPE) * brain
    z = np.zeros(SHAPE, np.int32)
    f32 = np.float32
    return Exam(enh.astype(f32), brain, t1w.astype(f32), t2w.astype(f32), flair.astype(f32), z)


def add_lesion(exam: Exam, centre, radii, *, enhancement: float, flair: float = 1.6,
               truth: bool = True) -> None:
    """An ovoid enhancing lesion with a FLAIR/T2w-bright halo one voxel wider."""
    core = ellipsoid(centre, radii)
    halo = ellipsoid(centre, tuple(r + 1.0 for r in radii))
    exam.flair[halo] = flair
    exam.t2w[halo] = flair
    exam.t1w[halo] = 0.85
    exam.enhancement[core] += enhancement
    if truth:
        exam.truth[core] = exam.truth.max() + 1


def full_exam(seed: int = 0) -> Exam:
    """Two lesions, a surface vessel, choroid plexus, a brain-edge rim and a ventricle-edge rim."""
    exam = base_exam(seed)
    add_lesion(exam, *LESION_A, enhancement=0.8)
    add_lesion(exam, *LESION_B, enhancement=0.5)
    grids = np.meshgrid(*[np.arange(s, dtype=float) for s in SHAPE], indexing="ij")
    vessel = ((grids[1] - 24) ** 2 + (grids[2] - 30) ** 2 <= 1.5**2) & (grids[0] <= 18)
    exam.enhancement[vessel & exam.brain] += 1.0
    plexus = ellipsoid(VENTRICLE[0], (2.0, 2.5, 2.0))
    exam.enhancement[plexus] += 0.8
    exam.t1w[plexus], exam.t2w[plexus], exam.flair[plexus] = 0.9, 1.3, 1.4
    inner = ellipsoid(CENTRE, tuple(r - 2.0 for r in RADII))
    rim = exam.brain & ~inner & (grids[0] > 34)
    exam.enhancement[rim] += 0.5
    vent = ellipsoid(*VENTRICLE)
    vent_rim = ellipsoid(VENTRICLE[0], tuple(r + 1.5 for r in VENTRICLE[1])) & ~vent
    exam.enhancement[vent_rim & (grids[0] > 28.5)] += 0.7
    return exam


WM_SLOTS = (LESION_A[0], LESION_B[0], (14.0, 32.0, 18.0), (34.0, 30.0, 28.0), (24.0, 12.0, 26.0))


def random_exam(seed: int) -> Exam:
    """A validation-like exam: 0-2 true enhancing lesions of random strength and size, and maybe a
    FLAIR-bright chronic lesion with weak spurious enhancement (a false positive to learn from)."""
    rng = np.random.default_rng(seed)
    exam = base_exam(seed)
    slots = rng.permutation(len(WM_SLOTS))
    n_true = int(rng.choice([0, 0, 1, 2]))
    for s in slots[:n_true]:
        r = float(rng.uniform(1.8, 3.0))
        add_lesion(exam, WM_SLOTS[s], (r, r, r * 0.8), enhancement=float(rng.uniform(0.3, 0.9)))
    if rng.uniform() < 0.6:
        s = slots[n_true]
        r = float(rng.uniform(1.5, 2.2))
        add_lesion(exam, WM_SLOTS[s], (r, r, r), enhancement=float(rng.uniform(0.25, 0.45)),
                   flair=float(rng.uniform(1.2, 1.5)), truth=False)
    return exam
