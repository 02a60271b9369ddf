"""Named exceptions. Each carries the file it concerns and the problem, in one line.

The CLI turns any :class:`GdsynthError` into ``error: <path>: <problem>`` and a non-zero exit code.
"""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Any


class GdsynthError(Exception):
    """Base class: ``GdsynthError(path, problem)``; ``str()`` is ``"<path>: <problem>"``."""

    def __init__(self, path: str | Path | None, problem: str) -> None:
        self.path = None if path is None else Path(path)
        self.problem = problem
        super().__init__(f"{path}: {problem}" if path is not None else problem)


class InputFileMissingError(GdsynthError, FileNotFoundError):
    """A required input file or folder does not exist."""


class ImageReadError(GdsynthError):
    """The file exists but is not a readable image (corrupt, truncated, wrong format, a folder)."""


class ImageDimensionError(GdsynthError):
    """The image is not a 3D volume (2D, or 4D with more than one volume)."""


class NonFiniteImageError(GdsynthError):
    """The image holds NaN or infinite voxels."""


class ConstantImageError(GdsynthError):
    """Every voxel has the same value: nothing to analyse."""


class ImageTooLargeError(GdsynthError):
    """The header claims a size beyond the configured limit (refused before allocating)."""


class GeometryError(GdsynthError):
    """Invalid or incompatible geometry: non-orthonormal direction, non-positive spacing,
    images that do not overlap, grids that should match and do not."""


class BidsError(GdsynthError):
    """A dataset or table that cannot be understood as a cohort."""


class MissingSequenceError(GdsynthError):
    """An exam lacks a sequence the requested step needs."""


class RegistrationError(GdsynthError):
    """Rigid registration failed or gave an implausible result."""


class ModelError(GdsynthError):
    """A model folder or checkpoint is missing, malformed, incompatible or unsafe."""


class ConfigError(GdsynthError):
    """A configuration value or recipe is invalid."""


class OutputError(GdsynthError):
    """An output cannot be written where asked (e.g. output folder equals input folder)."""


class NotImplementedCommandError(GdsynthError):
    """A CLI command that exists in the interface but is not implemented yet."""


class TrainingError(GdsynthError):
    """Training cannot go on (e.g. too many non-finite losses) or cannot be resumed."""


def parse_choice(enum: type[Enum], value: Any, what: str) -> Any:
    """``enum(value)`` or a :class:`ConfigError` listing the valid choices."""
    try:
        return enum(value)
    except ValueError:
        valid = ", ".join(str(m.value) for m in enum)
        raise ConfigError(None, f"{what} {value!r} invalid; choose one of {valid}") from None
