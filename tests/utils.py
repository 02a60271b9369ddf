"""Small helpers for tests: tiny synthetic volumes written to a temporary folder."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import numpy as np

from gdsynth.io import Geometry, write_image

#: The repository's experiments/ folder (scripts the tests exercise).
EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"


def load_experiment(name: str) -> ModuleType:
    """Import ``experiments/<name>.py`` as module ``name`` (registered in ``sys.modules``, as
    dataclasses need; ``experiments/`` on ``sys.path`` for the scripts' sibling imports)."""
    if str(EXPERIMENTS) not in sys.path:
        sys.path.insert(0, str(EXPERIMENTS))
    spec = importlib.util.spec_from_file_location(name, EXPERIMENTS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


# Direction matrices (LPS, columns = index axes) for common voxel orders.
ORIENTATIONS = {
    "RAS": (-1, 0, 0, 0, -1, 0, 0, 0, 1),
    "LPS": (1, 0, 0, 0, 1, 0, 0, 0, 1),
    "LAS": (1, 0, 0, 0, -1, 0, 0, 0, 1),
    "PIR": (0, 0, -1, 1, 0, 0, 0, -1, 0),
}


def oblique_direction(angle_deg: float = 17.0) -> tuple[float, ...]:
    """A rotation about z then x, as a direction tuple (orthonormal, oblique)."""
    a = np.deg2rad(angle_deg)
    rz = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    rx = np.array([[1, 0, 0], [0, np.cos(a / 2), -np.sin(a / 2)], [0, np.sin(a / 2), np.cos(a / 2)]])
    return tuple((rz @ rx).ravel())


def blob_volume(shape=(24, 28, 20), seed: int = 0) -> np.ndarray:
    """A smooth positive volume with structure (not constant), float32."""
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    vol = 100 * np.exp(-(x**2 + y**2 + z**2) * 2) + rng.normal(0, 1, shape)
    return vol.astype(np.float32)


def write_volume(
    path: Path, shape=(24, 28, 20), orientation: str = "RAS", spacing=(1.0, 1.0, 1.0), seed: int = 0
) -> tuple[np.ndarray, Geometry]:
    """Write a blob volume in a given voxel order; return the array and geometry written."""
    direction = ORIENTATIONS[orientation] if orientation in ORIENTATIONS else oblique_direction()
    geometry = Geometry(shape, spacing, (10.0, -20.0, 5.0), direction)
    array = blob_volume(shape, seed)
    write_image(path, array, geometry)
    return array, geometry
