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
from gdsynth.runtime import CompileChoice


@dataclass(frozen=True)
class SynthesisSettings:
    """How the generator is run. ``mc_samples`` > 1 turns MC dropout on (seeded by ``seed``);
    ``batch_size`` slices (or 3D windows) per forward; ``overlap`` of 3D windows (fraction);
    ``max_items`` caps batch × MC samples in one forward. Default: on CPU ``batch_size`` (one
    sample per forward: bigger forwards were slower per item in benchmarks/bench_inference.py,
    their activations no longer fit the caches), on CUDA all samples of a batch in one forward.
    ``compile`` (:class:`gdsynth.runtime.CompileChoice`; its name or a bool is parsed): run the
    generator through ``torch.compile`` (:mod:`gdsynth.inference.compiled`); ``auto`` compiles on
    CPU for runs of at least ``COMPILE_AUTO_MIN_SAMPLES`` exam × MC samples (in 1 mm exams;
    :func:`gdsynth.inference.cohort.run_cohort` counts the cohort, one exam alone is below it).
    ``precision``: ``auto``, ``bf16`` or ``fp32`` (:class:`gdsynth.runtime.Precision`; ``auto`` is
    bf16 on hardware with bf16 units); ``channels_last``: the memory format of the forward
    (None: channels-last for 2D/2.5D networks on CPU). Neither is part of :meth:`key`: compiled
    and eager outputs agree to float rounding, bf16 and fp32 maps to SSIM >= 0.999 in the brain
    (docs/benchmarks.md)."""

    mc_samples: int = 1
    seed: int = 0
    batch_size: int = 8
    overlap: float = 0.5
    max_items: int | None = None
    channels_last: bool | None = None
    compile: CompileChoice = CompileChoice.auto
    precision: str = "auto"

    def __post_init__(self) -> None:
        object.__setattr__(self, "compile", CompileChoice.parse(self.compile))

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
    layout, precision = settings.channels_last, settings.precision
    if settings.mc_samples <= 1:
        predictor: Predictor = make_predictor(generator, channels_last=layout, compile=compiled,
                                              precision=precision)
    else:
        # the encoder (before the dropout modules) runs once per batch of slices, not per sample
        forward: Predictor | SharedEncoder | None = SharedEncoder.wrap(
            generator, channels_last=layout, precision=precision, compile=compiled)
        if forward is None:
            if compiled:
                warn_once("torch.compile: MC dropout with this generator runs eagerly (compiled "
                          "MC needs a U-Net with dropout only at the end of decoder blocks)",
                          level=logging.INFO)
                compiled = False
            forward = make_predictor(generator, channels_last=layout, precision=precision)
        max_items = settings.max_items
        if max_items is None and module_device(generator).type == "cpu":
            max_items = settings.batch_size
        per_forward = None  # compiled: as many samples per forward in every batch
        if compiled:
            per_forward = settings.mc_samples if max_items is None else \
                max(1, min(settings.mc_samples, max_items // settings.batch_size))
        predictor = MCDropoutPredictor(generator, forward, settings.mc_samples, seed=settings.seed,
                                       max_items=max_items, per_forward=per_forward)
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


def native_synthetic(prep: PreparedExam, synth: Synthesis, input_t1w: np.ndarray) -> np.ndarray:
    """The synthetic post-Gd on the input T1w grid, in its intensity scale: inside the brain mask
    the synthesis × ``t1w_scale``, clipped at 0 (a residual can push dark CSF below zero); outside
    it the input T1w itself (the model is trained and scored in the brain only; skull, scalp and
    background are not synthesized, so a review window fits both scans)."""
    synthetic = np.maximum(to_native(prep, synth.synthetic * prep.t1w_scale), 0.0)
    brain = to_native(prep, prep.brain_mask.astype(np.uint8), nearest=True) > 0
    return np.where(brain, synthetic, input_t1w).astype(np.float32)


def write_synthesis(out: Path, exam: Exam, prep: PreparedExam, synth: Synthesis,
                    record: dict[str, Any]) -> list[Path]:
    """Write the synthesis maps on the input T1w grid, each with its BIDS sidecar, then ``record``
    (the synthesis provenance, last: it marks the synthesis complete)."""
    native = prep.native_geometry
    t1w, _ = read_image(exam.t1w, allow_constant=True)  # type: ignore[arg-type]
    written = [
        write_image(O.SYNTHETIC.path(out, exam), native_synthetic(prep, synth, t1w), native),
        write_image(O.ENHANCEMENT.path(out, exam), to_native(prep, synth.enhancement), native),
    ]
    notes = ["Synthetic post-gadolinium T1w (input T1w intensity scale; outside the brain mask: "
             "the input T1w)", "Synthetic post-Gd minus pre-contrast T1w, NAWM = 1 units"]
    if synth.uncertainty is not None:
        written.append(write_image(O.UNCERTAINTY.path(out, exam),
                                   to_native(prep, synth.uncertainty), native))
        notes.append("MC-dropout standard deviation of the synthetic post-Gd, NAWM = 1 units")
    for head, prob in synth.heads.items():
        written.append(write_image(O.head_output(head).path(out, exam), to_native(prep, prob), native))
        notes.append(f"Probability of '{head}' from the model head")
    written += [O.write_output_sidecar(out, exam, path, note) for path, note in zip(written, notes, strict=True)]
    written.append(write_json(O.SYNTHESIS_RECORD.path(out, exam), record))
    return written


def read_synthesis(out: Path, exam: Exam, prep: PreparedExam, card: ModelCard) -> Synthesis:
    """Read the maps ``synthesize`` wrote (input T1w grid) back onto the prepared grid."""
    from gdsynth.errors import GeometryError

    def load(output: O.Output) -> np.ndarray:
        array, geometry = read_image(output.find(out, exam), allow_constant=True)
        if not geometry.same_grid(prep.native_geometry):
            raise GeometryError(output.find(out, exam), "is not on the input T1w grid; rerun synthesize")
        return to_prepared(prep, array)

    enhancement = load(O.ENHANCEMENT)
    unc_path = O.UNCERTAINTY.find(out, exam)
    heads = {h: load(O.head_output(h)) for h in card.heads if O.head_output(h).find(out, exam).exists()}
    return Synthesis(
        synthetic=prep.volumes["T1w"] + enhancement,
        enhancement=enhancement,
        uncertainty=load(O.UNCERTAINTY) if unc_path.exists() else None,
        heads=heads,
    )


def detect_synthesis(prep: PreparedExam, synth: Synthesis, params,
                     domain: dict[str, Any] | None = None, *, stage=None):  # -> DetectionResult
    """Run :func:`gdsynth.detection.detect_lesions` on the prepared grid (with the model's learned
    lesion stage when given); ``domain`` (the card's ``normalization["domain"]``) adds the
    out-of-domain quality flag when the inputs are unlike the training exams. Sequences the exam
    lacks (``prep.missing``) are absent from both: the domain check skips them and the detector
    works from the sequences present (:func:`gdsynth.detection.detect.detect_lesions`)."""
    from gdsynth.detection.detect import detect_lesions
    from gdsynth.detection.patient import add_quality_flags
    from gdsynth.preprocess.domain import domain_flags

    result = detect_lesions(
        synth.enhancement, brain_mask=prep.brain_mask, spacing=prep.geometry.spacing,
        params=params, flair=prep.volumes.get("FLAIR"), t1w=prep.volumes.get("T1w"),
        t2w=prep.volumes.get("T2w"), uncertainty=synth.uncertainty, heads=synth.heads,
        stage=stage, missing=prep.missing,
    )
    flags = domain_flags(prep.volumes, prep.brain_mask, domain)
    add_quality_flags(result.summary, flags)
    return result


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
    labels_path = write_labels(O.LESION_LABELS.path(out, exam), labels, prep.native_geometry)
    return [
        labels_path,
        O.write_output_sidecar(out, exam, labels_path, "Detected enhancing lesions: instance labels "
                        "1..N (rows of the lesion table), 0 elsewhere",
                        sources=[O.ENHANCEMENT.path(out, exam)]),
        write_tsv(O.LESION_LOOKUP.path(out, exam), O.lesion_lookup(rows), ("index", "name")),
        write_tsv(O.LESION_TABLE.path(out, exam), rows, (*O.LESION_COLUMNS, *extra)),
        write_json(O.SUMMARY.path(out, exam), summary),
    ]
