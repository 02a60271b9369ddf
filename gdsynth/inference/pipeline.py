"""One exam: synthesis (prepared grid → outputs on the input T1w grid) and detection.

Pure-ish steps with explicit inputs and outputs:

* :func:`synthesize_prepared` — prepared arrays → :class:`Synthesis` (prepared grid, normalized);
* :func:`write_synthesis` — :class:`Synthesis` → files on the input T1w grid;
* :func:`read_synthesis` — those files → :class:`Synthesis` on the prepared grid (for ``detect``);
* :func:`detect_synthesis` / :func:`write_detection` — lesions, table and activity summary.

The virtual post-Gd T1w is written in the input T1w's intensity scale: normalized synthetic
post × ``PreparedExam.t1w_scale`` (the T1w NAWM median, times the bias field when preprocessing
removed one), so it can be windowed like the real post-contrast scan. The enhancement and
uncertainty maps stay in normalized units (NAWM = 1).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from gdsynth import __version__
from gdsynth.inference import outputs as O
from gdsynth.inference.mc import MCDropoutPredictor, SharedEncoder, split_mean_std
from gdsynth.inference.predictor import Predictor, make_predictor, size_multiple
from gdsynth.inference.prep import PreparedExam, to_native, to_prepared
from gdsynth.inference.volume import predict_volume
from gdsynth.io import read_image, write_image, write_json, write_labels, write_tsv
from gdsynth.io.bids import Exam
from gdsynth.models.card import ModelCard


@dataclass(frozen=True)
class SynthesisSettings:
    """How the generator is run. ``mc_samples`` > 1 turns MC dropout on (seeded by ``seed``);
    ``batch_size`` slices (or 3D windows) per forward; ``overlap`` of 3D windows (fraction);
    ``max_items`` caps batch × MC samples in one forward. Default: on CPU ``batch_size`` (one
    sample per forward: bigger forwards were slower per item in benchmarks/bench_inference.py,
    their activations no longer fit the caches), on CUDA all samples of a batch in one forward.
    ``compile``: ``auto``, ``on`` or ``off`` (or a bool), run the generator through
    ``torch.compile`` (:mod:`gdsynth.inference.compiled`); ``auto`` compiles on CPU for runs of
    least ``COMPILE_AUTO_MIN_SAMPLES`` exam × MC samples (in 1 mm exams;
    :func:`gdsynth.inference.cohort.run_cohort` counts the cohort, one exam alone is below it). Not part of :meth:`key`: compiled and eager
    outputs agree to float rounding."""

    mc_samples: int = 1
    seed: int = 0
    batch_size: int = 8
    overlap: float = 0.5
    max_items: int | None = None
    channels_last: bool = False
    compile: str | bool = "auto"

    def key(self) -> dict[str, Any]:
        """The settings that change the outputs (part of the resume key)."""
        return {"mc_samples": self.mc_samples, "seed": self.seed, "overlap": self.overlap}


@dataclass
class Synthesis:
    """Synthesis on the prepared grid, (X, Y, Z) float32 arrays in normalized units."""

    synthetic: np.ndarray
    enhancement: np.ndarray
    uncertainty: np.ndarray | None = None
    heads: dict[str, np.ndarray] = field(default_factory=dict)


def use_compile(generator: nn.Module, settings: SynthesisSettings,
                samples: float | None = None) -> bool:
    """Whether ``settings.compile`` compiles ``generator`` for a run of ``samples`` exam × MC
    samples in 1 mm exams (default: one exam; see
    :func:`gdsynth.inference.compiled.resolve_compile`), warning once and answering False when
    the setup cannot compile."""
    from gdsynth.inference.compiled import compile_unsupported, resolve_compile, warn_once
    from gdsynth.inference.predictor import module_device

    device = module_device(generator)
    if not resolve_compile(settings.compile, device, settings.mc_samples if samples is None
                           else samples):
        return False
    reason = compile_unsupported(device)
    if reason is not None:
        warn_once(f"torch.compile unavailable ({reason}); running the generator eagerly")
        return False
    return True


def build_predictor(generator: nn.Module, settings: SynthesisSettings) -> Predictor:
    """The plain predictor, wrapped in MC dropout when ``settings.mc_samples`` > 1, compiled
    when ``settings.compile`` says so (see :func:`use_compile`)."""
    from gdsynth.inference.compiled import PadSingle, warn_once
    from gdsynth.inference.predictor import module_device

    compiled = use_compile(generator, settings)
    if settings.mc_samples <= 1:
        predictor: Predictor = make_predictor(generator, channels_last=settings.channels_last,
                                              compile=compiled)
    else:
        # the encoder (before the dropout modules) runs once per batch of slices, not per sample
        shared = SharedEncoder.wrap(generator, compile=compiled)
        if compiled and (shared is None or shared.compiled is None):
            warn_once("torch.compile: MC dropout with this generator runs eagerly (compiled MC "
                      "needs a U-Net with dropout only at the end of decoder blocks)",
                      level=logging.INFO)
            compiled = False
        plain = make_predictor(shared or generator, channels_last=settings.channels_last)
        max_items = settings.max_items
        if max_items is None and module_device(generator).type == "cpu":
            max_items = settings.batch_size
        per_forward = None  # compiled: as many samples per forward in every batch
        if compiled:
            per_forward = settings.mc_samples if max_items is None else \
                max(1, min(settings.mc_samples, max_items // settings.batch_size))
        predictor = MCDropoutPredictor(generator, plain, settings.mc_samples, seed=settings.seed,
                                       max_items=max_items, shared=shared,
                                       per_forward=per_forward)
    # a one-slice last batch would compile a second graph (size 1 is specialised)
    return PadSingle(predictor) if compiled and settings.batch_size > 1 else predictor


def synthesize_prepared(
    prep: PreparedExam, generator: nn.Module, card: ModelCard, settings: SynthesisSettings
) -> Synthesis:
    """Run the generator over the whole prepared volume (see :mod:`gdsynth.inference.volume`)."""
    torch.manual_seed(settings.seed)
    out = predict_volume(
        build_predictor(generator, settings), prep.stack(card.inputs), card,
        size_multiple=size_multiple(generator), batch_size=settings.batch_size,
        overlap=settings.overlap,
    ).numpy()
    mean, std = split_mean_std(out) if settings.mc_samples > 1 else (out, None)
    pre = prep.volumes["T1w"]
    synthetic = pre + mean[0] if card.residual else mean[0]
    heads = {h: (1.0 / (1.0 + np.exp(-mean[1 + i]))).astype(np.float32)
             for i, h in enumerate(card.heads)}
    return Synthesis(
        synthetic=synthetic.astype(np.float32),
        enhancement=(synthetic - pre).astype(np.float32),
        uncertainty=None if std is None else std[0].astype(np.float32),
        heads=heads,
    )


def write_synthesis(out: Path, exam: Exam, prep: PreparedExam, synth: Synthesis,
                    record: dict[str, Any]) -> list[Path]:
    """Write the synthesis maps on the input T1w grid, then ``record`` (the synthesis provenance,
    last: it marks the synthesis complete)."""
    native = prep.native_geometry
    scaled = synth.synthetic * prep.t1w_scale
    written = [
        write_image(O.SYNTHETIC.path(out, exam), to_native(prep, scaled), native),
        write_image(O.ENHANCEMENT.path(out, exam), to_native(prep, synth.enhancement), native),
    ]
    if synth.uncertainty is not None:
        written.append(write_image(O.UNCERTAINTY.path(out, exam),
                                   to_native(prep, synth.uncertainty), native))
    for head, prob in synth.heads.items():
        written.append(write_image(O.head_output(head).path(out, exam), to_native(prep, prob), native))
    written.append(write_json(O.SYNTHESIS_RECORD.path(out, exam), record))
    return written


def read_synthesis(out: Path, exam: Exam, prep: PreparedExam, card: ModelCard) -> Synthesis:
    """Read the maps ``synthesize`` wrote (input T1w grid) back onto the prepared grid."""
    from gdsynth.errors import GeometryError

    def load(output: O.Output) -> np.ndarray:
        array, geometry = read_image(output.path(out, exam), allow_constant=True)
        if not geometry.same_grid(prep.native_geometry):
            raise GeometryError(output.path(out, exam), "is not on the input T1w grid; rerun synthesize")
        return to_prepared(prep, array)

    enhancement = load(O.ENHANCEMENT)
    unc_path = O.UNCERTAINTY.path(out, exam)
    heads = {h: load(O.head_output(h)) for h in card.heads if O.head_output(h).path(out, exam).exists()}
    return Synthesis(
        synthetic=prep.volumes["T1w"] + enhancement,
        enhancement=enhancement,
        uncertainty=load(O.UNCERTAINTY) if unc_path.exists() else None,
        heads=heads,
    )


def detect_synthesis(prep: PreparedExam, synth: Synthesis, params, stage=None):  # -> DetectionResult
    """Run :func:`gdsynth.detection.detect_lesions` on the prepared grid (with the model's learned
    lesion stage when given)."""
    from gdsynth.detection.detect import detect_lesions

    return detect_lesions(
        synth.enhancement, brain_mask=prep.brain_mask, spacing=prep.geometry.spacing,
        params=params, flair=prep.volumes.get("FLAIR"), t1w=prep.volumes.get("T1w"),
        t2w=prep.volumes.get("T2w"), uncertainty=synth.uncertainty, heads=synth.heads,
        stage=stage,
    )


def lesion_rows(lesions: list[dict[str, Any]], prep: PreparedExam) -> list[dict[str, Any]]:
    """Table rows: centre in RAS world mm and in input-T1w voxel indices (i, j, k)."""
    rows = []
    for les in lesions:
        ijk = np.array([les["i"], les["j"], les["k"]], dtype=float)
        lps = prep.geometry.index_to_world(ijk)
        ras = prep.geometry.index_to_world(ijk, ras=True)
        nat = prep.native_geometry.world_to_index(lps)
        rows.append({
            "label": les["label"], "x_mm": float(ras[0]), "y_mm": float(ras[1]),
            "z_mm": float(ras[2]), "i": float(nat[0]), "j": float(nat[1]), "k": float(nat[2]),
            "volume_mm3": les["volume_mm3"], "mean_enhancement": les["mean_enhancement"],
            "max_enhancement": les["max_enhancement"], "score": les["score"],
            "uncertainty": les.get("mean_uncertainty"), "location": les.get("location"),
            "in_dseg": bool(les.get("in_dseg", True)),
            **{k: v for k, v in les.items() if k.startswith(O.ATTRIBUTION_PREFIXES)},
        })
    return rows


def write_detection(out: Path, exam: Exam, prep: PreparedExam, result,
                    record: dict[str, Any]) -> list[Path]:
    """Write lesion labels (input T1w grid), the lesion table, then the activity summary (last)."""
    labels = to_native(prep, result.labels.astype(np.int32), nearest=True)
    summary = {
        "exam": exam.id,
        **{k: result.summary[k] for k in ("probability_active", "n_lesions",
                                          "refer_for_gadolinium", "reason")},
        "detection": {k: v for k, v in result.summary.items()
                      if k not in ("probability_active", "n_lesions", "refer_for_gadolinium", "reason")},
        "gdsynth_version": __version__,
        **record,
    }
    rows = lesion_rows(result.lesions, prep)
    extra = sorted({k for r in rows for k in r if k.startswith(O.ATTRIBUTION_PREFIXES)})
    return [
        write_labels(O.LESION_LABELS.path(out, exam), labels, prep.native_geometry),
        write_tsv(O.LESION_TABLE.path(out, exam), rows, (*O.LESION_COLUMNS, *extra)),
        write_json(O.SUMMARY.path(out, exam), summary),
    ]
