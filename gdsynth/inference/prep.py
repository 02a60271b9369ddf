"""The one place inference depends on preprocessing: exam → prepared arrays, and back to native.

:func:`prepare_exam` returns a :class:`PreparedExam` holding what inference and detection need, on
the prepared grid (the T1w grid reoriented to RAS, optionally isotropic): normalized volumes
(NAWM ≈ 1), the brain mask, both geometries and the factor that turns normalized T1w intensities
back into the input T1w's own scale.

:class:`PrepCache` reuses the preparation cache of :mod:`gdsynth.preprocess` (a ``gdsynth-prep``
folder, as ``gdsynth prepare`` writes it): an exam whose cache entry is valid for the model's
preparation (same input SHA-256, parameters and gdsynth version: the cache's own rule) is read
back instead of being prepared again, with identical results.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from gdsynth.io import Geometry
from gdsynth.io.bids import Exam
from gdsynth.models.card import ModelCard

if TYPE_CHECKING:
    from gdsynth.preprocess import PreparedVolumes, PrepConfig

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
        missing: the model inputs this exam lacks (among the card's ``optional_inputs``,
            :func:`exam_inputs`): not in ``volumes``, zeros in :meth:`stack`.
    """

    volumes: dict[str, np.ndarray]
    brain_mask: np.ndarray
    geometry: Geometry
    native_geometry: Geometry
    t1w_scale: float | np.ndarray = 1.0
    provenance: dict = field(default_factory=dict)
    missing: tuple[str, ...] = ()

    def stack(self, inputs: list[str]) -> np.ndarray:
        """The model input (S, X, Y, Z), sequences in the card's order; a sequence of
        :attr:`missing` is all zeros, as input drop-out presented it in training
        (:func:`gdsynth.data.patches.to_tensors`). Any other absent sequence is a KeyError."""
        shape = self.brain_mask.shape
        return np.stack([np.zeros(shape, np.float32) if s in self.missing else self.volumes[s]
                         for s in inputs]).astype(np.float32, copy=False)

    def inputs_used(self, inputs: list[str]) -> list[str]:
        """The sequences of ``inputs`` (the card's) this exam gave the model."""
        return [s for s in inputs if s not in self.missing]


def exam_inputs(exam: Exam, card: ModelCard) -> tuple[list[str], list[str]]:
    """``(used, missing)`` inputs of ``card`` for ``exam`` (:meth:`ModelCard.split_inputs`): an
    exam may lack only the card's ``optional_inputs``; otherwise :class:`MissingSequenceError`
    names the exam's file, the missing sequences and those the model can do without."""
    from gdsynth.io.sequences import input_names

    where = next((p for n, p in exam.files.items() if n in input_names()), None)
    return card.split_inputs(exam.files, exam=exam.prefix, path=where)


def prep_config(card: ModelCard, *, use_post: bool = False,
                missing: tuple[str, ...] | list[str] = ()) -> PrepConfig:
    """The preparation ``card``'s model needs: its spacing, the T1w and its inputs (in the
    sequence registry's order) but the ``missing`` ones, default parameters otherwise."""
    from gdsynth import preprocess
    from gdsynth.io.sequences import REFERENCE, input_names

    sequences = tuple(s for s in input_names()
                      if s == REFERENCE or (s in card.inputs and s not in missing))
    return preprocess.PrepConfig(spacing=card.spacing_mm, sequences=sequences, use_post=use_post)


def prepare_exam(exam: Exam, card: ModelCard) -> PreparedExam:
    """Read, register, mask, bias-correct and normalize ``exam`` into the model's prepared space
    (:func:`gdsynth.preprocess.prepare_arrays`; the real post-Gd T1w, if any, is not used). An
    exam lacking some of the card's ``optional_inputs`` is prepared from the others
    (:func:`exam_inputs`)."""
    from gdsynth import preprocess

    _, missing = exam_inputs(exam, card)
    vols = preprocess.prepare_arrays(exam, prep_config(card, missing=missing))
    return from_volumes(exam, vols, missing=missing)


Prepare = Callable[[Exam, ModelCard], PreparedExam]


class PrepCache:
    """A preparation cache folder (``gdsynth-prep`` layout) used by inference.

    :meth:`prepare` returns an exam's cached preparation, read back and never recomputed, when
    the folder holds a valid entry for the model's preparation: the cache's own rule
    (:func:`gdsynth.preprocess.find_prepared`: same input SHA-256, parameters and gdsynth
    version, every output present), an entry written by ``gdsynth prepare`` (with the real
    post-Gd: the pre-contrast volumes do not depend on it) or by an earlier run. Otherwise, with
    ``write`` false, ``fallback`` prepares the exam and the folder is only read; with ``write``
    true the exam is prepared (pre-contrast sequences only, as inference needs) and written to the
    folder, unless the folder holds this exam prepared with other parameters (another spacing,
    say), which is left alone. ``reused`` and ``prepared`` list the exams of each kind.
    """

    def __init__(self, root: str | Path, *, write: bool = False) -> None:
        self.root = Path(root)
        self.write = write
        self.reused: list[str] = []
        self.prepared: list[str] = []

    def wrap(self, fallback: Prepare) -> Prepare:
        """A ``prepare(exam, card)`` for :func:`gdsynth.inference.cohort.run_cohort`."""
        return lambda exam, card: self.prepare(exam, card, fallback)

    def prepare(self, exam: Exam, card: ModelCard, fallback: Prepare | None = None) -> PreparedExam:
        from gdsynth import preprocess
        from gdsynth.errors import GdsynthError
        from gdsynth.preprocess.provenance import cache_key, input_records

        _, missing = exam_inputs(exam, card)
        config = prep_config(card, missing=missing)
        exam.require(config.sequences)
        hashes = input_records(exam, replace(config, use_post=True))
        found = preprocess.find_prepared(exam, self.root, config, hashes=hashes, post_optional=True)
        if found.prepared is not None:
            try:
                vols = preprocess.load_prepared(found.prepared)
            except GdsynthError as exc:  # a cached image damaged after it was written
                log.warning("%s: cached preparation unreadable (%s): preparing again",
                            exam.prefix, exc)
            else:
                log.info("%s: preparation reused from the cache in %s", exam.prefix, self.root)
                self.reused.append(exam.prefix)
                return from_volumes(exam, vols, missing=missing)
        elif not found.absent:
            log.info("%s: the cache in %s is not used (%s)", exam.prefix, self.root, found.reason)
        if not self.write or found.foreign:
            return (fallback or prepare_exam)(exam, card)
        pre = {k: v for k, v in hashes.items() if k != "T1w_gd"}  # = input_records(exam, config)
        vols = preprocess.prepare_arrays(exam, config, hashes=pre)
        try:
            preprocess.write_prepared(exam, self.root, vols, cache_key(pre, config))
            log.info("%s: prepared and written to the cache in %s", exam.prefix, self.root)
        except (OSError, GdsynthError) as exc:
            log.warning("%s: preparation not cached (%s); going on", exam.prefix, exc)
        self.prepared.append(exam.prefix)
        return from_volumes(exam, vols, missing=missing)


def from_volumes(exam: Exam, prep: PreparedVolumes,
                 missing: tuple[str, ...] | list[str] = ()) -> PreparedExam:
    """The inference view of prepared volumes (computed or read from the cache): the pre-contrast
    volumes, mask, grids and the map back to the input T1w's intensity scale; ``missing``: the
    model inputs the exam lacks (:attr:`PreparedExam.missing`)."""
    from gdsynth.io import read_image
    from gdsynth.io.sequences import input_names
    from gdsynth.preprocess.orient import reorient_to_ras
    from gdsynth.preprocess.resample import move_to_grid

    raw, native = read_image(exam.t1w)  # type: ignore[arg-type]
    raw = move_to_grid(*reorient_to_ras(raw, native), prep.geometry)
    median = float(prep.provenance["nawm_median"]["T1w"])
    scale = t1w_scale_map(raw, prep.images["T1w"], prep.mask, prep.geometry.spacing, median)
    return PreparedExam(
        volumes={k: v for k, v in prep.images.items() if k in input_names()},
        brain_mask=np.asarray(prep.mask, dtype=bool),
        geometry=prep.geometry,
        native_geometry=prep.native_geometry,
        t1w_scale=scale,
        provenance=prep.provenance,
        missing=tuple(missing),
    )


def t1w_scale_map(raw: np.ndarray, normalized: np.ndarray, mask: np.ndarray,
                  spacing: tuple[float, ...], median: float, *, sigma_mm: float = 8.0,
                  coarse_mm: float = 4.0) -> np.ndarray:
    """The factor (X, Y, Z) float32 that maps the normalized T1w back to the input T1w.

    normalized = raw / (bias × median) where preprocessing removed a bias field (N4), so
    raw / normalized = median × bias in tissue. That ratio is measured in the brain where the
    normalized T1w is clearly above background (> 0.3) and spread smoothly everywhere by a
    normalized convolution (Gaussian, ``sigma_mm``, on a ``coarse_mm`` grid): the bias field is
    smooth, so this restores it, and without N4 it gives the NAWM median everywhere.
    """
    from scipy import ndimage as ndi

    weight = mask & (normalized > 0.3)
    if weight.sum() < 100:
        return np.full(raw.shape, median, np.float32)
    step = [max(1, int(round(coarse_mm / s))) for s in spacing]
    sl = tuple(slice(None, None, k) for k in step)
    w = weight[sl].astype(np.float32)
    ratio = np.where(weight, raw / np.where(weight, normalized, 1.0), 0.0)[sl].astype(np.float32)
    sigma = [sigma_mm / (s * k) for s, k in zip(spacing, step, strict=True)]
    num = ndi.gaussian_filter(ratio * w, sigma, mode="nearest")
    den = ndi.gaussian_filter(w, sigma, mode="nearest")
    coarse = np.where(den > 1e-3, num / np.maximum(den, 1e-3), median)
    # coarse voxel c sits at full voxel c * step: output[i] = coarse[i / step] (linear)
    full = ndi.affine_transform(coarse.astype(np.float32), 1.0 / np.asarray(step, float),
                                output_shape=raw.shape, order=1, mode="nearest")
    return full.astype(np.float32)


def to_native(prep: PreparedExam, array: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """A prepared-grid array on the input T1w grid (exact unless preprocessing resampled;
    :func:`gdsynth.preprocess.move_to_grid`, nearest neighbour for labels)."""
    from gdsynth.preprocess.resample import move_to_grid

    return move_to_grid(array, prep.geometry, prep.native_geometry,
                        interpolation="nearest" if nearest else "linear")


def to_prepared(prep: PreparedExam, array: np.ndarray, *, nearest: bool = False) -> np.ndarray:
    """Inverse of :func:`to_native`: a native-grid array onto the prepared grid."""
    from gdsynth.preprocess.resample import move_to_grid

    return move_to_grid(array, prep.native_geometry, prep.geometry,
                        interpolation="nearest" if nearest else "linear")
