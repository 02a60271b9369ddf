"""`gdsynth demo`: the whole chain on the embedded digital phantom, with the shipped model.

phantom (held-out site, unseen subjects) → prepare → predict (shipped ``phantom`` model, MC dropout)
→ evaluate against the phantom's ground truth → static review site. Every step is resumable, so a
second run only redoes what is missing.
"""

from __future__ import annotations

import time
from pathlib import Path

import typer


def demo(
    out: Path = typer.Option(Path("demo-output"), "--out", "-o", help="Folder for every output."),
    subjects: int = typer.Option(4, "--subjects", "-n", min=1, help="Phantom exams to generate."),
    seed: int = typer.Option(1000, "--seed", help="Phantom seed (the shipped model used seed 0)."),
    site: str = typer.Option("siteC", "--site", help="Phantom site (siteC was not seen in training)."),
    model: str = typer.Option("phantom", "--model", "-m", help="Model folder or 'phantom'."),
    mc_samples: int = typer.Option(3, "--mc-samples", min=1, help="MC-dropout samples."),
    workers: int = typer.Option(1, "--workers", min=1, help="Processes for phantom/prepare."),
) -> None:
    """Run the whole chain on the embedded phantom: phantom, prepare, predict, evaluate, review."""
    from dataclasses import replace

    from gdsynth.cli._common import finish_batch, sweep_output
    from gdsynth.evaluation import ReferenceSpec, evaluate_folder
    from gdsynth.evaluation.report import exam_summary_lines, exam_table_lines
    from gdsynth.inference.cohort import RunConfig, Step, run_cohort
    from gdsynth.inference.pipeline import SynthesisSettings
    from gdsynth.inference.prep import PrepCache
    from gdsynth.io.bids import PRE_SEQUENCES, discover
    from gdsynth.models.card import CARD_NAME, ModelCard
    from gdsynth.models.folder import resolve_model_dir
    from gdsynth.phantom import PhantomConfig
    from gdsynth.phantom.dataset import finish_dataset, iter_subjects, prepare_output
    from gdsynth.preprocess import PrepConfig, prepare_cohort_to_folder
    from gdsynth.review.site import SiteOptions, build_site

    t0 = time.perf_counter()
    sweep_output(out)
    card = ModelCard.load(resolve_model_dir(model) / CARD_NAME)
    resolution = card.spacing_mm or 1.0
    bids, pred = out / "bids", out / "bids" / "derivatives" / "gdsynth"
    report, site_dir = out / "evaluation", out / "review"

    def step(title: str) -> None:
        typer.echo(f"[{time.perf_counter() - t0:6.0f} s] {title}", err=True)

    step(f"1/5 phantom: {subjects} exams at {resolution:g} mm, {site}, seed {seed} -> {bids}")
    config = replace(PhantomConfig(), resolution=float(resolution), sites=(site,))
    prepare_output(bids, seed, config)
    results = list(iter_subjects(bids, subjects=subjects, seed=seed, config=config, workers=workers))
    finish_dataset(bids, results)
    exams = discover(bids)

    step("2/5 prepare: registration, brain mask, N4, NAWM normalization (cached: predict reuses it; reference for metrics)")
    prep_config = PrepConfig(spacing=card.spacing_mm, sequences=tuple(PRE_SEQUENCES))
    prep_dir = bids / "derivatives" / "gdsynth-prep"
    prepared = prepare_cohort_to_folder(exams, prep_dir, prep_config, workers=workers)
    finish_batch(prepared, "prepare")

    step(f"3/5 predict with model '{model}' ({mc_samples} MC-dropout samples) -> {pred}")
    run = RunConfig(out=pred, model=model, step=Step.predict,
                    settings=SynthesisSettings(mc_samples=mc_samples, seed=0), device="auto",
                    overwrite=False, shard=None, workers=0,
                    prep_cache=PrepCache(prep_dir))  # step 2's preparation, not redone
    finish_batch(run_cohort(exams, run, bids_root=bids), "predict")

    step(f"4/5 evaluate against the phantom truth -> {report}")
    evaluation = evaluate_folder(pred, ReferenceSpec(root=bids), report)
    summary = evaluation.summary

    step(f"5/5 review site -> {site_dir}")
    index = build_site(pred, bids, site_dir, metrics=report, options=SiteOptions())

    les, pat, syn = summary["lesions"], summary["patient"], summary.get("synthesis", {})
    lines = [
        "",
        f"gdsynth demo: {summary['n_evaluated']} phantom exams in {time.perf_counter() - t0:.0f} s",
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
    typer.echo("\n".join(lines))


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
