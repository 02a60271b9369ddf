"""The one place inference depends on preprocessing: exam → prepared arrays, and back to native.

:func:`prepare_exam` returns a :class:`PreparedExam` holding what inference and detection need, on
the prepared grid (the T1w grid reoriented to RAS, optionally isotropic): normalized volumes
(NAWM ≈ 1), the brain mask, both geometries and the factor that turns normalized T1w intensities
back into the input T1w's own scale.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import numpy as np

from gdsynth.io import Geometry
from gdsynth.io.bids import Exam
from gdsynth.models.card import ModelCard

log = logging.getLogger(__name__)


@dataclass
class PreparedExam:
    """One exam on the prepared grid.

    Attributes:
        volumes: normalized float32 (X, Y, Z) arrays by sequence ("T1w", "T2w", "FLAIR").
        brain_mask: bool (X, Y, Z).
        geometry: the prepared grid (RAS voxel order).
        native_geometry: the input T1w file's grid (where outputs are written).
        t1w_scale: normalized T1w × ``t1w_scale`` = input T1w intensity: the T1w NAWM median
            (input units), times the bias field estimated in preprocessing when one was removed
            (then an (X, Y, Z) array on the prepared grid).
        provenance: preprocessing record (JSON-friendly).
    """

    volumes: dict[str, np.ndarray]
    brain_mask: np.ndarray
    geometry: Geometry
    native_geometry: Geometry
    t1w_scale: float | np.ndarray = 1.0
    provenance: dict = field(default_factory=dict)

    def stack(self, inputs: list[str]) -> np.ndarray:
        """The model input (S, X, Y, Z), sequences in the card's order."""
        return np.stack([self.volumes[s] for s in inputs]).astype(np.float32, copy=False)


def prepare_exam(exam: Exam, card: ModelCard) -> PreparedExam:
    """Read, register, mask and normalize ``exam`` into the prepared space the model expects."""
    from gdsynth import preprocess

    exam.require(("T1w", *card.inputs))
    config = preprocess.PrepConfig(spacing=card.spacing_mm)
    prep = preprocess.prepare_arrays(exam, config)
    prov = dict(getattr(prep, "provenance", {}) or {})
    return PreparedExam(
        volumes={k: v for k, v in prep.volumes.items() if k in ("T1w", "T2w", "FLAIR")},
        brain_mask=np.asarray(prep.brain_mask, dtype=bool),
        geometry=prep.geometry,
        native_geometry=prep.native_geometry,
        t1w_scale=_t1w_scale(prep, prov),
        provenance=prov,
    )


def _t1w_scale(prep, provenance: dict) -> float | np.ndarray:
    scale: float | np.ndarray = float(provenance["nawm_median"]["T1w"])
    bias = getattr(prep, "bias_fields", None) or {}
    if bias.get("T1w") is not None:
        scale = scale * np.asarray(bias["T1w"], dtype=np.float32)
    return scale


def move(array: np.ndarray, source: Geometry, target: Geometry, *, nearest: bool = False
         ) -> np.ndarray:
    """Put an (X, Y, Z) array on ``source`` onto ``target``: an exact axis permutation/flip when
    both grids hold the same voxels (prepared = reoriented T1w), else world-space resampling
    (linear, or nearest for labels)."""
    from gdsynth.preprocess.orient import apply_index_map, index_map
    from gdsynth.preprocess.resample import resample

    m = index_map(source, target)
    if m is not None:
        return apply_index_map(array, m, target.shape)
    return resample(array, source, target, interpolation="nearest" if nearest else "linear")


def to_native(prep: PreparedExam, array: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """A prepared-grid array on the input T1w grid (exact unless preprocessing resampled)."""
    return move(array, prep.geometry, prep.native_geometry, nearest=nearest)


def to_prepared(prep: PreparedExam, array: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """Inverse of :func:`to_native`: a native-grid array onto the prepared grid."""
    return move(array, prep.native_geometry, prep.geometry, nearest=nearest)
