"""The model card: everything inference needs to know about an exported generator, as JSON.

A model folder holds ``generator.safetensors`` (weights only) and ``model_card.json`` (this
dataclass). Nothing is ever unpickled, so loading a model cannot execute code.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from enum import Enum
from pathlib import Path
from typing import Any

from gdsynth import __version__
from gdsynth.errors import ModelError

CARD_NAME = "model_card.json"
WEIGHTS_NAME = "generator.safetensors"
VALID_INPUTS = ("T1w", "T2w", "FLAIR")
MAX_CONTEXT_SLICES = 32
MAX_PATCH_SIZE = 1024


class Mode(str, Enum):
    """How volumes are fed to the generator."""

    two_d = "2d"  # one axial slice, channels = sequences
    two_half_d = "2.5d"  # 2*context+1 adjacent axial slices per sequence, stacked as channels
    three_d = "3d"  # 3D patches


@dataclass
class ModelCard:
    """Description of an exported generator (see docs/architecture.md).

    ``architecture`` is ``{"name": <registry name>, "kwargs": {...}}`` for
    :func:`gdsynth.models.build_generator`. Output channel 0 is the synthetic post-Gd T1w in
    normalized units, or the residual post − pre when ``residual`` is true; channels 1.. are the
    logits of ``heads`` in order (e.g. ``["enhancing", "lesions"]``). ``lesion_stage`` records
    the fitted lesion classifier stored next to the card (file, SHA-256, features, operating
    point, held-out figures; empty when none was fitted).
    """

    architecture: dict[str, Any]
    inputs: list[str] = field(default_factory=lambda: list(VALID_INPUTS))
    mode: str = Mode.two_half_d.value
    context_slices: int = 1
    spacing_mm: float | None = None
    residual: bool = True
    heads: list[str] = field(default_factory=list)
    normalization: dict[str, Any] = field(
        default_factory=lambda: {"method": "nawm-median", "description": "each sequence / NAWM median"}
    )
    detection: dict[str, Any] = field(default_factory=dict)
    # the learned lesion stage (``lesion_classifier.json`` in the folder; gdsynth.detection.stage)
    lesion_stage: dict[str, Any] = field(default_factory=dict)
    training: dict[str, Any] = field(default_factory=dict)
    name: str = "gdsynth-generator"
    gdsynth_version: str = __version__
    intended_use: str = "Research only. Not a medical device."
    patch_size: list[int] | None = None

    def __post_init__(self) -> None:
        bad = [s for s in self.inputs if s not in VALID_INPUTS]
        if bad or not self.inputs:
            raise ModelError(None, f"model inputs {self.inputs} invalid; choose from {VALID_INPUTS}")
        try:
            Mode(self.mode)
        except ValueError:
            valid = ", ".join(m.value for m in Mode)
            raise ModelError(None, f"model mode {self.mode!r} invalid; choose one of {valid}") from None
        if not isinstance(self.architecture, dict) or not isinstance(self.architecture.get("name"), str):
            raise ModelError(None, "model card architecture needs a 'name'")
        if not isinstance(self.architecture.get("kwargs", {}), dict):
            raise ModelError(None, "model card architecture 'kwargs' must be a JSON object")
        # Sane bounds: these sizes drive what inference allocates (stacked slices, 3D windows).
        if (isinstance(self.context_slices, bool) or not isinstance(self.context_slices, int)
                or not 0 <= self.context_slices <= MAX_CONTEXT_SLICES):
            raise ModelError(None, f"context_slices={self.context_slices!r} must be an integer in "
                                   f"[0, {MAX_CONTEXT_SLICES}]")
        if self.patch_size is not None and (
                not isinstance(self.patch_size, list | tuple) or len(self.patch_size) not in (2, 3)
                or not all(isinstance(v, int) and not isinstance(v, bool)
                           and 1 <= v <= MAX_PATCH_SIZE for v in self.patch_size)):
            raise ModelError(None, f"patch_size={self.patch_size!r} must be 2 or 3 integers in "
                                   f"[1, {MAX_PATCH_SIZE}]")
        if not isinstance(self.heads, list | tuple) or len(self.heads) > 16 or \
                not all(isinstance(h, str) for h in self.heads):
            raise ModelError(None, "heads must be a list of at most 16 names")

    @property
    def in_channels(self) -> int:
        """Generator input channels implied by inputs and mode."""
        per = 2 * self.context_slices + 1 if self.mode == Mode.two_half_d.value else 1
        return len(self.inputs) * per

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> ModelCard:
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ModelError(path, f"unknown model card fields: {sorted(unknown)}")
        try:
            return cls(**data)
        except TypeError as exc:
            raise ModelError(path, f"invalid model card: {exc}") from None
        except ModelError as exc:
            if exc.path is not None or path is None:
                raise
            raise ModelError(path, exc.problem) from None

    def save(self, path: str | Path) -> Path:
        from gdsynth.io import write_json

        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | Path) -> ModelCard:
        p = Path(path)
        if not p.is_file():
            raise ModelError(p, "model card not found")
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(p, f"model card is not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ModelError(p, "model card must be a JSON object")
        return cls.from_dict(data, p)
