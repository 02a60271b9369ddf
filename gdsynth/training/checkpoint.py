"""Atomic checkpoints: written under a temporary name in the same folder, then ``os.replace``d,
so a crash never leaves a truncated ``last.ckpt``; loaded as data only (``weights_only=True``),
so a tampered checkpoint given to ``--resume`` cannot run code."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

from lightning_fabric.plugins.io.torch_io import TorchCheckpointIO

from gdsynth.errors import TrainingError
from gdsynth.io import atomic_path


class AtomicCheckpointIO(TorchCheckpointIO):
    """``TorchCheckpointIO`` whose saves are atomic (temp file beside the target + rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any,
                        storage_options: Any | None = None) -> None:
        with atomic_path(Path(path)) as tmp:
            super().save_checkpoint(checkpoint, tmp, storage_options)

    def load_checkpoint(self, path: Any, map_location: Any | None = lambda storage, loc: storage,
                        weights_only: bool | None = None) -> dict[str, Any]:
        """Load with ``weights_only=True`` whatever the caller or the environment
        (``TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD``) asks: tensors and plain data only, never code.
        A corrupt, truncated or unsafe file raises :class:`TrainingError` naming it."""
        if not Path(path).is_file():
            raise TrainingError(path, "checkpoint not found")
        try:
            return super().load_checkpoint(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError:
            raise TrainingError(path, "refused: corrupt, or holds objects other than tensors and "
                                      "plain data (loading them could run code)") from None
        except Exception as exc:  # noqa: BLE001 - whatever a bad file raises, one clear line
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
            raise TrainingError(path, f"not a readable checkpoint (corrupt or truncated: {first})"
                                ) from None
