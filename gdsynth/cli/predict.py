"""`gdsynth synthesize | detect | predict`: virtual post-Gd T1w and enhancing lesion detection.

Each command takes a BIDS folder (or a cohort table) or one exam given file by file as
``--input NAME=FILE`` (NAME a registered sequence, :mod:`gdsynth.io.sequences`; ``--t1w/--t2w/
--flair`` are shorthands),
writes a BIDS derivative in ``-o OUT`` on each input T1w's grid, skips exams already complete for
the same model, inputs and settings, and exits non-zero when any exam failed.

Missing sequences: an exam may lack the inputs the model was trained to miss (the card's
``optional_inputs``, training with input drop-out); the outputs then say which inputs were used
(``inputs_used``/``inputs_missing`` in the activity summary, the ``inputs`` column of
``run_summary.tsv``, one line per such exam here). Lacking any other input fails that exam with an
error naming the sequence and what the model can do without.

Preparation cache: an exam already prepared for the model (same input SHA-256 and preparation
parameters, as the cache of ``gdsynth prepare`` decides) is read back, not prepared again: from
``--prep DIR`` (read and written), else from ``BIDS/derivatives/gdsynth-prep`` when it exists
(only read: the input dataset is never written).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import typer

from gdsynth.cli._common import LABELS_HELP
from gdsynth.detection.detectors import Detector
from gdsynth.runtime import COMPILE_AUTO_MIN_SAMPLES, CompileChoice, DeviceChoice, Precision

_BIDS = typer.Argument(None, help="BIDS dataset folder or cohort table (TSV/CSV).", show_default=False)
_T1W = typer.Option(None, "--t1w", help="One exam: pre-contrast T1w file.")
_T2W = typer.Option(None, "--t2w", help="One exam: T2w file (may be left out when the model card "
                                          "lists T2w in its optional_inputs).")
_FLAIR = typer.Option(None, "--flair", help="One exam: FLAIR file (may be left out when the model "
                                            "card lists FLAIR in its optional_inputs).")
_INPUT = typer.Option(
    None, "--input", metavar="NAME=FILE",
    help="One exam: the file of sequence NAME (repeatable; NAME one of the sequence registry's, "
         "e.g. T1w, T2w, FLAIR; --t1w/--t2w/--flair are shorthands).")
_SUBJECT = typer.Option(
    None, "--subject",
    help="Subject label for a single exam (alphanumeric, 'sub-' optional) [default: from the T1w's "
         "BIDS name, sub-<label>[_ses-<label>]_..._T1w.nii.gz].")
_MODEL = typer.Option(..., "--model", "-m", help="Exported model folder, or 'phantom'.")
_OUT = typer.Option(..., "--out", "-o", metavar="OUT", help="Output derivative folder.")
_LABELS = typer.Option(
    None, "--participant-label",
    help=LABELS_HELP)
_MC = typer.Option(1, "--mc-samples", min=1, help="MC-dropout samples (>1: uncertainty map).")
_DEVICE = typer.Option(DeviceChoice.auto, "--device", help="auto, cpu or cuda.")
_BATCH = typer.Option(8, "--batch-size", min=1, help="Slices (or 3D windows) per forward.")
_COMPILE = typer.Option(
    CompileChoice.auto, "--compile",
    help="torch.compile (Inductor) the generator: on, off, or auto = on for CPU runs of at least "
         f"{COMPILE_AUTO_MIN_SAMPLES} exams x MC samples (1 mm exams; compiling takes 10-60 s "
         "once per run, synthesis is then about 1.3-1.4x faster on CPU); falls back to eager "
         "with a warning when compilation fails.")
_PRECISION = typer.Option(
    Precision.auto, "--precision",
    help="Generator arithmetic: bf16 (autocast, channels-last on CPU), fp32, or auto = bf16 where "
         "the CPU (AVX-512 BF16 / AMX) or GPU has bf16 units, else fp32. Outputs are float32.")
_WORKERS = typer.Option(0, "--workers", min=0, help="Threads preparing upcoming exams.")
_SHARD = typer.Option(None, "--shard", help="I/N: process only exams k with k mod N == I.")
_OVERWRITE = typer.Option(
    False, "--overwrite",
    help="Redo exams that are already complete; a single exam made from other inputs is only "
         "replaced with it.")
_FOREIGN = typer.Option(
    False, "--allow-foreign-output",
    help="Write into OUT even when its dataset_description.json says it belongs to another "
         "pipeline (another tool's derivatives, the phantom truth, a raw dataset); refused "
         "otherwise.")
_SEED = typer.Option(0, "--seed", help="Seed of the MC-dropout masks.")
_DETECTORS = [d.value for d in Detector]
_DETECTOR = typer.Option(None, "--detector",
                         help=f"{', '.join(_DETECTORS[:-1])} or {_DETECTORS[-1]} (default: the model "
                              "card's).")
_EXPLAIN = typer.Option(False, "--explain",
                        help="Attribute each lesion to the input sequences (ablation + IG).")
_PREP = typer.Option(
    None, "--prep", metavar="DIR",
    help="Preparation cache, read and written: exams prepared there before with the same inputs "
         "and parameters are not prepared again [default: reuse BIDS/derivatives/gdsynth-prep "
         "(e.g. from 'gdsynth prepare') when valid, without writing to it].")


_BIDS_NAME = re.compile(r"^sub-([A-Za-z0-9]+)(?:_ses-([A-Za-z0-9]+))?_(?:.*_)?T1w\.nii(?:\.gz)?$")


def parse_inputs(values: list[str] | None, **shorthands: Path | None) -> dict[str, Path]:
    """The files of one exam from ``--input NAME=FILE`` values and the ``--t1w/--t2w/--flair``
    shorthands (keyword = sequence name); :class:`ConfigError` names an unregistered sequence, a
    value without ``=`` or a sequence given twice."""
    from gdsynth.errors import ConfigError
    from gdsynth.io.sequences import sequence

    files = {name: path for name, path in shorthands.items() if path is not None}
    for value in values or []:
        name, eq, file = value.partition("=")
        if not eq or not name.strip() or not file.strip():
            raise ConfigError(None, f"--input {value!r}: expected NAME=FILE, e.g. T1w=t1.nii.gz")
        name = name.strip()
        sequence(name)  # unregistered: the error lists the registered names
        if name in files:
            raise ConfigError(None, f"--input {value!r}: sequence {name} given twice")
        files[name] = Path(file.strip())
    return files


def single_exam(files: dict[str, Path], subject: str | None, out: Path,
                overwrite: bool):  # -> gdsynth.io.bids.Exam
    """The exam given file by file (``--input NAME=FILE``, ``--t1w/--t2w/--flair``), checked
    before anything is written: each file exists and is a readable image; the subject (and
    session) come from ``--subject`` or the T1w's BIDS name; an exam ``out`` already holds from
    other inputs is refused without ``overwrite``."""
    from gdsynth.errors import ConfigError, OutputError
    from gdsynth.inference import outputs as O
    from gdsynth.io import read_image_info
    from gdsynth.io.bids import Exam
    from gdsynth.io.sequences import SEQUENCES

    for name in SEQUENCES:
        if name in files:
            read_image_info(files[name])  # missing or unreadable: a named error, nothing written
    t1w = files.get("T1w")
    session = None
    if subject is None:
        match = _BIDS_NAME.match(t1w.name) if t1w is not None else None
        if match is None:
            raise ConfigError(t1w, "give --subject LABEL: the T1w file name is not a BIDS name "
                                   "(sub-<label>[_ses-<label>]_..._T1w.nii.gz)")
        subject, session = match.group(1), match.group(2)
    subject = subject.removeprefix("sub-")
    if not (subject.isascii() and subject.isalnum()):  # a BIDS label: it names files
        raise ConfigError(None, f"--subject {subject!r} must be alphanumeric")
    exam = Exam(subject, session, files)
    changed = O.other_inputs(out, exam)
    if changed and not overwrite:
        raise OutputError(out, f"already holds exam {exam.id} made from other {', '.join(changed)} "
                               "input(s); give another --subject or -o, or --overwrite to replace it")
    return exam


@dataclass(frozen=True)
class PredictOptions:
    """The options of one ``gdsynth synthesize|detect|predict`` call (``step``), as parsed.

    An exam comes either from ``bids`` (a BIDS folder or cohort table, ``labels`` selecting
    subjects) or file by file from ``inputs`` (``NAME=FILE``) and the ``t1w/t2w/flair``
    shorthands (``subject`` naming it)."""

    step: str
    model: str
    out: Path
    bids: Path | None = None
    t1w: Path | None = None
    t2w: Path | None = None
    flair: Path | None = None
    inputs: list[str] | None = None
    subject: str | None = None
    labels: list[str] | None = None
    mc_samples: int = 1
    device: DeviceChoice = DeviceChoice.auto
    batch_size: int = 8
    workers: int = 0
    shard: str | None = None
    overwrite: bool = False
    seed: int = 0
    detector: str | None = None
    explain: bool = False
    prep: Path | None = None
    compile: CompileChoice = CompileChoice.auto
    allow_foreign_output: bool = False
    precision: Precision = Precision.auto

    @property
    def single(self) -> bool:
        """One exam given file by file (not a BIDS folder or table)."""
        return bool(self.inputs) or any(p is not None for p in (self.t1w, self.t2w, self.flair))


def _exams(o: PredictOptions) -> list:  # list[gdsynth.io.bids.Exam]
    """The exams ``o`` names; contradictory options are a :class:`ConfigError`."""
    from gdsynth.errors import ConfigError
    from gdsynth.io.bids import discover

    if o.single == (o.bids is not None):
        raise ConfigError(None, "give either a BIDS folder/table or --input/--t1w/--t2w/--flair, "
                                "not both")
    if o.single and o.labels:
        raise ConfigError(None, "--participant-label selects exams of a BIDS folder; with "
                                "--input/--t1w/--t2w/--flair use --subject")
    if not o.single and o.subject is not None:
        raise ConfigError(None, "--subject names a single exam given as "
                                "--input/--t1w/--t2w/--flair")
    if o.single:
        files = parse_inputs(o.inputs, T1w=o.t1w, T2w=o.t2w, FLAIR=o.flair)
        return [single_exam(files, o.subject, o.out, o.overwrite)]
    return discover(o.bids, o.labels)


def _prep_cache(o: PredictOptions):  # -> gdsynth.inference.prep.PrepCache | None
    """``--prep DIR`` (read and written), else ``BIDS/derivatives/gdsynth-prep`` when it
    exists (read only), else none."""
    from gdsynth.inference.prep import PrepCache

    if o.prep is not None:
        return PrepCache(o.prep, write=True)
    if not o.single:
        default = (o.bids if o.bids.is_dir() else o.bids.parent) / "derivatives" / "gdsynth-prep"
        return PrepCache(default, write=False) if default.is_dir() else None
    return None


def _run(o: PredictOptions) -> None:
    from gdsynth.cli._common import finish_batch, sweep_output
    from gdsynth.detection.detectors import parse_detector
    from gdsynth.explain.exam import explain_lesions
    from gdsynth.inference.cohort import RunConfig, Step, parse_shard, run_cohort
    from gdsynth.inference.pipeline import SynthesisSettings

    exams = _exams(o)
    cache = _prep_cache(o)
    config = RunConfig(
        out=o.out, model=o.model, step=Step(o.step),
        settings=SynthesisSettings(mc_samples=o.mc_samples, seed=o.seed, batch_size=o.batch_size,
                                   compile=o.compile, precision=o.precision.value),
        device=o.device.value, overwrite=o.overwrite, shard=parse_shard(o.shard),
        workers=o.workers,
        detector=None if o.detector is None else parse_detector(o.detector),
        explain=explain_lesions if o.explain else None, prep_cache=cache, allow_foreign_output=o.allow_foreign_output,
    )
    sweep_output(o.out, o.prep)
    results = run_cohort(exams, config, bids_root=None if o.single else o.bids)
    if cache is not None and (cache.reused or cache.prepared):
        typer.echo(f"preparation: {len(cache.reused)} exam(s) reused from the cache in "
                   f"{cache.root}" + (f", {len(cache.prepared)} prepared and cached there"
                                      if cache.prepared else ""), err=True)
    for r in results:
        if isinstance(r.value, str) and "(no " in r.value:
            typer.echo(f"  {r.case}: inputs {r.value}", err=True)
    finish_batch(results, f"gdsynth {o.step}")


def synthesize(
    bids: Path = _BIDS, t1w: Path = _T1W, t2w: Path = _T2W, flair: Path = _FLAIR,
    inputs: list[str] = _INPUT, subject: str | None = _SUBJECT, model: str = _MODEL, out: Path = _OUT, participant_label: list[str] = _LABELS,
    mc_samples: int = _MC, device: DeviceChoice = _DEVICE, batch_size: int = _BATCH,
    workers: int = _WORKERS, shard: str = _SHARD, overwrite: bool = _OVERWRITE, seed: int = _SEED,
    prep: Path = _PREP, compile: CompileChoice = _COMPILE, allow_foreign_output: bool = _FOREIGN,
    precision: Precision = _PRECISION,
) -> None:
    """Synthesize virtual post-gadolinium T1w (and MC-dropout uncertainty) for a cohort."""
    _run(PredictOptions(
        "synthesize", model, out, bids=bids, t1w=t1w, t2w=t2w, flair=flair, inputs=inputs,
        subject=subject,
        labels=participant_label, mc_samples=mc_samples, device=device, batch_size=batch_size,
        workers=workers, shard=shard, overwrite=overwrite, seed=seed, prep=prep, compile=compile,
        allow_foreign_output=allow_foreign_output, precision=precision))


def detect(
    bids: Path = _BIDS, t1w: Path = _T1W, t2w: Path = _T2W, flair: Path = _FLAIR,
    inputs: list[str] = _INPUT, subject: str | None = _SUBJECT, model: str = _MODEL, out: Path = _OUT, participant_label: list[str] = _LABELS,
    mc_samples: int = _MC, device: DeviceChoice = _DEVICE, batch_size: int = _BATCH,
    workers: int = _WORKERS, shard: str = _SHARD, overwrite: bool = _OVERWRITE, seed: int = _SEED,
    detector: str = _DETECTOR, explain: bool = _EXPLAIN, prep: Path = _PREP,
    allow_foreign_output: bool = _FOREIGN,
) -> None:
    """Detect enhancing lesions from the enhancement maps 'synthesize' (or 'predict') wrote in
    OUT; after 'gdsynth fit-detector' it redoes only the detection."""
    _run(PredictOptions(
        "detect", model, out, bids=bids, t1w=t1w, t2w=t2w, flair=flair, inputs=inputs,
        subject=subject,
        labels=participant_label, mc_samples=mc_samples, device=device, batch_size=batch_size,
        workers=workers, shard=shard, overwrite=overwrite, seed=seed, detector=detector,
        explain=explain, prep=prep, allow_foreign_output=allow_foreign_output))


def predict(
    bids: Path = _BIDS, t1w: Path = _T1W, t2w: Path = _T2W, flair: Path = _FLAIR,
    inputs: list[str] = _INPUT, subject: str | None = _SUBJECT, model: str = _MODEL, out: Path = _OUT, participant_label: list[str] = _LABELS,
    mc_samples: int = _MC, device: DeviceChoice = _DEVICE, batch_size: int = _BATCH,
    workers: int = _WORKERS, shard: str = _SHARD, overwrite: bool = _OVERWRITE, seed: int = _SEED,
    detector: str = _DETECTOR, explain: bool = _EXPLAIN, prep: Path = _PREP,
    compile: CompileChoice = _COMPILE, allow_foreign_output: bool = _FOREIGN,
    precision: Precision = _PRECISION,
) -> None:
    """Synthesize then detect, for a cohort or one exam (an exam may lack the inputs the model
    card lists as optional_inputs: the outputs then say which inputs were used)."""
    _run(PredictOptions(
        "predict", model, out, bids=bids, t1w=t1w, t2w=t2w, flair=flair, inputs=inputs,
        subject=subject,
        labels=participant_label, mc_samples=mc_samples, device=device, batch_size=batch_size,
        workers=workers, shard=shard, overwrite=overwrite, seed=seed, detector=detector,
        explain=explain, prep=prep, compile=compile, allow_foreign_output=allow_foreign_output,
        precision=precision))
