"""The review tests' session cohort: a tiny fake BIDS + prediction tree (helpers in
:mod:`tests.fixtures.review`)."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest

from tests.fixtures.review import make_cohort


@pytest.fixture(scope="session")
def cohort():
    """A session-wide fake cohort (bids, pred); the tests only read it."""
    root = Path(tempfile.mkdtemp(prefix="gdsynth-review-"))
    try:
        yield make_cohort(root)
    finally:
        shutil.rmtree(root, ignore_errors=True)
