"""Networks as plain ``nn.Module``s, losses, and the model folder format (safetensors + JSON card).

Names are imported lazily so that ``gdsynth.models.card`` stays importable without torch.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "UNetGenerator": "gdsynth.models.unet",
    "PatchDiscriminator": "gdsynth.models.patchgan",
    "AdversarialLoss": "gdsynth.models.losses",
    "AdversarialCriterion": "gdsynth.models.losses",
    "weighted_l1": "gdsynth.models.losses",
    "ssim_loss": "gdsynth.models.losses",
    "ssim_map": "gdsynth.models.losses",
    "GENERATORS": "gdsynth.models.registry",
    "DISCRIMINATORS": "gdsynth.models.registry",
    "build_generator": "gdsynth.models.registry",
    "build_discriminator": "gdsynth.models.registry",
    "ModelCard": "gdsynth.models.card",
    "save_model_folder": "gdsynth.models.folder",
    "load_model_folder": "gdsynth.models.folder",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'gdsynth.models' has no attribute {name!r}")
