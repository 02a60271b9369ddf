"""Run-time choices shared by commands: the compute device, numeric precision, threads and seeding."""

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
        """The choice named ``value`` (any case); a bool is ``on`` or ``off``. Anything else
        raises :class:`ConfigError` listing the valid choices."""
        if isinstance(value, bool):
            return cls.on if value else cls.off
        text = value.value if isinstance(value, Enum) else str(value)
        try:
            return cls(text.lower())
        except ValueError:
            valid = ", ".join(m.value for m in cls)
            raise ConfigError(None, f"compile {value!r} invalid; choose one of {valid}") from None


class Precision(str, Enum):
    """Numeric precision of the networks (``--precision``): ``bf16`` runs convolutions and matmuls
    in bfloat16 autocast (weights, normalization statistics, losses and outputs stay float32),
    ``fp32`` everything in float32, ``auto`` bf16 where the hardware has bf16 units (CUDA with
    bf16 support; a CPU with AVX-512 BF16 or AMX, see :func:`cpu_has_bf16`), else fp32.

    On a CPU without them bf16 is emulated by oneDNN and slower than fp32 (docs/benchmarks.md,
    "bf16"); ``bf16`` still runs there, ``auto`` does not pick it."""

    auto = "auto"
    bf16 = "bf16"
    fp32 = "fp32"

    @classmethod
    def parse(cls, value: str | Precision) -> Precision:
        """The choice named ``value``; Lightning's spellings ``32-true``, ``32`` and
        ``bf16-mixed`` (recipes and run folders written before ``auto|bf16|fp32``) are read as
        ``fp32`` and ``bf16``."""
        text = value.value if isinstance(value, Enum) else str(value).strip().lower()
        text = _PRECISION_ALIASES.get(text, text)
        try:
            return cls(text)
        except ValueError:
            raise ConfigError(None, f"precision {value!r} invalid; choose one of auto, bf16, "
                                    "fp32") from None


_PRECISION_ALIASES = {"32-true": "fp32", "32": "fp32", "float32": "fp32",
                      "bf16-mixed": "bf16", "bfloat16": "bf16"}

#: CPU flags (``/proc/cpuinfo``) of native bf16 arithmetic: AVX-512 BF16 and AMX.
CPU_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_has_bf16() -> bool:
    """Whether this CPU computes bf16 natively (AVX-512 BF16 or AMX), as torch reports it (else
    the flags of ``/proc/cpuinfo``). oneDNN also *runs* bf16 on plain AVX-512 CPUs, by emulation,
    slower than fp32: that is not counted."""
    import torch

    probes = [getattr(torch.cpu, n, None) for n in ("_is_avx512_bf16_supported",
                                                    "_is_amx_tile_supported")]
    if all(callable(p) for p in probes):
        return any(bool(p()) for p in probes)  # type: ignore[misc]
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            flags = next((ln for ln in f if ln.startswith("flags")), "").split()
    except OSError:
        return False
    return any(flag in flags for flag in CPU_BF16_FLAGS)


def resolve_precision(choice: str | Precision, device) -> Precision:  # device: torch.device | str
    """``bf16`` or ``fp32`` for a run on ``device``: ``auto`` is bf16 on CUDA devices with bf16
    support and on CPUs with native bf16 (:func:`cpu_has_bf16`), else fp32; an explicit choice
    is kept (bf16 on a CPU without bf16 units runs emulated, slower)."""
    import torch

    p = Precision.parse(choice)
    if p is not Precision.auto:
        return p
    kind = torch.device(device).type
    if kind == "cuda":
        return Precision.bf16 if torch.cuda.is_bf16_supported() else Precision.fp32
    if kind == "cpu":
        return Precision.bf16 if cpu_has_bf16() else Precision.fp32
    return Precision.fp32


def lightning_precision(precision: Precision) -> str:
    """The Lightning ``Trainer(precision=...)`` value of a resolved (not ``auto``) precision."""
    if precision is Precision.auto:
        raise ValueError("resolve the precision first (resolve_precision)")
    return "bf16-mixed" if precision is Precision.bf16 else "32-true"


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
