"""Fit a model's learned lesion stage on held-out exams (``gdsynth fit-detector``, ``gdsynth train``).

For each exam (never one the generator trained on): prepare it for the model (read from a
preparation cache when one holds it), synthesize it (or read a ``gdsynth synthesize`` output),
build the union candidates and their features
(:func:`gdsynth.detection.detect.stage_candidates`) and match them to the reference enhancing
lesions: the phantom truth (``derivatives/phantom/..._desc-enhancing_dseg``, or its gdsynth 0.1 name) when the
dataset has it, else the lesions the difference detector finds in the exam's real post − pre
(no annotation needed: a Gd cohort labels itself). Then
:func:`gdsynth.detection.stage_fit.fit_stage` cross-fits the classifier, the exam model and the
operating point; the classifier goes to ``MODEL/lesion_classifier.json`` and the card's
``lesion_stage`` records it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from gdsynth.detection.params import DetectionParams
from gdsynth.detection.stage import LesionStage
from gdsynth.detection.stage_features import STAGE_FEATURES, CandidateSettings
from gdsynth.detection.stage_fit import StageCase, fit_stage, label_case
from gdsynth.errors import ConfigError, GdsynthError, MissingSequenceError
from gdsynth.inference.pipeline import Synthesis, SynthesisSettings, read_synthesis
from gdsynth.inference.prep import (
    Prepare,
    PreparedExam,
    PrepCache,
    prep_config,
    prepare_exam,
)
from gdsynth.io.bids import Exam, derivative_path, find_derivative
from gdsynth.preprocess.resample import move_to_grid

log = logging.getLogger(__name__)
TRUTH_FOLDER = Path("derivatives") / "phantom"
UNCERTAINTY_FEATURES = ("unc_mean", "unc_max")
NOT_FITTED = "not fitted"


@dataclass
class FitOptions:
    """How the stage is fitted: synthesis settings, where to find cached data, the fit itself."""

    settings: SynthesisSettings = SynthesisSettings()
    device: str = "auto"
    synthesis_dir: Path | None = None  # a `gdsynth synthesize` output to read maps from
    prep_dir: Path | None = None  # a preparation cache (read only)
    truth_dir: Path | None = None  # default BIDS/derivatives/phantom
    target_sensitivity: float = 0.95
    kinds: tuple[str, ...] = ("logistic", "trees")
    folds: int = 5


def exam_truth(exam: Exam, prep: PreparedExam, card, truth_dir: Path | None
               ) -> tuple[np.ndarray, str]:
    """Reference enhancing lesions on the prepared grid and where they came from."""
    from gdsynth import preprocess
    from gdsynth.detection import detect_lesions
    from gdsynth.io import read_image

    if truth_dir is not None:
        path = find_derivative(truth_dir, exam, "dseg", desc="enhancing")  # or its 0.1 name
        if path.is_file():
            truth, geometry = read_image(path, allow_constant=True)
            truth = move_to_grid(truth, geometry, prep.geometry, interpolation="nearest")
            return truth.round().astype(np.int32), "phantom truth"
    if exam.t1w_gd is None:
        raise ConfigError(exam.t1w, "no reference: neither a truth label map nor a real post-Gd "
                                    "T1w to derive the enhancing lesions from")
    vols = preprocess.prepare_arrays(exam, prep_config(card, use_post=True))
    if not vols.geometry.same_grid(prep.geometry):
        raise ConfigError(exam.t1w_gd, "real post-Gd prepared on another grid than the inputs")
    images = vols.images
    derived = detect_lesions(images["T1w_gd"] - images["T1w"], brain_mask=vols.mask,
                             spacing=vols.geometry.spacing, params=DetectionParams(),
                             flair=images.get("FLAIR"), t1w=images.get("T1w"),
                             t2w=images.get("T2w"))
    return derived.labels.astype(np.int32), "derived from the real post − pre"


def exam_case(exam: Exam, prep: PreparedExam, synth: Synthesis, truth: np.ndarray,
              params: DetectionParams, settings: CandidateSettings) -> StageCase:
    """One exam's candidates matched to ``truth`` (all on the prepared grid)."""
    from gdsynth.detection.detect import stage_candidates

    found = stage_candidates(synth.enhancement, prep.brain_mask, prep.geometry.spacing, params,
                             settings, images={k: prep.volumes.get(k) for k in
                                               ("FLAIR", "T2w", "T1w")},
                             uncertainty=synth.uncertainty, heads=synth.heads)
    return label_case(exam.id, found.labels, found.features, truth, prep.geometry.spacing)


def collect_cases(model_dir: Path, exams: Sequence[Exam], options: FitOptions,
                  settings: CandidateSettings | None = None, prepare: Prepare | None = None,
                  ) -> tuple[list[StageCase], list[str]]:
    """Cases of every exam that could be read; failures are returned as one line each.

    ``prepare(exam, card)`` (default: the preparation cache ``options.prep_dir`` when given,
    else :func:`gdsynth.inference.prep.prepare_exam`) builds each exam's prepared arrays."""
    from gdsynth.inference.pipeline import synthesize_prepared
    from gdsynth.models.folder import load_model_folder
    from gdsynth.progress import track
    from gdsynth.runtime import resolve_device

    generator, card = load_model_folder(model_dir, resolve_device(options.device))
    params = DetectionParams.from_dict(dict(card.detection or {}))
    settings = settings or CandidateSettings()
    if prepare is None:
        prepare = PrepCache(options.prep_dir).wrap(prepare_exam) \
            if options.prep_dir is not None else prepare_exam
    cases, failed = [], []
    for exam in track(list(exams), "fit-detector: candidates", total=len(exams)):
        try:
            prep = prepare(exam, card)
            if prep.missing:  # NaN features cannot be fitted; the stage scores them as unknown
                raise MissingSequenceError(exam.t1w, f"exam {exam.id} lacks "
                                           f"{', '.join(prep.missing)}: the lesion stage is "
                                           "fitted on complete exams only")
            record = None if options.synthesis_dir is None else \
                derivative_path(options.synthesis_dir, exam, "provenance", ".json", desc="synthesis")
            if record is not None and record.is_file():
                synth = read_synthesis(options.synthesis_dir, exam, prep, card)
            else:
                synth = synthesize_prepared(prep, generator, card, options.settings)
            truth, source = exam_truth(exam, prep, card, options.truth_dir)
            case = exam_case(exam, prep, synth, truth, params, settings)
            case.reference = [{**r, "truth_source": source} for r in case.reference]
            cases.append(case)
        except GdsynthError as exc:
            failed.append(f"{exam.id}: {exc}")
            log.warning("fit-detector: %s skipped (%s)", exam.id, exc)
    return cases, failed


def fit_model_stage(model_dir: str | Path, exams: Sequence[Exam], options: FitOptions,
                    *, bids_root: Path | None = None, prepare: Prepare | None = None,
                    ) -> tuple[LesionStage, list[str]]:
    """Fit the stage on ``exams`` (held out from the generator's training), write
    ``MODEL/lesion_classifier.json`` and the card's ``lesion_stage``; return it and the failures."""
    from gdsynth.models.card import CARD_NAME, ModelCard
    from gdsynth.models.folder import resolve_model_dir

    model_dir = resolve_model_dir(model_dir)
    if options.truth_dir is None and bids_root is not None:
        options.truth_dir = Path(bids_root) / TRUTH_FOLDER
    if options.prep_dir is None and bids_root is not None and \
            (Path(bids_root) / "derivatives" / "gdsynth-prep").is_dir():
        options.prep_dir = Path(bids_root) / "derivatives" / "gdsynth-prep"
    cases, failed = collect_cases(model_dir, exams, options, prepare=prepare)
    features = [f for f in STAGE_FEATURES
                if options.settings.mc_samples > 1 or f not in UNCERTAINTY_FEATURES]
    stage, _ = fit_stage(cases, features=features, kinds=options.kinds, folds=options.folds,
                         target_sensitivity=options.target_sensitivity)
    stage.heldout.update(mc_samples=options.settings.mc_samples, failed_exams=failed,
                         truth=sorted({r["truth_source"] for c in cases for r in c.reference}))
    path = stage.save(model_dir)
    card_path = model_dir / CARD_NAME
    card = ModelCard.load(card_path)
    card.lesion_stage = stage.card_section(path)
    card.save(card_path)
    return stage, failed


def describe(stage: LesionStage) -> str:
    """Held-out figures of a fitted stage, a few lines for the terminal."""
    h: dict[str, Any] = stage.heldout
    les, op = h["lesion"], h["exam_operating_point"]

    def f(v: Any) -> str:
        return "n/a" if v is None or (isinstance(v, float) and v != v) else f"{v:.3f}"

    ci = h.get("exam_auc_ci95") or [None, None]
    return "\n".join([
        f"lesion stage ({h['classifier']}, {h['protocol']}; truth: {', '.join(h.get('truth', []))}):",
        f"  lesion threshold {stage.lesion_threshold:.3f}: lesion sensitivity "
        f"{f(les['lesion_sensitivity'])}, PPV {f(les['lesion_ppv'])}, F1 {f(les['lesion_f1'])}, "
        f"FP/scan {f(les['fp_per_scan'])}",
        f"  exam AUC {f(h['exam_auc'])} (95% CI {f(ci[0])}-{f(ci[1])}); refer threshold "
        f"{stage.refer_threshold:.3f} (target sensitivity {stage.target_sensitivity:.2f}): "
        f"sensitivity {f(op['sensitivity'])}, specificity {f(op['specificity'])}, "
        f"NPV {f(op['npv'])}",
    ])


def fit_after_training(model_dir: Path, exams: Sequence[Exam], options: FitOptions, *,
                       bids_root: Path | None = None, prepare: Prepare | None = None) -> str:
    """``gdsynth train``'s last step: fit the stage on the run's held-out exams.

    Returns the lines to print. When it cannot be fitted (too few held-out exams, no true or
    no false candidate), the card's ``lesion_stage`` says so (``status: not fitted``) and
    ``predict`` then refers every exam, saying the model is not calibrated.
    """
    from gdsynth.models.card import CARD_NAME, ModelCard

    try:
        if not exams:
            raise ConfigError(model_dir, "the run kept no held-out exam")
        stage, failed = fit_model_stage(model_dir, exams, options, bids_root=bids_root,
                                        prepare=prepare)
    except GdsynthError as exc:
        card = ModelCard.load(Path(model_dir) / CARD_NAME)
        card.lesion_stage = {"status": NOT_FITTED, "reason": exc.problem}
        card.save(Path(model_dir) / CARD_NAME)
        return (f"warning: lesion stage not fitted ({exc.problem}); predictions of this model "
                "refer every exam until 'gdsynth fit-detector MODEL --bids HELD_OUT' succeeds")
    lines = [describe(stage)] + [f"skipped: {line}" for line in failed]
    return "\n".join(lines)
