"""Registry of generator and discriminator architectures by name (the model card's
``architecture.name``)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from torch import nn

from gdsynth.errors import GdsynthError, ModelError
from gdsynth.models.patchgan import PatchDiscriminator
from gdsynth.models.unet import UNetGenerator, check_unet_kwargs

GENERATORS: dict[str, type[nn.Module]] = {"unet": UNetGenerator}
DISCRIMINATORS: dict[str, type[nn.Module]] = {"patchgan": PatchDiscriminator}
#: Per generator: validate its keyword arguments (sane bounds) and return the parameter count
#: they imply, before anything is allocated.
GENERATOR_CHECKS: dict[str, Callable[[dict[str, Any]], int]] = {"unet": check_unet_kwargs}


def _build(table: dict[str, type[nn.Module]], what: str, name: str, kwargs: dict[str, Any]):
    if name not in table:
        raise ModelError(None, f"unknown {what} {name!r}; valid: {', '.join(sorted(table))}")
    try:
        return table[name](**kwargs)
    except TypeError as exc:
        raise ModelError(None, f"invalid arguments for {what} {name!r}: {exc}") from None


def check_generator(name: str, kwargs: Any) -> int:
    """Validate the arguments of generator ``name`` (sane bounds, known names, types) without
    building it; return the number of parameters implied. Raises :class:`ModelError`."""
    if name not in GENERATORS:
        raise ModelError(None, f"unknown generator {name!r}; valid: {', '.join(sorted(GENERATORS))}")
    check = GENERATOR_CHECKS.get(name)
    if check is None:
        return 0
    try:
        return check(kwargs)
    except GdsynthError as exc:
        raise ModelError(None, f"invalid arguments for generator {name!r}: {exc.problem}") from None


def build_generator(name: str, **kwargs: Any) -> nn.Module:
    """Instantiate the generator registered as ``name`` with keyword arguments ``kwargs``
    (checked first by :func:`check_generator`)."""
    check_generator(name, kwargs)
    return _build(GENERATORS, "generator", name, kwargs)


def build_discriminator(name: str = "patchgan", **kwargs: Any) -> nn.Module:
    """Instantiate the discriminator registered as ``name``."""
    return _build(DISCRIMINATORS, "discriminator", name, kwargs)
