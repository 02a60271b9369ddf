"""Model cards list the inputs a model was trained to miss (input drop-out)."""

from __future__ import annotations

import pytest

from gdsynth.errors import ModelError
from gdsynth.models.card import ModelCard


def test_optional_inputs_are_a_strict_subset_of_inputs():
    arch = {"name": "unet", "kwargs": {}}
    card = ModelCard(architecture=arch, optional_inputs=["T2w", "FLAIR"])
    assert ModelCard.from_dict(card.to_dict()).optional_inputs == ["T2w", "FLAIR"]
    assert ModelCard(architecture=arch).optional_inputs == []  # older cards: every input required
    for bad in (["PD"], ["T1w", "T2w", "FLAIR"]):
        with pytest.raises(ModelError, match="optional_inputs"):
            ModelCard(architecture=arch, optional_inputs=bad)
