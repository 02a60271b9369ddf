"""Session fixtures of the reliability batteries: one tiny phantom, its 4 mm copy, tiny models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from gdsynth.phantom import generate_dataset
from tests.reliability.common import PHANTOM_SEED, make_model, write_coarse_copy

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def phantom2(tmp_path_factory) -> Path:
    """A 2 mm phantom BIDS dataset of 3 subjects (2 with enhancing lesions), with its truth."""
    root = tmp_path_factory.mktemp("phantom2") / "bids"
    generate_dataset(root, subjects=3, seed=PHANTOM_SEED, resolution=2, active_fraction=0.67,
                     workers=2)
    return root


@pytest.fixture(scope="session")
def phantom4(phantom2, tmp_path_factory) -> Path:
    """The same 3 subjects at 4 mm (raw images only): what the inference batteries run on."""
    root = tmp_path_factory.mktemp("phantom4") / "bids"
    write_coarse_copy(phantom2, root)
    return root


@pytest.fixture(scope="session")
def zero_model(tmp_path_factory) -> Path:
    """A tiny exported model that predicts no enhancement (see ``make_model``)."""
    return make_model(tmp_path_factory.mktemp("models") / "zero", zero=True)


@pytest.fixture(scope="session")
def random_model(tmp_path_factory) -> Path:
    """A tiny randomly initialised exported model (with MC dropout)."""
    return make_model(tmp_path_factory.mktemp("models") / "random")
