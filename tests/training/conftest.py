"""Fixtures for training tests: a 3-exam fake cohort (2 mm, 32x32x16) and the tiny recipe."""

from __future__ import annotations

import pytest
import torch

from gdsynth.training.config import TrainConfig, load_config
from tests.data.fakes import write_fake_cohort
from tests.fixtures.training import TINY

torch.set_num_threads(1)


@pytest.fixture(scope="session")
def cohort(tmp_path_factory):
    return write_fake_cohort(tmp_path_factory.mktemp("cohort"), 3)


@pytest.fixture
def tiny() -> TrainConfig:
    return load_config(TINY)
