"""`gdsynth evaluate`: score a prediction folder against a reference BIDS dataset.

Writes ``per_exam.tsv``, ``lesions.tsv`` (one row per reference lesion: detected?, size class),
``predicted_lesions.tsv``, ``summary.json`` (overall metrics with counts, FROC, ROC and
calibration points) and PNG figures into ``-o REPORT``. Exams without a prediction or reference
are listed, not fatal; the command exits non-zero when no exam could be evaluated.
"""

from __future__ import annotations

from pathlib import Path

import typer

from gdsynth.cli._common import LABELS_HELP

_PRED = typer.Argument(..., metavar="PRED", help="Prediction folder (BIDS derivative written by 'gdsynth predict').")
_REF = typer.Option(..., "--reference", "-r", metavar="REFERENCE", help="Reference BIDS dataset (raw images + truth).")
_OUT = typer.Option(None, "--out", "-o", metavar="REPORT",
                    help="Report folder [default: PRED/../evaluation].")
_TRUTH_DIR = typer.Option(
    None, "--truth-dir", help="Truth derivative folder [default: REFERENCE/derivatives/phantom].")
_PATTERN = typer.Option(
    None, "--truth-pattern",
    help="Expert enhancing-lesion masks: a path under REFERENCE in which the literal fields "
         "{subject}, {session} and {prefix} are replaced for each exam (glob characters "
         "allowed), e.g. 'masks/sub-{subject}_gd_mask.nii.gz'.")
_TABLE = typer.Option(
    None, "--truth-table",
    help="Expert masks listed in a TSV/CSV: columns subject, [session], truth (mask path).")
_DERIVE = typer.Option(
    False, "--derive-truth",
    help="No truth masks: derive enhancing lesions from the prepared real post-Gd minus pre "
         "(rough; see gdsynth.evaluation.reference).")
_PREP = typer.Option(
    None, "--prep", help="Preparation folder [default: REFERENCE/derivatives/gdsynth-prep].")
_REGISTERED = typer.Option(
    False, "--assume-registered",
    help="Without a preparation folder: the raw post-Gd is already aligned to the T1w, use it "
         "for synthesis metrics (each image normalized by its NAWM median).")
_LABELS = typer.Option(None, "--participant-label", help=LABELS_HELP)
_ALPHA = typer.Option(0.10, "--alpha", min=0.0, max=1.0, help="Min fraction of a lesion covered.")
_BETA = typer.Option(0.70, "--beta", min=0.0, max=1.0, help="Max false-positive ratio of a prediction.")
_GAMMA = typer.Option(0.65, "--gamma", min=0.0, max=1.0, help="Overlap share checked against beta.")
_MINVOL = typer.Option(3.0, "--min-volume", min=0.0, help="Ignore components <= this (mm³).")
_CONN = typer.Option(26, "--connectivity", help="Voxel connectivity of lesions: 6, 18 or 26.")
_MERGE = typer.Option(
    False, "--merge-instances",
    help="Lesions = connected components of the binary masks (as Anima), not the label instances.")
_NOPLOTS = typer.Option(False, "--no-plots", help="Skip the PNG figures.")


def evaluate(
    predictions: Path = _PRED, reference: Path = _REF, out: Path = _OUT,
    truth_dir: Path = _TRUTH_DIR, truth_pattern: str = _PATTERN, truth_table: Path = _TABLE,
    derive_truth: bool = _DERIVE, prep: Path = _PREP, assume_registered: bool = _REGISTERED,
    participant_label: list[str] = _LABELS, alpha: float = _ALPHA, beta: float = _BETA,
    gamma: float = _GAMMA, min_volume: float = _MINVOL, connectivity: int = _CONN,
    merge_instances: bool = _MERGE, no_plots: bool = _NOPLOTS,
) -> None:
    """Score predictions: synthesis, lesion-wise (MSSEG), FROC and exam-level metrics."""
    from gdsynth.errors import ConfigError, InputFileMissingError
    from gdsynth.evaluation import DetectionCriteria, ReferenceSpec, evaluate_folder
    from gdsynth.evaluation.report import exam_summary_lines, exam_table_lines

    if not predictions.is_dir():
        raise InputFileMissingError(predictions, "prediction folder not found")
    if sum(bool(x) for x in (truth_pattern, truth_table, derive_truth)) > 1:
        raise ConfigError(None, "give one of --truth-pattern, --truth-table, --derive-truth")
    try:
        criteria = DetectionCriteria(alpha=alpha, beta=beta, gamma=gamma,
                                     min_volume_mm3=min_volume, connectivity=connectivity,
                                     instances=not merge_instances)
    except ValueError as exc:
        raise ConfigError(None, str(exc)) from None
    spec = ReferenceSpec(root=reference, truth_dir=truth_dir, truth_pattern=truth_pattern,
                         truth_table=truth_table, prep_dir=prep, derive=derive_truth,
                         assume_registered=assume_registered)
    out = out or predictions.resolve().parent / "evaluation"
    from gdsynth.cli._common import sweep_output

    sweep_output(out)
    report = evaluate_folder(predictions, spec, out, participant_labels=participant_label,
                             criteria=criteria, plots=not no_plots)
    s = report.summary
    les, pat = s["lesions"], s["patient"]
    typer.echo(f"evaluated {s['n_evaluated']} of {s['n_exams']} exams ({s['status_counts']})", err=True)
    for r in report.results:
        if not r.ok:
            typer.echo(f"  {r.status} {r.exam}: {'; '.join(r.notes)}", err=True)
    if s["n_evaluated"]:
        typer.echo(
            f"lesions: sensitivity {les['sensitivity']:.3f} ({les['n_detected']}/{les['n_reference']}), "
            f"PPV {les['ppv']:.3f}, F1 {les['f1']:.3f}, FP/scan {les['fp_per_scan']:.2f}", err=True)
        for line in exam_summary_lines(pat):
            typer.echo(f"exams: {line}", err=True)
        if pat.get("n_exams"):
            typer.echo(f"exams: calibration ECE {pat['calibration']['ece']:.3f}", err=True)
            for line in exam_table_lines(report.results):
                typer.echo(f"  {line}", err=True)
    typer.echo(f"report: {out}", err=True)
    if not s["n_evaluated"]:
        raise typer.Exit(code=1)
