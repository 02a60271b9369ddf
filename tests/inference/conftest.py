"""Fixtures for inference tests: tiny exams on disk, a tiny exported model (helpers in
:mod:`tests.fixtures.inference`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fixtures.inference import make_model, write_exam


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
