"""The demo: the whole chain on the embedded digital phantom, with the shipped model.

phantom (held-out site, unseen subjects) → prepare → predict (shipped ``phantom`` model, MC dropout)
→ evaluate against the phantom's ground truth → static review site. Every step is resumable, so a
second run only redoes what is missing. ``gdsynth demo`` parses its options into
:class:`DemoOptions`, calls :func:`run_demo` and prints the lines it returns.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class DemoOptions:
    """What the demo makes: ``subjects`` phantom exams of ``site`` (``seed``) in ``out``,
    predicted by ``model`` (a folder or ``phantom``) with ``mc_samples`` MC-dropout samples;
    ``workers`` processes generate and prepare the phantom."""

    out: Path = Path("demo-output")
    subjects: int = 4
    seed: int = 1000
    site: str = "siteC"
    model: str = "phantom"
    mc_samples: int = 3
    workers: int = 1


def run_demo(options: DemoOptions, *, progress: Callable[[str], None],
             finish_batch: Callable[[Sequence[Any], str], None]) -> list[str]:
    """Run the five steps into ``options.out``; return the closing summary lines.

    ``progress(line)`` receives one line as each step starts (``[  12 s] 2/5 prepare: ...``);
    ``finish_batch(results, what)`` receives the per-exam results of the prepare and predict
    steps (the CLI prints them and stops when an exam failed)."""
    from gdsynth.evaluation import ReferenceSpec, evaluate_folder
    from gdsynth.inference.cohort import RunConfig, Step, run_cohort
    from gdsynth.inference.pipeline import SynthesisSettings
    from gdsynth.inference.prep import PrepCache
    from gdsynth.io.sequences import input_names
    from gdsynth.models.card import CARD_NAME, ModelCard
    from gdsynth.models.folder import resolve_model_dir
    from gdsynth.preprocess import PrepConfig, prepare_cohort_to_folder
    from gdsynth.review.site import SiteOptions, build_site

    o, t0 = options, time.perf_counter()
    card = ModelCard.load(resolve_model_dir(o.model) / CARD_NAME)
    resolution = card.spacing_mm or 1.0
    bids, pred = o.out / "bids", o.out / "bids" / "derivatives" / "gdsynth"
    report, site_dir = o.out / "evaluation", o.out / "review"

    def step(title: str) -> None:
        progress(f"[{time.perf_counter() - t0:6.0f} s] {title}")

    step(f"1/5 phantom: {o.subjects} exams at {resolution:g} mm, {o.site}, seed {o.seed} -> {bids}")
    exams = _make_phantom(bids, o, float(resolution))

    step("2/5 prepare: registration, brain mask, N4, NAWM normalization (cached: predict reuses it; reference for metrics)")
    prep_config = PrepConfig(spacing=card.spacing_mm, sequences=input_names())
    prep_dir = bids / "derivatives" / "gdsynth-prep"
    finish_batch(prepare_cohort_to_folder(exams, prep_dir, prep_config, workers=o.workers), "prepare")

    step(f"3/5 predict with model '{o.model}' ({o.mc_samples} MC-dropout samples) -> {pred}")
    run = RunConfig(out=pred, model=o.model, step=Step.predict,
                    settings=SynthesisSettings(mc_samples=o.mc_samples, seed=0), device="auto",
                    overwrite=False, shard=None, workers=0,
                    prep_cache=PrepCache(prep_dir))  # step 2's preparation, not redone
    finish_batch(run_cohort(exams, run, bids_root=bids), "predict")

    step(f"4/5 evaluate against the phantom truth -> {report}")
    evaluation = evaluate_folder(pred, ReferenceSpec(root=bids), report)

    step(f"5/5 review site -> {site_dir}")
    index = build_site(pred, bids, site_dir, metrics=report, options=SiteOptions())
    return demo_summary_lines(evaluation, seconds=time.perf_counter() - t0, pred=pred,
                              report=report, index=index, site_dir=site_dir)


def _make_phantom(bids: Path, o: DemoOptions, resolution: float) -> list:  # list[Exam]
    """Step 1: the phantom's BIDS dataset (and its truth) in ``bids``; its exams."""
    from gdsynth.io.bids import discover
    from gdsynth.phantom import PhantomConfig
    from gdsynth.phantom.dataset import finish_dataset, iter_subjects, prepare_output

    config = replace(PhantomConfig(), resolution=resolution, sites=(o.site,))
    prepare_output(bids, o.seed, config)
    results = list(iter_subjects(bids, subjects=o.subjects, seed=o.seed, config=config,
                                 workers=o.workers))
    finish_dataset(bids, results)
    return discover(bids)


def demo_summary_lines(evaluation, *, seconds: float, pred: Path, report: Path, index: Path,
                       site_dir: Path) -> list[str]:  # evaluation: gdsynth.evaluation.folder.FolderReport
    """The demo's closing lines: lesion and exam figures, synthesis metrics, where the outputs
    are, and one line per exam."""
    from gdsynth.evaluation.report import exam_summary_lines, exam_table_lines

    summary = evaluation.summary
    les, pat, syn = summary["lesions"], summary["patient"], summary.get("synthesis", {})
    lines = [
        "",
        f"gdsynth demo: {summary['n_evaluated']} phantom exams in {seconds:.0f} s",
        f"  lesions   sensitivity {les['sensitivity']:.2f} ({les['n_detected']}/{les['n_reference']}),"
        f" PPV {les['ppv']:.2f}, F1 {les['f1']:.2f}, FP/scan {les['fp_per_scan']:.2f}",
    ]
    lines += [f"  exams     {line}" for line in exam_summary_lines(pat)]
    for key in ("ssim", "psnr", "mae"):
        value = _mean_metric(syn, key)
        if value is not None:
            lines.append(f"  synthesis {key.upper()} (brain) {value:.3f}")
    lines += [
        f"  outputs   {pred}",
        f"  report    {report / 'summary.json'}",
        f"  review    {index}  (or: python -m http.server -d {site_dir})",
        "  The shipped model was trained on the digital phantom only: research use, not clinical.",
        "",
        "  per exam (truth: the phantom's enhancing lesions):",
        *[f"    {line}" for line in exam_table_lines(evaluation.results)],
    ]
    return lines


def _mean_metric(synthesis: dict, key: str) -> float | None:
    """Brain-mask synthesis metric from an evaluation summary, whatever its nesting."""
    for name in (f"{key}_brain", key):
        value = synthesis.get(name)
        if isinstance(value, dict):
            value = value.get("mean")
        if isinstance(value, (int, float)):
            return float(value)
    brain = synthesis.get("brain")
    if isinstance(brain, dict):
        return _mean_metric(brain, key)
    return None
