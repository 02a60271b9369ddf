"""Shared pieces of the research experiments (imported by the scripts in experiments/).

A phantom cohort (generated once, cached), prepared with its post-Gd T1w (cached by
``gdsynth.training.cohort.prepare_cohort``), loaded on the prepared grid with its truth
(:class:`EvalExam`), synthesized with a generator and scored (lesion F1, patient AUC).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def phantom_cohort(work: Path, subjects: int, seed: int, resolution: float,
                   sites: tuple[str, ...] | None = None) -> Path:
    """The BIDS folder of a phantom cohort under ``work`` (generated when absent)."""
    from gdsynth.phantom import generate_dataset

    tag = "-" + "+".join(sites) if sites else ""
    bids = Path(work) / f"phantom-n{subjects}-s{seed}-r{resolution:g}{tag}"
    if not (bids / "dataset_description.json").is_file():
        kwargs = {"sites": list(sites)} if sites else {}
        generate_dataset(bids, subjects=subjects, seed=seed, resolution=resolution, **kwargs)
    return bids


def prep_folder(bids: Path, work: Path) -> Path:
    """Where a script prepares the exams of ``bids``: the cohort's own
    ``derivatives/gdsynth-prep`` when the cohort is complete (``.done``; reused, read only, when it
    holds the exams), else ``work/prep``."""
    shared = Path(bids) / "derivatives" / "gdsynth-prep"
    return shared if (Path(bids) / ".done").is_file() and shared.is_dir() else Path(work) / "prep"


def prepared_exams(bids: Path, work: Path | None, inputs=("T1w", "T2w", "FLAIR"),
                   n: int | None = None):
    """Prepared training exams (``TrainingExam``) of the first ``n`` (default all) exams with a
    post-Gd T1w, prepared into the cohort's ``derivatives/gdsynth-prep`` when ``work`` is None or
    the cohort is complete (``.done``: its preparation is reused, read only, when it holds these
    exams), else into ``work/prep``."""
    from gdsynth.io.bids import discover
    from gdsynth.training.cohort import prepare_cohort

    exams = [e for e in discover(bids) if e.t1w_gd is not None][:n]
    prep_root = prep_folder(bids, work) if work is not None else None
    training, outcomes = prepare_cohort(bids, exams, prep_root=prep_root,
                                        inputs=list(inputs), progress=False)
    for o in outcomes:
        if o.status == "failed":
            print(f"preparation failed for {o.case}: {o.error}", file=sys.stderr)
    return training


@dataclass
class EvalExam:
    """One exam on the prepared grid: normalized images (incl. ``T1w_gd``), brain, truth."""

    id: str
    images: dict[str, np.ndarray]
    brain: np.ndarray
    enhancing: np.ndarray  # 0/1
    all_lesions: np.ndarray  # 0/1
    geometry: object  # gdsynth.io.Geometry

    def prepared(self):  # -> gdsynth.inference.prep.PreparedExam
        from gdsynth.inference.prep import PreparedExam

        vols = {k: v for k, v in self.images.items() if k != "T1w_gd"}
        return PreparedExam(vols, self.brain, self.geometry, self.geometry)


def load_eval_exam(exam, inputs=("T1w", "T2w", "FLAIR")) -> EvalExam:
    """An :class:`EvalExam` from a ``TrainingExam`` (truth resampled onto the prepared grid)."""
    from gdsynth.data.subjects import ALL_LESIONS, AddLesionLabels, make_subject
    from gdsynth.io import read_image

    s = AddLesionLabels(all_lesions=True)(make_subject(exam, list(inputs)))
    images = {k: s[k].data[0].numpy() for k in (*inputs, "T1w_gd")}
    _, geometry = read_image(exam.paths["T1w"])
    return EvalExam(exam.id, images, s["brain"].data[0].numpy() > 0,
                    s["lesion"].data[0].numpy(), s[ALL_LESIONS].data[0].numpy(), geometry)


def synthesize(generator, card, ex: EvalExam, mc_samples: int = 1, seed: int = 0):
    """``gdsynth.inference.pipeline.Synthesis`` of ``ex`` (prepared grid)."""
    from gdsynth.inference.pipeline import SynthesisSettings, synthesize_prepared

    return synthesize_prepared(ex.prepared(), generator, card,
                               SynthesisSettings(mc_samples=mc_samples, seed=seed, batch_size=8))


def score_model(generator, card, exams: list[EvalExam], detector: str = "difference") -> dict:
    """Lesion F1 (MSSEG matching, pooled) and patient AUC of ``generator`` on ``exams``."""
    from gdsynth.detection.params import DetectionParams
    from gdsynth.inference.pipeline import detect_synthesis

    params = DetectionParams.from_dict(dict(card.detection or {})).replace(detector=detector)
    results = [evaluate_detection(ex, detect_synthesis(ex.prepared(), synthesize(generator, card, ex),
                                                       params)) for ex in exams]
    return summarize(results)


def evaluate_detection(ex: EvalExam, det):  # -> gdsynth.evaluation.exam.ExamResult
    """Score one ``DetectionResult`` on the prepared grid against ``ex``'s enhancing truth."""
    from gdsynth.evaluation.exam import evaluate_arrays

    return evaluate_arrays(ex.enhancing, det.labels, ex.geometry.spacing, exam=ex.id,
                           scores={les["label"]: les["score"] for les in det.lesions},
                           probability_active=det.summary["probability_active"],
                           refer=det.summary["refer_for_gadolinium"])


def score_baseline(exams: list[EvalExam], name: str) -> dict:
    """:func:`score_model`'s figures for a baseline of :mod:`gdsynth.evaluation.baselines`
    (``post=pre`` or ``flair-heuristic``) on the prepared grid of ``exams``, or for
    ``real-post``: the real post-Gd T1w through the difference detector with default parameters
    (what a perfect synthesis would score: separates synthesis errors from detection errors)."""
    from gdsynth.evaluation import baselines as B
    from gdsynth.evaluation.exam import evaluate_arrays

    results = []
    for ex in exams:
        if name == "real-post":  # upper bound: the real post-Gd through the model's detector
            from gdsynth.detection.params import DetectionParams
            from gdsynth.inference.pipeline import Synthesis, detect_synthesis

            real = ex.images["T1w_gd"]
            results.append(evaluate_detection(ex, detect_synthesis(
                ex.prepared(), Synthesis(real, real - ex.images["T1w"]), DetectionParams())))
            continue
        if name == "post=pre":
            out = B.post_equals_pre(ex.images["T1w"])
        elif name == "flair-heuristic":
            out = B.flair_heuristic(ex.images["FLAIR"], ex.brain, ex.geometry.spacing)
        else:
            raise ValueError(f"unknown baseline {name!r}")
        results.append(evaluate_arrays(ex.enhancing, out.labels, ex.geometry.spacing, exam=ex.id,
                                       scores=out.scores, probability_active=out.probability_active,
                                       refer=out.refer))
    return summarize(results)


def summarize(results: list) -> dict:
    """Pooled lesion sensitivity/PPV/F1 and patient AUC of per-exam evaluation results."""
    from gdsynth.evaluation.aggregate import lesion_summary, patient_summary

    les, pat = lesion_summary(results), patient_summary(results)
    return {"lesion_f1": les["f1"], "sensitivity": les["sensitivity"], "ppv": les["ppv"],
            "patient_auc": pat.get("auc", float("nan")),
            "auc_ci95": pat.get("auc_ci95", [float("nan")] * 2), "n_exams": len(results),
            "n_active_exams": sum(bool(r.active) for r in results),
            "n_lesions": les.get("n_reference")}


def model_for(args_model: str | None, work: Path, config: Path, steps: int | None, seed: int,
              resolution: float, subjects: int = 4):
    """``(generator, card)``: the model folder ``args_model``, else one trained here on a phantom
    cohort of ``subjects`` (sites A, B) with recipe ``config`` for ``steps`` batches."""
    from gdsynth.models.folder import load_model_folder
    from gdsynth.training.config import apply_overrides, load_config
    from gdsynth.training.run import train_run

    if args_model:
        return load_model_folder(args_model)
    run = Path(work) / "model-run"
    if not (run / "model" / "model_card.json").is_file():
        cfg = apply_overrides(load_config(config), **{"trainer.max_steps": steps,
                                                      "trainer.tracker": "none"})
        bids = phantom_cohort(work, subjects, seed + 500, resolution, ("siteA", "siteB"))
        train_run(prepared_exams(bids, Path(work) / "model-prep", cfg.data.inputs), run, cfg)
    return load_model_folder(run / "model")


def model_stage(args_model: str | None, work: Path, card):  # -> LesionStage | None
    """The learned lesion stage of the model :func:`model_for` loaded (what ``gdsynth predict``
    detects with), or None when it has none (e.g. a model trained here without its stage)."""
    from gdsynth.detection.stage import load_stage
    from gdsynth.models.folder import resolve_model_dir

    folder = resolve_model_dir(args_model) if args_model else Path(work) / "model-run" / "model"
    return load_stage(folder, card.lesion_stage)


def test_cohort(args) -> tuple[Path, Path | None]:
    """``(bids, prep work folder)`` of the scripts' test cohort: ``--bids`` (read only) or a
    phantom cohort of ``--subjects`` from ``--sites`` (seed + 1000); prepared into WORK/test."""
    if args.bids is not None:
        return Path(args.bids), Path(args.work) / "test"
    sites = tuple(s for s in args.sites.split(",") if s)
    return phantom_cohort(args.work, args.subjects, args.seed + 1000, args.resolution,
                          sites), Path(args.work) / "test"


def model_parser(description: str):  # -> argparse.ArgumentParser
    """Arguments shared by the scripts that test one (given or freshly trained) model."""
    import argparse

    p = argparse.ArgumentParser(description=description)
    p.add_argument("--work", type=Path, required=True)
    p.add_argument("--model", default=None, help="model folder (default: train one here)")
    p.add_argument("--subjects", type=int, default=8, help="test subjects")
    p.add_argument("--sites", default="siteC",
                   help="phantom sites of the test cohort, comma-separated (default: the site "
                        "the shipped model never saw)")
    p.add_argument("--bids", type=Path, default=None,
                   help="an existing BIDS cohort with post-Gd T1w and lesion truth instead of a "
                        "generated phantom cohort (read only; prepared into WORK/test)")
    p.add_argument("--exams", type=int, default=None,
                   help="only the first N exams of the test cohort (default: all)")
    p.add_argument("--resolution", type=float, default=1.0)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--config", type=Path, default=ROOT / "experiments" / "phantom.yaml")
    p.add_argument("--train-steps", type=int, default=None)
    return p
