"""The model card: everything inference needs to know about an exported generator, as JSON.

A model folder holds ``generator.safetensors`` (weights only) and ``model_card.json`` (this
dataclass). Nothing is ever unpickled, so loading a model cannot execute code.

Every field is checked on load against :data:`SCHEMA`, a declarative table (one
:class:`FieldSpec` per field: JSON type, optional, numeric bounds), so a card with
``"residual": "false"`` (a string, which Python would read as true), a NaN or a string where a
number belongs, or a spacing of 0.1 mm (~23 GB of volumes) is refused at once with
:class:`~gdsynth.errors.ModelError` naming ``model_card.json`` and the field — never per exam,
after maps were written. No number anywhere in the card (nested sections included) may be NaN or
infinite. The ``detection`` section's keys are those of
:class:`gdsynth.detection.params.DetectionParams` and are validated by its own loader
(``DetectionParams.from_dict``) when inference loads the model; a new detection parameter is added
there, not here. To add a card field: add it to :class:`ModelCard` and one row to :data:`SCHEMA`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any

from gdsynth import __version__
from gdsynth.errors import MissingSequenceError, ModelError
from gdsynth.io.sequences import REFERENCE, input_names

CARD_NAME = "model_card.json"
WEIGHTS_NAME = "generator.safetensors"
#: Most generator inputs a card may list (published models use up to ~10 channels).
MAX_INPUTS = 32
MAX_CONTEXT_SLICES = 32
MAX_PATCH_SIZE = 1024


#: Bounds of ``spacing_mm`` (mm): it sets the prepared grid, hence every volume inference allocates.
MIN_SPACING_MM = 0.5
MAX_SPACING_MM = 10.0


@dataclass(frozen=True)
class FieldSpec:
    """One card field: its JSON type (``"bool"``, ``"int"``, ``"number"``, ``"string"``,
    ``"object"``, ``"list"``), whether ``null`` is allowed, numeric bounds, the type of list
    items and a note for the error message."""

    kind: str
    nullable: bool = False
    low: float | None = None
    high: float | None = None
    items: str | None = None
    max_items: int | None = None


SCHEMA: dict[str, FieldSpec] = {
    "architecture": FieldSpec("object"),
    "inputs": FieldSpec("list", items="string", max_items=MAX_INPUTS),
    "optional_inputs": FieldSpec("list", items="string", max_items=MAX_INPUTS),
    "mode": FieldSpec("string"),
    "context_slices": FieldSpec("int", low=0, high=MAX_CONTEXT_SLICES),
    "spacing_mm": FieldSpec("number", nullable=True, low=MIN_SPACING_MM, high=MAX_SPACING_MM),
    "residual": FieldSpec("bool"),
    "heads": FieldSpec("list", items="string", max_items=16),
    "normalization": FieldSpec("object"),
    "detection": FieldSpec("object"),
    "training": FieldSpec("object"),
    "lesion_stage": FieldSpec("object"),
    "name": FieldSpec("string"),
    "gdsynth_version": FieldSpec("string"),
    "intended_use": FieldSpec("string"),
    "patch_size": FieldSpec("list", nullable=True, items="int", max_items=3, low=1,
                            high=MAX_PATCH_SIZE),
}

_JSON_TYPES: dict[str, tuple[type, ...]] = {
    "bool": (bool,), "int": (int,), "number": (int, float), "string": (str,), "object": (dict,),
    "list": (list, tuple),
}


def _type_ok(value: Any, kind: str) -> bool:
    if kind != "bool" and isinstance(value, bool):
        return False  # true/false is not a number
    return isinstance(value, _JSON_TYPES[kind])


def _non_finite(value: Any, where: str) -> str | None:
    """Path of the first NaN/infinite number inside ``value`` (nested dicts/lists), or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return where
    if isinstance(value, dict):
        for k, v in value.items():
            if (found := _non_finite(v, f"{where}.{k}")) is not None:
                return found
    if isinstance(value, list | tuple):
        for i, v in enumerate(value):
            if (found := _non_finite(v, f"{where}[{i}]")) is not None:
                return found
    return None


def check_schema(data: dict[str, Any]) -> None:
    """Raise :class:`ModelError` (no path: the caller adds it) for the first field of ``data``
    that breaks :data:`SCHEMA`: unknown, wrong JSON type, out of bounds, NaN or infinite."""
    unknown = sorted(set(data) - set(SCHEMA))
    if unknown:
        raise ModelError(None, f"unknown model card fields: {unknown} (known: {sorted(SCHEMA)})")
    for name, value in data.items():
        spec = SCHEMA[name]
        if value is None and spec.nullable:
            continue
        if (where := _non_finite(value, name)) is not None:
            raise ModelError(None, f"{where} is {value if where == name else 'NaN or infinite'}; "
                                   "numbers must be finite")
        if not _type_ok(value, spec.kind):
            raise ModelError(None, f"{name}={value!r} must be {_a(spec.kind)}"
                                   f"{' or null' if spec.nullable else ''}, not "
                                   f"{_a(_json_kind(value))}")
        values = value if spec.kind == "list" else [value]
        if spec.kind == "list":
            if spec.max_items is not None and len(value) > spec.max_items:
                raise ModelError(None, f"{name} has {len(value)} items; at most {spec.max_items}")
            bad = [v for v in value if not _type_ok(v, spec.items or "string")]
            if bad:
                raise ModelError(None, f"{name}={value!r}: items must be {spec.items}s")
        for v in values:
            if isinstance(v, int | float) and not isinstance(v, bool) and (
                    spec.low is not None and v < spec.low or spec.high is not None and v > spec.high):
                raise ModelError(None, f"{name}={value!r} out of bounds [{spec.low:g}, "
                                       f"{spec.high:g}]")


def _json_kind(value: Any) -> str:
    for kind in ("bool", "int", "number", "string", "object", "list"):
        if _type_ok(value, kind):
            return kind
    return "null" if value is None else type(value).__name__


def _a(kind: str) -> str:
    return {"int": "an integer", "object": "a JSON object", "list": "a list", "null": "null"}.get(
        kind, f"a {kind}")


class Mode(str, Enum):
    """How volumes are fed to the generator."""

    two_d = "2d"  # one axial slice, channels = sequences
    two_half_d = "2.5d"  # 2*context+1 adjacent axial slices per sequence, stacked as channels
    three_d = "3d"  # 3D patches


def inputs_text(used: Sequence[str], missing: Sequence[str] = ()) -> str:
    """What a prediction was made from, for tables and pages: ``T1w, FLAIR (no T2w)``."""
    return ", ".join(used) + (f" (no {', '.join(missing)})" if missing else "")


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
    inputs: list[str] = field(default_factory=lambda: list(input_names()))
    # inputs the model was trained to miss (input drop-out): an exam may lack any of them
    optional_inputs: list[str] = field(default_factory=list)
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
        valid = input_names()  # the sequence registry's inputs (gdsynth.io.sequences)
        bad = [s for s in self.inputs if s not in valid]
        if bad or not self.inputs or len(set(self.inputs)) != len(self.inputs):
            raise ModelError(None, f"model inputs {self.inputs} invalid; choose from {valid}")
        if not isinstance(self.optional_inputs, list | tuple) or \
                any(s not in self.inputs for s in self.optional_inputs) or \
                len(set(self.optional_inputs)) >= len(self.inputs):
            raise ModelError(None, f"optional_inputs {self.optional_inputs!r} must be a subset of "
                                   f"inputs {self.inputs} leaving at least one required input")
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

    def split_inputs(self, present: Iterable[str], *, exam: str = "the exam",
                     path: str | Path | None = None) -> tuple[list[str], list[str]]:
        """``(used, missing)``: the card's inputs among ``present`` (sequence names an exam has)
        and those it lacks, both in the card's order. An exam may lack only
        :attr:`optional_inputs` (the inputs the model was trained to miss, by input drop-out) and
        never the T1w (it defines the prepared space); otherwise :class:`MissingSequenceError`
        (naming ``path`` and ``exam``) says which sequences are missing and which ones this
        model can do without."""
        have = set(present)
        missing = [s for s in self.inputs if s not in have]
        refused = [s for s in missing if s not in self.optional_inputs or s == REFERENCE]
        if REFERENCE not in have and REFERENCE not in refused:
            refused.insert(0, REFERENCE)
        if refused:
            spare = [s for s in self.optional_inputs if s != REFERENCE]
            can = (f"it can do without {', '.join(spare)} only" if spare else
                   f"trained without input drop-out, it needs all of {', '.join(self.inputs)}")
            raise MissingSequenceError(
                path if path is not None else exam,
                f"exam {exam} lacks required sequence(s): {', '.join(refused)} (this model "
                f"cannot run without {'it' if len(refused) == 1 else 'them'}; {can})")
        return [s for s in self.inputs if s in have], missing

    @property
    def in_channels(self) -> int:
        """Generator input channels implied by inputs and mode."""
        per = 2 * self.context_slices + 1 if self.mode == Mode.two_half_d.value else 1
        return len(self.inputs) * per

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> ModelCard:
        """Validate ``data`` against :data:`SCHEMA`, then build the card; errors name ``path``."""
        try:
            check_schema(data)
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
