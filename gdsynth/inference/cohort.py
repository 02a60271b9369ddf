"""Batch runner for ``gdsynth synthesize | detect | predict``: resume, shards, run summary.

* Resume: an exam whose completion record (``_desc-activity_summary.json`` for detect/predict,
  ``_desc-synthesis_provenance.json`` for synthesize; both written last, atomically) records the
  same model, input hashes and settings is skipped; ``overwrite`` redoes it.
* Shards: after sorting by exam id, exam k belongs to shard ``k mod N``, so array jobs or GPUs
  split a cohort without talking to each other.
* Failures: an exam that fails (missing or corrupt file...) is recorded with a one-line message;
  the others go on (:func:`gdsynth.batch.iter_batch`). ``OUT/run_summary[_shard-I-of-N].tsv``
  lists every exam after each one, with the inputs each was made from (``inputs``).
* Missing sequences: an exam may lack the model card's ``optional_inputs`` (the model was trained
  with input drop-out): it is prepared from the sequences it has, the generator gets zeros for
  the missing ones, the outputs record ``inputs_used``/``inputs_missing`` and the activity
  summary's reason says what it was made without. An exam lacking any other input fails with a
  one-line error naming it (:meth:`gdsynth.models.card.ModelCard.split_inputs`).
* ``workers`` > 0 prepares upcoming exams in background threads while the network runs.
* ``settings.compile`` (``auto``) is decided once per run from the exams to synthesize
  (:meth:`_Runner.resolve_compile` returns ``on`` or ``off``, passed on to every exam); the
  compiled generator then serves every exam.
* ``prep_cache`` (:class:`gdsynth.inference.prep.PrepCache`): an exam whose preparation is cached
  there (same inputs and parameters) is read back instead of being prepared again.
* ``explain``: an optional per-exam step after detection (:data:`Explain`), given by the caller.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from gdsynth.batch import CaseResult, Skipped, iter_batch, precheck
from gdsynth.detection.detectors import Detector
from gdsynth.errors import ConfigError, ModelError, OutputError
from gdsynth.inference import outputs as O
from gdsynth.inference.pipeline import (
    SynthesisSettings,
    detect_synthesis,
    read_synthesis,
    synthesize_prepared,
    write_detection,
    write_synthesis,
)
from gdsynth.inference.prep import PreparedExam, PrepCache, exam_inputs, prepare_exam
from gdsynth.io import write_tsv
from gdsynth.io.bids import Exam, write_dataset_description
from gdsynth.models.card import inputs_text
from gdsynth.runtime import CompileChoice

log = logging.getLogger(__name__)

Prepare = Callable[[Exam, Any], PreparedExam]
#: ``RunConfig.explain``: a per-exam step after detection, ``explain(out, exam, prep, generator,
#: card, result) -> written paths``, that may add columns to ``result.lesions`` (the CLI passes
#: :func:`gdsynth.explain.exam.explain_lesions`; inference does not import the explain layer).
Explain = Callable[[Path, Exam, PreparedExam, Any, Any, Any], list[Path]]
SUMMARY_COLUMNS = ("exam", "status", "seconds", "error", "inputs")


class Step(str, Enum):
    """What a run produces."""

    synthesize = "synthesize"
    detect = "detect"
    predict = "predict"


@dataclass
class RunConfig:
    """One cohort run. ``shard`` = (index, count) or None."""

    out: Path
    model: str | Path
    step: Step = Step.predict
    settings: SynthesisSettings = field(default_factory=SynthesisSettings)
    device: str = "auto"
    overwrite: bool = False
    shard: tuple[int, int] | None = None
    workers: int = 0
    detector: Detector | None = None  # override the card's detector
    explain: Explain | None = None  # e.g. attribute each detected lesion to the input sequences
    prep_cache: PrepCache | None = None  # reuse (and with write=True fill) a preparation cache
    allow_foreign_output: bool = False  # write into a derivative folder of another pipeline


def parse_shard(text: str | None) -> tuple[int, int] | None:
    """``"I/N"`` → (I, N) with 0 ≤ I < N; None stays None."""
    if text is None:
        return None
    try:
        i, n = (int(v) for v in text.split("/"))
    except ValueError:
        raise ConfigError(None, f"--shard {text!r} must look like I/N, e.g. 0/4") from None
    if n < 1 or not 0 <= i < n:
        raise ConfigError(None, f"--shard {text!r}: need 0 <= I < N")
    return i, n


def shard_exams(exams: Sequence[Exam], shard: tuple[int, int] | None) -> list[Exam]:
    """The exams of shard (I, N): the k-th exam by sorted id goes to shard k mod N."""
    ordered = sorted(exams, key=lambda e: e.id)
    if shard is None:
        return ordered
    i, n = shard
    return [e for k, e in enumerate(ordered) if k % n == i]


def check_output_location(out: Path, bids_root: Path | None) -> None:
    """Refuse an output folder equal to, or inside the raw part of, the input BIDS folder."""
    if bids_root is None or not Path(bids_root).is_dir():
        return
    root, target = Path(bids_root).resolve(), Path(out).resolve()
    if target == root or (root in target.parents and (root / "derivatives") not in
                          [target, *target.parents]):
        raise OutputError(out, f"is inside the raw BIDS dataset {bids_root}; write under "
                               f"{root / 'derivatives'} or elsewhere")


#: ``Name`` of the dataset_description.json gdsynth writes in an inference output folder.
OUTPUT_DATASET_NAME = "gdsynth"


def check_output_owner(out: Path, *, allow_foreign: bool = False) -> None:
    """Refuse an output folder that is another pipeline's dataset: its
    ``dataset_description.json`` describes a raw BIDS dataset, or a derivative whose ``Name`` is
    not gdsynth's inference output (``gdsynth``) or whose ``GeneratedBy`` does not name gdsynth
    (another tool's derivatives, the phantom's ground truth, a preparation cache). A folder
    without a description (new or plain) is accepted. ``allow_foreign`` (``--allow-foreign-output``)
    accepts it anyway: gdsynth's files are then written beside the other pipeline's and its
    description is replaced."""
    from gdsynth.io.bids import read_dataset_description

    desc = read_dataset_description(out)
    if not desc or allow_foreign:
        return
    path = Path(out) / "dataset_description.json"
    tools = [g.get("Name") for g in desc.get("GeneratedBy") or [] if isinstance(g, dict)] \
        if isinstance(desc.get("GeneratedBy"), list) else []
    if desc.get("DatasetType", "raw") != "derivative":
        owner = "a raw BIDS dataset"
    elif "gdsynth" not in tools:
        owner = f"the derivatives of {', '.join(map(str, tools)) or 'an unnamed pipeline'}"
    elif desc.get("Name") != OUTPUT_DATASET_NAME:
        owner = f"the gdsynth derivative {desc.get('Name')!r}, not inference outputs"
    else:
        return
    raise OutputError(path, f"the output folder holds {owner}; writing there would overwrite its "
                            "files and description. Choose another -o, or pass "
                            "--allow-foreign-output to write there anyway")


def check_inputs_outside(out: Path, exams: Sequence[Exam]) -> None:
    """Refuse an output folder that holds an input file (single-exam mode, or a table): outputs
    named like raw BIDS files (``_ce-gadolinium_..._T1w``) would later be read as inputs."""
    target = Path(out).resolve()
    for exam in exams:
        for path in exam.inputs().values():
            if target in Path(path).resolve().parents:
                raise OutputError(out, f"holds the input {path}; write the outputs elsewhere")


def summary_path(out: Path, shard: tuple[int, int] | None) -> Path:
    """``OUT/run_summary.tsv`` or ``OUT/run_summary_shard-I-of-N.tsv``."""
    tag = "" if shard is None else f"_shard-{shard[0]}-of-{shard[1]}"
    return Path(out) / f"run_summary{tag}.tsv"


def write_run_summary(path: Path, results: Sequence[CaseResult]) -> Path:
    """``OUT/run_summary[_shard-I-of-N].tsv``: one row per exam so far (:data:`SUMMARY_COLUMNS`)."""
    rows = [{"exam": r.case, "status": r.status, "seconds": round(r.seconds, 3), "error": r.error,
             "inputs": r.value if isinstance(r.value, str) else ""} for r in results]
    return write_tsv(path, rows, SUMMARY_COLUMNS)


class _Runner:
    def __init__(self, config: RunConfig, prepare: Prepare) -> None:
        from gdsynth.models.folder import load_model_folder, resolve_model_dir
        from gdsynth.runtime import resolve_device

        self.config = config
        self.prepare = prepare
        self.generator, self.card = load_model_folder(config.model, resolve_device(config.device))
        model_dir, card = resolve_model_dir(config.model), self.card.to_dict()
        self.fingerprint = O.model_fingerprint(model_dir, card)
        # what a synthesis record holds: the card without its detection-only sections, so a
        # re-fitted detector still finds the synthesis for `gdsynth detect`
        self.synthesis_fingerprint = O.synthesis_fingerprint(self.fingerprint, card)
        self.params = None
        from gdsynth.detection.params import DetectionParams
        from gdsynth.models.card import CARD_NAME

        try:  # the card's detection section, validated by its own loader before any exam
            params = DetectionParams.from_dict(dict(self.card.detection or {}))
        except (ConfigError, TypeError, ValueError) as exc:
            problem = exc.problem if isinstance(exc, ConfigError) else str(exc)
            raise ModelError(resolve_model_dir(config.model) / CARD_NAME,
                             f"detection section: {problem}") from None
        if config.step is not Step.synthesize:
            self.params = params
            if config.detector is not None:
                self.params = self.params.replace(detector=config.detector)
        self.stage = None  # the learned lesion stage, when the model folder holds one
        self.uncalibrated: str | None = None  # why `gdsynth train` could not fit the stage
        if config.step is not Step.synthesize:
            from gdsynth.detection.stage import load_stage

            self.stage = load_stage(resolve_model_dir(config.model), self.card.lesion_stage)
            if self.card.lesion_stage.get("status") == "not fitted":
                self.uncalibrated = self.card.lesion_stage.get("reason", "not fitted")

    def resolve_compile(self, n_exams: int) -> CompileChoice:
        """``settings.compile`` decided once for a run synthesizing ``n_exams`` exams: ``on`` or
        ``off`` (``auto`` weighs every exam x MC sample, in 1 mm exams: the card's spacing;
        :func:`gdsynth.inference.pipeline.use_compile`); unchanged when nothing is synthesized."""
        from gdsynth.inference.pipeline import use_compile

        settings = self.config.settings
        if self.config.step is Step.detect or n_exams == 0:
            return settings.compile
        spacing = float(self.card.spacing_mm or 1.0)
        on = use_compile(self.generator, settings, n_exams * settings.mc_samples / spacing**3)
        if on:
            log.info("torch.compile: compiling the generator for %d exam(s) x %d sample(s); "
                     "the first batch takes longer", n_exams, settings.mc_samples)
        return CompileChoice.on if on else CompileChoice.off

    def key(self, exam: Exam) -> dict[str, Any]:
        used, _ = exam_inputs(exam, self.card)  # lacking a required input fails here, named
        hashes = O.input_hashes(exam, tuple(dict.fromkeys(("T1w", *used))))
        settings = self.config.settings.key()
        if self.config.step is Step.detect:  # detect follows whatever synthesize used
            synth = O.read_record(O.SYNTHESIS_RECORD.path(self.config.out, exam)) or {}
            settings = synth.get("settings", settings)
        model = self.synthesis_fingerprint if self.config.step is Step.synthesize else self.fingerprint
        key = {"model": model, "input_sha256": hashes, "settings": settings}
        if self.config.detector is not None and self.config.step is not Step.synthesize:
            key["detector"] = self.config.detector
        if self.config.explain is not None and self.config.step is not Step.synthesize:
            key["explain"] = True
        return key

    def marker(self, exam: Exam) -> Path:
        output = O.SYNTHESIS_RECORD if self.config.step is Step.synthesize else O.SUMMARY
        return output.path(self.config.out, exam)

    def is_done(self, exam: Exam, key: dict[str, Any]) -> bool:
        return not self.config.overwrite and O.is_complete(self.marker(exam), key)

    def check(self, exam: Exam) -> dict[str, Any] | Skipped:
        """Before the run: the exam's key, or :class:`Skipped` when its outputs are complete."""
        key = self.key(exam)
        return Skipped() if self.is_done(exam, key) else key

    def process(self, exam: Exam, prep: PreparedExam, key: dict[str, Any],
                settings: SynthesisSettings) -> str:
        """Produce this step's outputs of ``exam`` (synthesized with ``settings``), replacing the
        earlier ones as a set: a file of the exam that this run does not write again (an
        uncertainty map of an earlier ``--mc-samples 3`` run, attribution maps of an earlier
        ``--explain``) is removed once the new files are written and before the completion
        record, so a failure half-way keeps the earlier record and files
        (:func:`remove_stale_outputs`). Returns the inputs line (:func:`inputs_text`)."""
        out, step = self.config.out, self.config.step
        used = prep.inputs_used(self.card.inputs)
        extra = {"inputs_used": used, "inputs_missing": list(prep.missing)}
        record = {"exam": exam.id, **key, **extra}
        # the synthesis record: the model without its detection-only card sections, no detector
        synth_key = {k: v for k, v in key.items() if k not in ("detector", "explain")}
        synth_key["model"] = self.synthesis_fingerprint
        synth_record = O.SYNTHESIS_RECORD.path(out, exam)
        written: list[Path] = []
        if step is Step.detect:  # any synthesis of this generator (a re-fitted detector keeps it)
            if not O.is_complete(synth_record, synth_key):
                raise OutputError(synth_record, "no synthesis for this model and these inputs: "
                                                "run 'gdsynth synthesize' first")
            synth = read_synthesis(out, exam, prep, self.card)
            written += synthesis_paths(out, exam, synth)
        else:
            synth = synthesize_prepared(prep, self.generator, self.card, settings)
            written += write_synthesis(out, exam, prep, synth,
                                       {"exam": exam.id, **synth_key, **extra})
        if step is Step.synthesize:
            remove_stale_outputs(out, exam, keep=written)
            return inputs_text(used, prep.missing)
        from gdsynth.detection.patient import add_quality_flags

        result = detect_synthesis(prep, synth, self.params, self.card.normalization.get("domain"),
                                  stage=self.stage)
        if self.uncalibrated is not None:  # never a confident "inactive" from such a model
            result.summary.update(refer_for_gadolinium=True, calibrated=False, reason=(
                f"model not calibrated (lesion stage not fitted: {self.uncalibrated}); "
                f"referred. {result.summary['reason']}"))
        add_quality_flags(result.summary, prep.provenance.get("quality_flags", []))
        add_missing_caution(result.summary, prep.missing)
        if self.config.explain is not None:
            written += self.config.explain(out, exam, prep, self.generator, self.card, result)
        detection = [o.path(out, exam) for o in (O.LESION_LABELS, O.LESION_TABLE, O.SUMMARY)]
        remove_stale_outputs(out, exam, keep=[*written, *detection])
        write_detection(out, exam, prep, result, record)
        return inputs_text(used, prep.missing)


def add_missing_caution(summary: dict[str, Any], missing: Sequence[str]) -> None:
    """Say in the activity summary's ``reason`` that the prediction was made without
    ``missing`` (inputs the model was trained to miss): never a silent answer on fewer inputs.

    Such an exam is never called inactive: the refer operating point (and the lesion stage) were
    fitted on complete exams, and without FLAIR the stage's scores collapse (measured:
    ``docs/missing_inputs.md``), so an exam below the point is referred all the same, and the
    reason says why. ``probability_active`` is left as computed."""
    if not missing:
        return
    names = ", ".join(missing)
    note = (f"made without {names} (the model was trained to do without "
            f"{'it' if len(missing) == 1 else 'them'}; expect lower accuracy)")
    if summary.get("refer_for_gadolinium") is False:
        summary["refer_for_gadolinium"] = True
        note += (f"; referred: the refer point was fitted on complete exams, so an exam without "
                 f"{names} is not called inactive")
    summary["reason"] = f"{summary['reason']}; {note}" if summary.get("reason") else note


def synthesis_paths(out: Path, exam: Exam, synth: Any) -> list[Path]:
    """The files :func:`write_synthesis` writes (or wrote) for ``synth``."""
    kinds = [O.SYNTHETIC, O.ENHANCEMENT, *([O.UNCERTAINTY] if synth.uncertainty is not None else []),
             *(O.head_output(h) for h in synth.heads), O.SYNTHESIS_RECORD]
    return [k.path(out, exam) for k in kinds]


def _output_patterns(out: Path, exam: Exam) -> list[str]:
    """fnmatch patterns of every file name inference writes for ``exam`` (and nothing else: a
    preparation cache sharing the folder is not touched)."""
    any_ = "GDSYNTHANY"
    kinds = [O.SYNTHETIC, O.ENHANCEMENT, O.UNCERTAINTY, O.LESION_LABELS, O.LESION_TABLE,
             O.SUMMARY, O.SYNTHESIS_RECORD, O.head_output(any_), O.attribution_output(any_),
             O.relevance_output(any_)]
    names = [k.path(out, exam).name.replace(any_, "*") for k in kinds]
    images = [n.removesuffix(".nii.gz") for n in names if n.endswith(".nii.gz")]
    # each image's JSON sidecar, and the label map's lookup table
    return [*names, *(f"{n}.json" for n in images), *(f"{n}.tsv" for n in images
                                                       if n.endswith("_dseg"))]


def remove_stale_outputs(out: Path, exam: Exam, *, keep: Sequence[Path]) -> list[Path]:
    """Remove the inference outputs of ``exam`` (names of :mod:`gdsynth.inference.outputs`) in
    its output folder that are not in ``keep``; return them. Other files (a preparation cache
    sharing the folder, temporary files of running writers) are left alone."""
    from fnmatch import fnmatchcase

    folder = O.SUMMARY.path(out, exam).parent
    if not folder.is_dir():
        return []
    kept = {Path(p).name for p in keep}
    patterns = _output_patterns(out, exam)
    stale = [p for p in sorted(folder.iterdir()) if p.name not in kept
             and any(fnmatchcase(p.name, pat) for pat in patterns)
             and (p.is_file() or p.is_symlink())]
    for p in stale:
        log.info("%s: removing %s, left by an earlier run and not written by this one",
                 exam.id, p.name)
        p.unlink(missing_ok=True)
    return stale


def run_cohort(exams: Sequence[Exam], config: RunConfig, *, bids_root: Path | None = None,
               prepare: Prepare | None = None) -> list[CaseResult]:
    """Run ``config.step`` on this shard's exams; return one :class:`CaseResult` per exam.

    ``prepare`` (default :func:`gdsynth.inference.prep.prepare_exam`, through
    ``config.prep_cache`` when one is given) turns an exam into its prepared arrays;
    ``bids_root`` is checked so outputs (and a written preparation cache) never land in the raw
    dataset.
    """
    check_output_location(config.out, bids_root)
    if bids_root is None or Path(bids_root).is_file():
        check_inputs_outside(config.out, exams)
    if prepare is None:
        prepare = prepare_exam
        if config.prep_cache is not None:
            if config.prep_cache.write:
                check_output_location(config.prep_cache.root, bids_root)
                if bids_root is None or Path(bids_root).is_file():
                    check_inputs_outside(config.prep_cache.root, exams)
            prepare = config.prep_cache.wrap(prepare)
    check_output_owner(config.out, allow_foreign=config.allow_foreign_output)
    runner = _Runner(config, prepare)
    write_dataset_description(
        config.out, OUTPUT_DATASET_NAME,
        description="virtual post-gadolinium T1w and enhancing lesions",
        sources=[bids_root] if bids_root is not None and Path(bids_root).is_dir() else [],
        readme=O.README, ignore=O.BIDS_IGNORE)
    mine = shard_exams(exams, config.shard)
    todo, decided = precheck(mine, runner.check, case=lambda e: e.id)
    settings = replace(config.settings, compile=runner.resolve_compile(len(todo)))
    table = summary_path(config.out, config.shard)
    results: list[CaseResult] = []
    for result in iter_batch(
            mine, lambda exam, prep: runner.process(exam, prep, todo[exam.id], settings),
            case=lambda e: e.id, description=f"gdsynth {config.step.value}", decided=decided,
            ahead=lambda exam: runner.prepare(exam, runner.card), ahead_workers=config.workers):
        results.append(result)
        write_run_summary(table, results)
    return results
