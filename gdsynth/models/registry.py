"""Registry of generator and discriminator architectures by name (the model card's
``architecture.name``)."""

from __future__ import annotations

from typing import Any

from torch import nn

from gdsynth.errors import ModelError
from gdsynth.models.patchgan import PatchDiscriminator
from gdsynth.models.unet import UNetGenerator

GENERATORS: dict[str, type[nn.Module]] = {"unet": UNetGenerator}
DISCRIMINATORS: dict[str, type[nn.Module]] = {"patchgan": PatchDiscriminator}


def _build(table: dict[str, type[nn.Module]], what: str, name: str, kwargs: dict[str, Any]):
    if name not in table:
        raise ModelError(None, f"unknown {what} {name!r}; valid: {', '.join(sorted(table))}")
    try:
        return table[name](**kwargs)
    except TypeError as exc:
        raise ModelError(None, f"invalid arguments for {what} {name!r}: {exc}") from None


def build_generator(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the generator registered as ``name`` with keyword arguments ``kwargs``."""
    return _build(GENERATORS, "generator", name, kwargs)


def build_discriminator(name: str = "patchgan", **kwargs: Any) -> nn.Module:
    """Instantiate the discriminator registered as ``name``."""
    return _build(DISCRIMINATORS, "discriminator", name, kwargs)
