"""Export a trained generator as a model folder (safetensors + model card): what inference loads."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from gdsynth.models.card import ModelCard
from gdsynth.models.folder import save_model_folder
from gdsynth.training.config import TrainConfig


def build_card(config: TrainConfig, generator: nn.Module, *, spacing_mm: float | None,
               training: dict[str, Any], name: str | None = None) -> ModelCard:
    """The :class:`ModelCard` of ``generator`` trained with ``config``."""
    d = config.data
    return ModelCard(
        architecture={"name": config.generator.name, "kwargs": dict(generator.kwargs)},
        inputs=list(d.inputs),
        optional_inputs=list(d.optional_inputs) if d.input_dropout > 0 else [],
        mode=d.mode,
        context_slices=d.context_slices if d.mode == "2.5d" else 0,
        spacing_mm=spacing_mm,
        residual=config.generator.residual,
        heads=list(config.generator.heads),
        patch_size=[d.patch_size] * (3 if d.mode == "3d" else 2),
        training=training,
        name=name or config.name,
    )


def export_model(folder: str | Path, generator: nn.Module, card: ModelCard) -> Path:
    """Write ``folder/generator.safetensors`` and ``folder/model_card.json`` atomically."""
    return save_model_folder(folder, generator, card)
