"""A tiny phantom cohort (2 mm, 2 subjects, both with enhancing lesions), built once per session."""

from __future__ import annotations

from pathlib import Path

import pytest

from gdsynth.phantom import generate_dataset
from tests.fixtures.phantom import SEED, SITES


@pytest.fixture(scope="session")
def cohort(tmp_path_factory) -> Path:
    """Written with 2 worker processes (results must equal a serial run)."""
    root = tmp_path_factory.mktemp("phantom") / "bids"
    generate_dataset(root, subjects=2, seed=SEED, resolution=2, active_fraction=1.0, workers=2,
                     sites=SITES)
    return root
