"""Run-time choices shared by commands: the compute device, threads and seeding."""

from __future__ import annotations

import os
import random
from enum import Enum

from gdsynth.errors import ConfigError


class DeviceChoice(str, Enum):
    """Where to run the networks: ``auto`` picks CUDA when available, else CPU."""

    auto = "auto"
    cpu = "cpu"
    cuda = "cuda"


#: ``--compile auto`` compiles (on CPU) a run of at least this many exam x MC samples, counted
#: in 1 mm exams (an exam prepared at s mm counts 1/s^3): about where the compile time (cold
#: Inductor cache) is paid back (docs/benchmarks.md, "torch.compile").
COMPILE_AUTO_MIN_SAMPLES = 16


class CompileChoice(str, Enum):
    """Whether to run the generator through ``torch.compile`` (``--compile``): ``auto`` (on CPU,
    for runs long enough to pay back the compile time), ``on`` (falling back to eager with a
    warning when compilation fails) or ``off``. See :mod:`gdsynth.inference.compiled`."""

    auto = "auto"
    on = "on"
    off = "off"

    @classmethod
    def parse(cls, value: str | bool | CompileChoice) -> CompileChoice:
        if isinstance(value, bool):
            return cls.on if value else cls.off
        text = value.value if isinstance(value, Enum) else str(value)
        try:
            return cls(text.lower())
        except ValueError:
            raise ConfigError(None, f"compile {value!r} invalid; choose one of auto, on, off") from None


def resolve_device(choice: str | DeviceChoice = "auto"):  # -> torch.device
    """Turn ``auto|cpu|cuda[:N]`` into a ``torch.device``; asking for CUDA without one is an error."""
    import torch

    value = choice.value if isinstance(choice, DeviceChoice) else str(choice)
    if value == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if value == "cpu":
        return torch.device("cpu")
    if value.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(None, "--device cuda was asked for but no CUDA device is available")
        return torch.device(value)
    raise ConfigError(None, f"unknown device {value!r}; choose one of auto, cpu, cuda")


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (CPU and CUDA) for reproducible runs."""
    import numpy as np
    import torch

    random.seed(seed)
    np.random.seed(seed % (2**32))  # noqa: NPY002 - third-party code uses the global RNG
    torch.manual_seed(seed)
    os.environ.setdefault("PYTHONHASHSEED", str(seed))
