"""Writing a phantom cohort as a BIDS raw dataset with its ground truth under derivatives/phantom/.

Subjects are simulated and written independently (optionally in parallel worker processes, with
identical results); every file is written atomically. A folder is only written into when it is
empty or already holds a phantom made with the same seed and configuration (then complete subjects
are skipped, so an interrupted run can be resumed).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path

import numpy as np

from gdsynth import __version__
from gdsynth.batch import FAILED, CaseResult, Skipped, iter_batch
from gdsynth.errors import ConfigError, OutputError
from gdsynth.io import read_image, read_tsv, write_image, write_json, write_labels
from gdsynth.io.atomic import atomic_write_text, write_tsv
from gdsynth.io.bids import (
    Exam,
    derivative_path,
    raw_path,
    source_uri,
    write_dataset_description,
    write_sidecar,
)
from gdsynth.io.sequences import SEQUENCES as SEQUENCE_NAMES
from gdsynth.phantom.config import PhantomConfig
from gdsynth.phantom.metadata import (
    LESION_COLUMNS,
    LESIONS_SIDECAR,
    MOTION_CONVENTION,
    PARTICIPANT_COLUMNS,
    PARTICIPANTS_SIDECAR,
    README,
    raw_description,
)
from gdsynth.phantom.signal import SEQUENCES as SIMULATED
from gdsynth.phantom.simulate import ExamVolumes, simulate_subject

TRUTH_DIR = Path("derivatives") / "phantom"
CONFIG_NAME = "phantom_config.json"
#: ``.bidsignore`` of the truth derivative: the tables and records BIDS has no suffix for.
TRUTH_IGNORE = (CONFIG_NAME, "*_lesions.tsv", "*_lesions.json", "*_headmotion.json")
TRUTH_README = """# gdsynth phantom ground truth

Ground truth of the gdsynth digital MS phantom, on each exam's T1w grid
(`sub-<label>[/ses-<label>]/anat/`):

| file | content |
|---|---|
| `*_desc-enhancing_dseg.nii.gz` + `_dseg.tsv` | enhancing (active) lesions, instance labels = `label` of the lesion table |
| `*_label-L_desc-all_mask.nii.gz` | every lesion (chronic, black holes, active) |
| `*_desc-brain_mask.nii.gz` | brain mask |
| `*_label-vessel_mask.nii.gz` | enhancing vessels and dural sinuses |
| `*_label-{WM,GM,CSF}_probseg.nii.gz` | tissue fractions |
| `*_lesions.tsv` (+ `.json`) | one row per lesion: kind, position, size, enhancement pattern |
| `*_headmotion.json` | simulated rigid head motion of each scan relative to the T1w |

`phantom_config.json` records the seed and configuration. The tables and records that BIDS has
no suffix for are listed in `.bidsignore`.
"""
@dataclass
class SubjectFiles:
    """One subject as written (or found complete): its exams with their paths and its row of
    ``participants.tsv`` (``summary``); the ``value`` of the subject's :class:`CaseResult`."""

    index: int
    exams: list[Exam]
    summary: dict


def subject_label(index: int) -> str:
    return f"{index + 1:03d}"


def exam_entries(index: int, config: PhantomConfig) -> list[Exam]:
    """The exams of subject ``index`` (paths not filled in)."""
    sessions = [f"{s + 1:02d}" for s in range(config.sessions)] if config.sessions > 1 else [None]
    return [Exam(subject_label(index), ses) for ses in sessions]


def raw_paths(root: Path, exam: Exam, extra: tuple[str, ...] = ()) -> Exam:
    """``exam`` with the raw image paths under ``root`` of the sequences the phantom simulates
    (:data:`gdsynth.phantom.signal.SEQUENCES`, then the ``extra`` ones it was asked for; named by
    the sequence registry)."""
    names = [n for n in SEQUENCE_NAMES if n in SIMULATED] + list(extra)
    return replace(exam, files={n: raw_path(root, exam, n) for n in names})


def truth_path(root: Path, exam: Exam, suffix: str, ext: str = ".nii.gz", **entities: str) -> Path:
    """Path of a truth file of ``exam`` under ``root/derivatives/phantom``."""
    return derivative_path(Path(root) / TRUTH_DIR, exam, suffix, ext, **entities)


def enhancing_truth_path(root: Path, exam: Exam) -> Path | None:
    """The enhancing-lesion label map of ``exam`` under ``root/derivatives/phantom`` when it
    exists (also under its gdsynth 0.1 name, :func:`gdsynth.io.bids.find_derivative`)."""
    from gdsynth.io.bids import find_derivative

    p = find_derivative(Path(root) / TRUTH_DIR, exam, "dseg", desc="enhancing")
    return p if p.is_file() else None


def _expected_files(root: Path, exam: Exam, extra: tuple[str, ...] = ()) -> list[Path]:
    e = raw_paths(root, exam, extra)
    images = list(e.files.values())
    sidecars = [Path(str(p).replace(".nii.gz", ".json")) for p in images]  # type: ignore[arg-type]
    truth = [truth_path(root, exam, "lesions", ".tsv"), truth_path(root, exam, "headmotion", ".json")]
    return [*images, *sidecars, *truth]  # type: ignore[list-item]


def write_exam(root: Path, ev: ExamVolumes) -> Exam:
    """Write one exam's images, sidecars and truth under ``root``; return it with its paths."""
    exam = raw_paths(root, ev.exam, tuple(k for k in ev.images if k not in SIMULATED))
    for seq, (array, geometry) in ev.images.items():
        path = exam.path(seq)
        assert path is not None
        write_image(path, array, geometry, dtype=np.int16)
        write_json(Path(str(path).replace(".nii.gz", ".json")), ev.sidecars[seq])
    g, t = ev.geometry, ev.truth
    tp = lambda suffix, ext=".nii.gz", **e: truth_path(root, ev.exam, suffix, ext, **e)  # noqa: E731
    truth_root = Path(root) / TRUTH_DIR
    sources = [exam.t1w]

    def labels(path: Path, array: np.ndarray, description: str, **extra: object) -> None:
        write_labels(path, array, g)
        write_sidecar(path, truth_root, description=description, sources=sources,
                      SpatialReference=source_uri(truth_root, exam.t1w), **extra)  # type: ignore[arg-type]

    labels(tp("dseg", desc="enhancing"), t["enhancing"], "Enhancing (active) lesions: instance "
           "labels = 'label' of the lesion table")
    ids = np.unique(np.asarray(t["enhancing"]))
    write_tsv(tp("dseg", ".tsv", desc="enhancing"),
              [{"index": int(i), "name": f"enhancing_lesion_{int(i)}"} for i in ids if i > 0],
              columns=("index", "name"))
    labels(tp("mask", label="L", desc="all"), t["lesions"], "Every lesion", Type="Lesion")
    labels(tp("mask", desc="brain"), t["brain"], "Brain mask", Type="Brain")
    labels(tp("mask", label="vessel"), t["vessel"], "Enhancing vessels and dural sinuses",
           Type="ROI")
    for tissue in ("WM", "GM", "CSF"):
        prob = np.round(np.clip(t[tissue], 0, 1), 3).astype(np.float32)
        write_image(tp("probseg", label=tissue), prob, g)
        write_sidecar(tp("probseg", label=tissue), truth_root, sources=sources,
                      description=f"{tissue} fraction",
                      SpatialReference=source_uri(truth_root, exam.t1w))  # type: ignore[arg-type]
    write_json(tp("lesions", ".json"), LESIONS_SIDECAR)
    motion = {"reference": "T1w", "convention": MOTION_CONVENTION, **ev.motion}
    write_json(tp("headmotion", ".json"), motion)
    write_tsv(tp("lesions", ".tsv"), ev.lesions, columns=LESION_COLUMNS)  # last: completion mark
    return exam


def _summary(index: int, config: PhantomConfig, rows_per_exam: list[list[dict]], site: str,
             orientation: str) -> dict:
    first = rows_per_exam[0]
    return {
        "participant_id": f"sub-{subject_label(index)}",
        "site": site,
        "voxel_order": orientation,
        "sessions": config.sessions,
        "n_active_lesions": sum(r["kind"] == "active" for rows in rows_per_exam for r in rows),
        "n_active_exams": sum(any(r["kind"] == "active" for r in rows) for rows in rows_per_exam),
        "n_chronic_lesions": sum(r["kind"] in ("chronic", "blackhole") for r in first),
        "n_blackholes": sum(r["kind"] == "blackhole" for r in first),
        "session_active": [sum(r["kind"] == "active" for r in rows) for rows in rows_per_exam],
    }


def _subject_task(root: str, index: int, seed: int, config: PhantomConfig
                  ) -> SubjectFiles | Skipped:
    """Simulate and write one subject (runs in a worker process), or read back a complete one."""
    out = Path(root)
    exams = exam_entries(index, config)
    extra = tuple(config.extra_sequences)
    if all(p.exists() for e in exams for p in _expected_files(out, e, extra)):
        rows = [read_tsv(truth_path(out, e, "lesions", ".tsv")) for e in exams]
        _, geometry = read_image(raw_paths(out, exams[0]).t1w)  # type: ignore[arg-type]
        site = config.sites[index % len(config.sites)]
        summary = _summary(index, config, rows, site, geometry.orientation)
        return Skipped(SubjectFiles(index, [raw_paths(out, e, extra) for e in exams], summary))
    subject = simulate_subject(index, seed, config)
    written = [write_exam(out, ev) for ev in subject.exams]
    summary = _summary(index, config, [ev.lesions for ev in subject.exams], subject.site,
                       subject.orientation)
    return SubjectFiles(index, written, summary)


def prepare_output(out: Path, seed: int, config: PhantomConfig) -> None:
    """Check ``out`` may be written (empty, or a phantom of the same seed/config); write the
    dataset-level files."""
    out = Path(out)
    stamp = {"seed": int(seed), "config": config.to_dict()}
    marker = out / TRUTH_DIR / CONFIG_NAME
    if out.exists() and not out.is_dir():
        raise OutputError(out, "exists and is not a folder")
    if out.exists() and any(out.iterdir()):
        if not marker.exists():
            raise OutputError(out, "folder is not empty and is not a gdsynth phantom dataset; "
                              "refusing to write into it (choose a new or empty folder)")
        import json

        old = json.loads(marker.read_text(encoding="utf-8"))
        if {k: old.get(k) for k in stamp} != stamp:
            raise OutputError(out, "holds a phantom made with another seed or configuration; "
                              "choose a new or empty folder")
    write_json(out / "dataset_description.json", raw_description(seed))
    atomic_write_text(out / "README", README)
    write_json(out / "participants.json", PARTICIPANTS_SIDECAR)
    write_dataset_description(out / TRUTH_DIR, "gdsynth phantom ground truth",
                              description="Ground truth of the gdsynth digital MS phantom",
                              sources=[out], readme=TRUTH_README, ignore=TRUTH_IGNORE)
    write_json(marker, {**stamp, "gdsynth_version": __version__})


def iter_subjects(
    out: Path, *, subjects: int, seed: int, config: PhantomConfig, workers: int = 1,
    progress: bool = False,
) -> Iterator[CaseResult]:
    """Simulate and write subjects 0..subjects-1 (``workers`` processes), yielding one result per
    subject (case ``sub-<label>``, value :class:`SubjectFiles`) in subject order; a failed subject
    does not stop the others. ``progress``: a progress bar on stderr (unless quiet)."""
    if workers > 1 and subjects > 1:
        import multiprocessing

        if multiprocessing.get_start_method() == "fork":  # children inherit the loaded template
            from gdsynth.phantom.anatomy import load_landmarks, load_template

            load_template(config.resolution)
            load_landmarks()
    step = partial(_subject_task, str(out), seed=seed, config=config)
    yield from iter_batch(range(subjects), step, case=lambda i: f"sub-{subject_label(i)}",
                          description="phantom subjects", progress=progress, workers=workers)


def finish_dataset(out: Path, results: Sequence[CaseResult]) -> None:
    """Write participants.tsv (and per-subject sessions.tsv) from the subjects that exist."""
    ok = sorted((r.value for r in results if r.status != FAILED), key=lambda s: s.index)
    rows = [s.summary for s in ok]
    write_tsv(Path(out) / "participants.tsv", rows, columns=PARTICIPANT_COLUMNS)
    for s in ok:
        if s.summary["sessions"] > 1:
            ses = [{"session_id": f"ses-{e.session}", "n_active_lesions": n}
                   for e, n in zip(s.exams, s.summary["session_active"], strict=True)]
            sub = f"sub-{subject_label(s.index)}"
            write_tsv(Path(out) / sub / f"{sub}_sessions.tsv", ses)


def generate_dataset(
    out: Path,
    *,
    subjects: int,
    seed: int,
    resolution: float = 1.0,
    active_fraction: float = 0.5,
    sessions: int = 1,
    workers: int = 1,
    sites: Sequence[str] | None = None,
    config: PhantomConfig | None = None,
    on_result: Callable[[CaseResult], None] | None = None,
) -> list[Exam]:
    """Write a phantom cohort of ``subjects`` subjects to ``out``; return its exams (sorted).

    The keyword arguments override the same-named fields of ``config``. Raises
    :class:`OutputError` after the others are written if any subject failed.
    """
    if subjects < 1:
        raise ConfigError(None, f"subjects must be >= 1, got {subjects}")
    if seed < 0:
        raise ConfigError(None, f"seed must be >= 0, got {seed}")
    base = config or PhantomConfig()
    config = replace(base, resolution=float(resolution), active_fraction=float(active_fraction),
                     sessions=int(sessions), sites=tuple(sites) if sites else base.sites)
    out = Path(out)
    prepare_output(out, seed, config)
    results = []
    for r in iter_subjects(out, subjects=subjects, seed=seed, config=config, workers=workers):
        results.append(r)
        if on_result is not None:
            on_result(r)
    finish_dataset(out, results)
    failed = [r for r in results if r.status == FAILED]
    if failed:
        raise OutputError(out, f"{len(failed)} subject(s) failed: "
                          + "; ".join(f"{r.case}: {r.error}" for r in failed))
    return [e for s in sorted((r.value for r in results), key=lambda s: s.index) for e in s.exams]
