"""A hostile or corrupted model card cannot make gdsynth allocate a huge network: architecture
arguments are bounded, the implied parameter count must fit the weights file, and the error is
one line naming ``model_card.json``."""

from __future__ import annotations

import json

import pytest
import torch

from gdsynth.errors import ModelError
from gdsynth.models import UNetGenerator, build_generator, registry
from gdsynth.models.card import CARD_NAME, ModelCard
from gdsynth.models.folder import load_model_folder, save_model_folder
from gdsynth.models.unet import check_unet_kwargs, unet_parameter_count

torch.set_num_threads(1)

KWARGS = {"in_channels": 9, "spatial_dims": 2, "features": 4, "depth": 2, "dropout": 0.5,
          "heads": [], "max_features": 8}


@pytest.mark.parametrize("extra", [
    {}, {"norm": "batch"}, {"norm": "none", "upsample": "interpolate"}, {"heads": ["a", "b"]},
    {"spatial_dims": 3, "depth": 3, "features": 3, "max_features": 16}, {"out_channels": 2},
])
def test_parameter_count_matches_the_built_network(extra):
    kwargs = {**KWARGS, **extra}
    built = sum(p.numel() for p in UNetGenerator(**kwargs).parameters())
    assert unet_parameter_count(**kwargs) == built == check_unet_kwargs(kwargs)


@pytest.fixture()
def model(tmp_path):
    torch.manual_seed(0)
    folder = tmp_path / "model"
    card = ModelCard(architecture={"name": "unet", "kwargs": dict(KWARGS)}, name="tiny")
    return save_model_folder(folder, UNetGenerator(**KWARGS), card)


def _edit_card(folder, **changes):
    path = folder / CARD_NAME
    card = json.loads(path.read_text())
    card["architecture"]["kwargs"].update(changes.pop("kwargs", {}))
    card.update(changes)
    path.write_text(json.dumps(card))
    return path


@pytest.mark.parametrize("changes, message", [
    ({"kwargs": {"features": 100000, "depth": 30, "max_features": 100000}}, "outside the accepted range"),
    ({"kwargs": {"features": 1024, "depth": 10, "max_features": 4096}}, "parameters"),
    ({"kwargs": {"features": 64, "max_features": 512}}, "bytes of weights"),  # plausible size, tiny file
    ({"kwargs": {"features": "8"}}, "must be an integer"),
    ({"kwargs": {"depth": True}}, "must be an integer"),
    ({"kwargs": {"heads": ["x"] * 1000}}, "heads"),
    ({"kwargs": {"in_channels": 15}}, "in_channels=15"),
    ({"kwargs": {"norm": "group"}}, "norm 'group' invalid"),
    ({"context_slices": 100000}, "context_slices"),
    ({"patch_size": [100000, 100000, 100000]}, "patch_size"),
])
def test_hostile_card_is_refused_naming_the_card(model, changes, message, monkeypatch):
    card_path = _edit_card(model, **changes)

    def never(**kwargs):
        raise AssertionError("the network was built before the card was checked")

    monkeypatch.setitem(registry.GENERATORS, "unet", never)
    with pytest.raises(ModelError, match=message) as err:
        load_model_folder(model)
    assert err.value.path == card_path, str(err.value)
    assert str(err.value).startswith(str(card_path)) and "\n" not in str(err.value)


def test_good_card_still_loads(model):
    generator, card = load_model_folder(model)
    assert card.name == "tiny" and isinstance(generator, UNetGenerator)


def test_build_generator_checks_bounds_before_allocating():
    with pytest.raises(ModelError, match="invalid arguments for generator 'unet'.*depth=30"):
        build_generator("unet", in_channels=3, features=8, depth=30)
    with pytest.raises(ModelError, match="unknown argument"):
        build_generator("unet", in_channels=3, colour="red")
