"""Typed training configuration, loaded from YAML recipes (``experiments/*.yaml``).

Every section is a dataclass; unknown keys are errors that list the valid ones. CLI flags override
fields after loading; each run saves the exact configuration it used as ``RUN/config.yaml``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, get_type_hints

from gdsynth.data.augment import AugmentConfig
from gdsynth.data.module import DataConfig
from gdsynth.errors import ConfigError, parse_choice
from gdsynth.runtime import Precision


@dataclass
class GeneratorConfig:
    """Generator architecture (``name`` in :data:`gdsynth.models.registry.GENERATORS`)."""

    name: str = "unet"
    features: int = 32
    depth: int = 4
    dropout: float = 0.5
    norm: str = "instance"
    max_features: int = 256
    upsample: str = "transpose"
    heads: list[str] = field(default_factory=list)
    residual: bool = True  # channel 0 predicts post − pre


@dataclass
class DiscriminatorConfig:
    features: int = 64
    n_layers: int = 3
    norm: str = "instance"
    spectral_norm: bool = False


@dataclass
class LossConfig:
    """Generator loss = adversarial_weight * GAN + l1_weight * L1 + ssim_weight * (1 − SSIM)."""

    adversarial: str = "vanilla"  # vanilla | lsgan | hinge
    adversarial_weight: float = 1.0  # 0: no discriminator (L1-only training)
    l1_weight: float = 100.0
    brain_mask: bool = True  # L1 only inside the brain mask
    lesion_weight: float = 0.0  # extra L1 weight on enhancing-lesion voxels
    ssim_weight: float = 0.0
    ssim_data_range: float = 2.0  # normalized units (post-Gd T1w spans ~0..2 in the brain)
    head_weights: dict[str, float] = field(default_factory=dict)  # head -> weight (default 1)
    head_dice_weight: float = 0.0  # head loss = BCE + head_dice_weight * soft Dice


@dataclass
class OptimConfig:
    lr_g: float = 2e-4
    lr_d: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    grad_clip_g: float = 1.0  # max gradient norm, 0 = off
    grad_clip_d: float = 1.0
    max_nonfinite: int = 10  # stop after this many skipped non-finite steps


@dataclass
class ValidationConfig:
    every_n_epochs: int = 1
    detection_threshold: float = 0.25  # synthetic post − pre (normalized units)
    min_lesion_voxels: int = 3
    slice_batch: int = 16
    panels: bool = True
    monitor: str = "val/mae_brain"


@dataclass
class InitConfig:
    """Fine-tuning: start the generator from an exported model (``gdsynth train --init-from``).

    ``model`` is ``phantom`` (the shipped model) or a model folder; ``sha256`` is the SHA-256 of
    its ``generator.safetensors``: a run records it, and a recipe that gives it refuses weights
    that differ. The discriminator starts fresh unless the folder holds
    ``discriminator.safetensors`` (:mod:`gdsynth.training.finetune`)."""

    model: str | None = None
    sha256: str | None = None


class Tracker(str, Enum):
    """Experiment tracker (:func:`gdsynth.training.loggers.make_logger`)."""

    wandb = "wandb"
    csv = "csv"
    tensorboard = "tensorboard"
    none = "none"


@dataclass
class TrainerConfig:
    max_steps: int = 1000
    max_time: str | float | None = None  # "DD:HH:MM:SS" or minutes as a number
    devices: int = 1
    accelerator: str = "auto"
    strategy: str = "auto"
    precision: str = "auto"  # auto | bf16 | fp32 (gdsynth.runtime.Precision)
    channels_last: bool = True  # CPU, 2D/2.5D: networks and batches in channels-last layout
    seed: int = 0
    tracker: Tracker = Tracker.wandb
    log_every_n_steps: int = 10
    num_threads: int | None = None  # torch intra-op threads (None: torch default)

    def __post_init__(self) -> None:
        self.tracker = parse_choice(Tracker, self.tracker, "tracker")


@dataclass
class TrainConfig:
    data: DataConfig = field(default_factory=DataConfig)
    generator: GeneratorConfig = field(default_factory=GeneratorConfig)
    discriminator: DiscriminatorConfig = field(default_factory=DiscriminatorConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    validation: ValidationConfig = field(default_factory=ValidationConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    prep: dict[str, Any] = field(default_factory=dict)  # passed to gdsynth.preprocess.PrepConfig
    name: str = "gdsynth"
    init: InitConfig = field(default_factory=InitConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON values (an Enum field as its value)."""
        return dataclasses.asdict(self, dict_factory=_plain)

    @classmethod
    def from_dict(cls, data: dict[str, Any], path: Path | None = None) -> TrainConfig:
        cfg = _from_dict(cls, data or {}, path, "")
        cfg.data.validate()
        if cfg.generator.residual and "T1w" not in cfg.data.inputs:
            raise ConfigError(path, "generator.residual needs T1w among data.inputs")
        unknown = set(cfg.loss.head_weights) - set(cfg.generator.heads)
        if unknown:
            raise ConfigError(path, f"loss.head_weights names {sorted(unknown)}, not among "
                              f"generator.heads {cfg.generator.heads}")
        try:
            Precision.parse(cfg.trainer.precision)
        except ConfigError as exc:
            raise ConfigError(path, f"trainer.{exc.problem}") from None
        if "lesions" in cfg.generator.heads:
            cfg.data.all_lesion_labels = True  # the lesions head needs its target map
        return cfg


def _plain(items: list[tuple[str, Any]]) -> dict[str, Any]:
    return {k: v.value if isinstance(v, Enum) else v for k, v in items}


def _from_dict(cls: type, data: dict[str, Any], path: Path | None, where: str) -> Any:
    if not isinstance(data, dict):
        raise ConfigError(path, f"section {where or 'root'} must be a mapping")
    hints = get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    unknown = set(data) - names
    if unknown:
        raise ConfigError(path, f"unknown key(s) {sorted(unknown)} in {where or 'root'}; "
                          f"valid: {', '.join(sorted(names))}")
    kwargs = {}
    for k, v in data.items():
        t = hints[k]
        if not dataclasses.is_dataclass(t) and not _type_ok(v, t):
            raise ConfigError(path, f"{where}{k}: expected {_type_name(t)}, got {v!r}")
        kwargs[k] = _from_dict(t, v, path, f"{where}{k}.") if dataclasses.is_dataclass(t) else v
    try:
        return cls(**kwargs)
    except TypeError as exc:
        raise ConfigError(path, f"invalid {where or 'config'}: {exc}") from None


def _type_ok(value: Any, hint: Any) -> bool:
    """Whether a recipe value fits its field's annotation (scalars, lists, dicts, optionals);
    annotations it does not know are accepted (the dataclass validates them itself)."""
    import types
    import typing

    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, h) for h in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if origin in (list, tuple) or hint in (list, tuple):
        return isinstance(value, list | tuple)
    if origin is dict or hint is dict:
        return isinstance(value, dict)
    return True


def _type_name(hint: Any) -> str:
    return getattr(hint, "__name__", None) or str(hint)


def load_config(path: str | Path | None) -> TrainConfig:
    """Read a YAML recipe (None: all defaults)."""
    import yaml

    if path is None:
        return TrainConfig()
    p = Path(path)
    if not p.is_file():
        raise ConfigError(p, "config file not found")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(p, f"invalid YAML ({exc})") from None
    return TrainConfig.from_dict(data, p)


def save_config(config: TrainConfig, path: str | Path) -> Path:
    """Write ``config`` as YAML, atomically."""
    import yaml

    from gdsynth.io import atomic_write_text

    return atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))


def apply_overrides(config: TrainConfig, **overrides: Any) -> TrainConfig:
    """Set ``section.field`` values (``None`` values are ignored): ``{"trainer.max_steps": 5}``."""
    for key, value in overrides.items():
        if value is None:
            continue
        section, _, name = key.partition(".")
        target = getattr(config, section)
        if not hasattr(target, name):
            raise ConfigError(None, f"unknown config field {key}")
        current = getattr(target, name)
        if isinstance(current, Enum):
            value = parse_choice(type(current), value, name)
        setattr(target, name, value)
    return config


def apply_settings(config: TrainConfig, settings: Sequence[str]) -> TrainConfig:
    """A new config with ``KEY=VALUE`` settings applied (``--set`` on the command line).

    ``KEY`` is a dotted path into the recipe (``loss.l1_weight``, ``data.augment.flip_p``);
    ``VALUE`` is read as YAML (``0``, ``true``, ``[enhancing]``, ``"2.5d"``). The result is
    validated like a recipe file, so a misspelled key or a wrong type is a ``ConfigError``.
    """
    import yaml

    data = config.to_dict()
    for item in settings:
        key, sep, text = item.partition("=")
        parts = key.strip().split(".")
        if not sep or not all(parts):
            raise ConfigError(None, f"--set {item!r}: expected KEY=VALUE, e.g. loss.l1_weight=50")
        try:
            value = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ConfigError(None, f"--set {item!r}: value is not valid YAML ({exc})") from None
        node = data
        for i, part in enumerate(parts[:-1]):
            node = node.get(part) if isinstance(node, dict) else None
            if not isinstance(node, dict):
                raise ConfigError(None, f"--set {item!r}: {'.'.join(parts[:i + 1])} is not a "
                                        "section of the recipe")
        if parts[-1] not in node:
            raise ConfigError(None, f"--set {item!r}: unknown field {key.strip()} (known here: "
                                    f"{', '.join(sorted(node))})")
        node[parts[-1]] = value
    return TrainConfig.from_dict(data)


__all__ = ["AugmentConfig", "DataConfig", "InitConfig", "TrainConfig", "Tracker", "apply_overrides",
           "apply_settings", "load_config", "save_config"]
