"""From a BIDS cohort to prepared training exams: discovery, preparation (cached), enhancing-lesion
and all-lesion labels.

Where an exam's enhancing-lesion labels come from (its ``label source``), first found wins:

1. ``annotation``: a mask in one of the ``--labels`` derivative folders (:data:`LABEL_NAMES`, e.g.
   the output of ``gdsynth label``), in the order the folders are given;
2. ``truth``: the phantom truth (``derivatives/phantom/..._desc-enhancing_dseg``);
3. ``threshold``: none; :class:`gdsynth.data.subjects.AddLesionLabels` thresholds the smoothed
   real post − pre (``data.enhancement_threshold``, ``data.label_smoothing_mm``).

Masks may lie on any grid (usually the native T1w one): ``AddLesionLabels`` resamples them onto the
prepared grid by world coordinates (nearest neighbour). A mask is checked against the prepared
brain mask first: one whose field of view or labelled voxels miss the brain is refused
(:class:`LabelsError`, naming the file).

All-lesion masks (every lesion visible before injection: the ``lesions`` head's target,
``TrainingExam.lesions``) follow one rule, :data:`ALL_LESION_NAMES` looked up first in the
``--labels`` folders (``annotation``), then in the phantom truth folder (``truth``: the phantom's
``_label-L_desc-all_mask`` is one of these names); without one, an exam with a post-Gd T1w gets
the FLAIR-derived map (``flair``, when the recipe trains the head), and a *mask-only* exam (no
post-Gd T1w, :func:`prepare_cohort` with ``mask_only``) is refused before anything is prepared
(:class:`LabelsError` naming the exam).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from gdsynth.batch import FAILED, CaseResult, Skipped, iter_batch
from gdsynth.data.subjects import TrainingExam
from gdsynth.errors import GdsynthError, TrainingError
from gdsynth.io.sequences import POST, REFERENCE, input_names

log = logging.getLogger(__name__)

PREP_FOLDER = Path("derivatives") / "gdsynth-prep"
#: Enhancing-lesion masks read from a ``--labels`` folder, as ``(suffix, entities)`` under
#: ``DERIV/sub-X[/ses-Y]/anat/<prefix>_<entities>_<suffix>.nii[.gz]``, first found wins; any
#: voxel > 0 is enhancing. ``gdsynth label``/``predict`` write the first (their gdsynth 0.1 name
#: ``_label-L_desc-enhancing_dseg`` is read too).
LABEL_NAMES: tuple[tuple[str, dict[str, str]], ...] = (
    ("dseg", {"desc": "enhancing"}),
    ("mask", {"desc": "enhancing"}),
    ("mask", {"label": "enhancing"}),
)
#: Label sources, in precedence order (recorded per exam in ``TrainingExam.extra`` and the card).
LABEL_SOURCES = ("annotation", "truth", "threshold")
#: All-lesion masks, as ``(suffix, entities)`` like :data:`LABEL_NAMES` (any voxel > 0 is a
#: lesion), first found wins: in each ``--labels`` folder, then in the phantom truth folder (whose
#: ``_label-L_desc-all_mask`` is the last name).
ALL_LESION_NAMES: tuple[tuple[str, dict[str, str]], ...] = (
    ("mask", {"desc": "lesions"}),
    ("dseg", {"desc": "lesions"}),
    ("mask", {"label": "lesions"}),
    ("mask", {"label": "L", "desc": "all"}),
)
#: All-lesion label sources, in precedence order (``flair``: derived from FLAIR in training).
ALL_LESION_SOURCES = ("annotation", "truth", "flair")


class LabelsError(GdsynthError):
    """An enhancing-lesion mask that cannot be used for training (e.g. not on the brain)."""


def annotation_path(folder: Path, exam,  # exam: gdsynth.io.bids.Exam
                    names: Sequence[tuple[str, dict[str, str]]] = LABEL_NAMES) -> Path | None:
    """The mask of ``exam`` in derivative ``folder`` named by one of ``names`` (first found;
    default :data:`LABEL_NAMES`, the enhancing-lesion masks)."""
    from gdsynth.io.bids import find_derivative

    for suffix, entities in names:
        for ext in (".nii.gz", ".nii"):
            p = find_derivative(Path(folder), exam, suffix, ext, **entities)
            if p.is_file():
                return p
    return None


def check_labels(path: Path, brain_mask: Path) -> None:
    """Refuse (:class:`LabelsError`, naming ``path``) a mask whose field of view misses the brain
    of ``brain_mask`` or whose labelled voxels all lie outside it. Grids are matched by world
    coordinates (nearest neighbour); an empty mask (no enhancing lesion) on the brain is valid."""
    import torchio as tio

    from gdsynth.data.subjects import read_label, truth_on_grid
    from gdsynth.io import read_image

    brain = tio.LabelMap(Path(brain_mask), reader=read_label)
    inside = brain.data[0].numpy() > 0
    labels, geometry = read_image(path, allow_constant=True)
    if labels.ndim != 3:
        raise LabelsError(path, f"expected a 3D mask, got shape {labels.shape}")
    on_grid = truth_on_grid(path, brain)
    field = _field_of_view(geometry, brain)
    if not (field & inside).any():
        raise LabelsError(path, "the mask's field of view does not overlap the exam's brain "
                          "(wrong subject or wrong space?)")
    if (labels > 0).any() and not (on_grid[inside] > 0).any():
        raise LabelsError(path, f"none of its {int((labels > 0).sum())} labelled voxels lies in "
                          "the exam's brain (wrong subject or wrong space?)")


def _field_of_view(geometry, reference) -> np.ndarray:  # geometry: gdsynth.io.Geometry
    """Voxels of ``reference`` (a ``tio.Image``) inside the field of view of ``geometry``."""
    import SimpleITK as sitk

    from gdsynth.io.geometry import Geometry, sitk_to_array

    ones = geometry.to_sitk(np.ones(geometry.shape, dtype=np.uint8))
    grid = Geometry.from_sitk(reference.as_sitk()).empty_sitk(sitk.sitkUInt8)
    out = sitk.Resample(ones, grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0, sitk.sitkUInt8)
    return sitk_to_array(out) > 0


def all_lesions_path(bids_root: Path, exam, label_roots: Sequence[Path] = ()
                     ) -> tuple[Path | None, str]:
    """The all-lesion mask of ``exam`` (:data:`ALL_LESION_NAMES`) and its source: the first
    ``label_roots`` folder holding one (``annotation``), else the phantom truth folder of
    ``bids_root`` (``truth``), else ``(None, "")``."""
    from gdsynth.phantom.dataset import TRUTH_DIR

    for folder in label_roots:
        path = annotation_path(folder, exam, ALL_LESION_NAMES)
        if path is not None:
            return path, "annotation"
    path = annotation_path(Path(bids_root) / TRUTH_DIR, exam, ALL_LESION_NAMES)
    return (path, "truth") if path is not None else (None, "")


def require_all_lesions(bids_root: Path, exams: Sequence, label_roots: Sequence[Path] = ()) -> None:
    """Refuse (:class:`LabelsError`, naming the exam) a mask-only exam (no post-Gd T1w) that has
    no all-lesion mask in ``label_roots`` nor in the phantom truth (checked before preparing)."""
    names = ", ".join(f"_{'_'.join(f'{k}-{v}' for k, v in e.items())}_{s}"
                      for s, e in ALL_LESION_NAMES)
    for exam in exams:
        if exam.t1w_gd is None and all_lesions_path(bids_root, exam, label_roots)[0] is None:
            raise LabelsError(exam.path("T1w") or Path(bids_root), f"exam {exam.prefix} has no "
                              "post-Gd T1w and no all-lesion mask to train on (a mask-only exam "
                              f"needs <prefix>{{{names}}}.nii[.gz] in a --labels folder)")


def with_labels(bids_root: Path, exam, training: TrainingExam,
                label_roots: Sequence[Path] = ()) -> TrainingExam:
    """``training`` with its enhancing-lesion labels and their source (``extra['label_source']``,
    ``extra['label_path']``): the first ``label_roots`` mask (checked by :func:`check_labels`),
    else the phantom truth, else none (``threshold``); a mask-only exam (no post-Gd T1w) has none
    (source ``none``). Its all-lesion mask (:func:`all_lesions_path`, an annotation checked the
    same way) goes to ``training.lesions`` (``extra['all_lesions_source']``, ``'flair'`` when
    none: derived from FLAIR if the recipe trains the ``lesions`` head)."""
    brain = Path(training.paths["mask"])
    path: Path | None = None
    if not training.has_target:
        source = "none"
    else:
        for folder in label_roots:
            path = annotation_path(folder, exam)
            if path is not None:
                check_labels(path, brain)
                source = "annotation"
                break
        else:
            from gdsynth.phantom.dataset import enhancing_truth_path

            path = enhancing_truth_path(bids_root, exam)
            source = "truth" if path is not None else "threshold"
    every, every_source = all_lesions_path(bids_root, exam, label_roots)
    if every_source == "annotation":
        check_labels(every, brain)  # type: ignore[arg-type]
    extra = {**training.extra, "label_source": source, "label_path": str(path) if path else "",
             "all_lesions_source": every_source or "flair",
             "all_lesions_path": str(every) if every else ""}
    return replace(training, truth=path, lesions=every, extra=extra)


def label_sources(exams: Sequence[TrainingExam]) -> dict[str, Any]:
    """Where the exams' labels came from, for the model card: exam counts per enhancing-lesion
    source (:data:`LABEL_SOURCES`; mask-only exams have none), per all-lesion source
    (:data:`ALL_LESION_SOURCES`), per kind (``with_target``: post-Gd T1w, ``mask_only``), and
    each exam's sources and files."""
    per_exam = {}
    for e in exams:
        source = e.extra.get("label_source") or ("truth" if e.truth else "threshold")
        every = e.extra.get("all_lesions_source") or ("truth" if e.lesions else "flair")
        per_exam[e.id] = {"source": source, "path": str(e.truth) if e.truth else "",
                          "kind": "with_target" if e.has_target else "mask_only",
                          "all_lesions_source": every,
                          "all_lesions_path": str(e.lesions) if e.lesions else ""}
    counts = {s: sum(v["source"] == s for v in per_exam.values()) for s in LABEL_SOURCES}
    every = {s: sum(v["all_lesions_source"] == s for v in per_exam.values())
             for s in ALL_LESION_SOURCES}
    kinds = {k: sum(v["kind"] == k for v in per_exam.values()) for k in ("with_target", "mask_only")}
    return {"counts": counts, "all_lesion_counts": every, "kinds": kinds, "exams": per_exam}


def prepare_cohort(
    bids_root: str | Path, exams: Sequence, *, prep_root: str | Path | None = None,
    prep_config: dict[str, Any] | None = None, progress: bool = True,
    inputs: Sequence[str] | None = None, labels: Sequence[str | Path] = (),
    mask_only: bool = False, dataset: str = "",
) -> tuple[list[TrainingExam], list[CaseResult]]:
    """Prepare every exam (``gdsynth.preprocess.prepare_to_folder``, cached) and return the training
    exams plus one outcome per exam; a failing exam does not stop the rest.

    Each exam needs the T1w, the ``inputs`` (default: every input of the sequence registry,
    :mod:`gdsynth.io.sequences`) and the post-Gd T1w; only those pre-contrast
    sequences are prepared unless ``prep_config`` names ``sequences`` itself. ``labels``:
    derivative folders of enhancing-lesion masks, taking precedence over the phantom truth and
    the post − pre threshold (:func:`with_labels`); a mask off the brain raises
    :class:`LabelsError`, exams without a mask there are logged (warning). With ``mask_only``,
    exams without a post-Gd T1w are prepared too (mask-only exams, ``TrainingExam.has_target``
    false); each needs an all-lesion mask (:func:`require_all_lesions`, checked first).
    ``dataset``: a name for this cohort among several trained together; the training exams' ids
    and subjects are then ``<dataset>:<prefix>`` and ``<dataset>:<subject>`` (two datasets may
    both hold a ``sub-001``), and ``extra['dataset']`` records it.
    """
    try:
        from gdsynth.preprocess import PrepConfig, prepare_to_folder
    except ImportError as exc:
        raise TrainingError(None, f"gdsynth.preprocess.prepare_to_folder is unavailable ({exc})") from None
    root = Path(bids_root)
    label_roots = [Path(p) for p in labels]
    for folder in label_roots:
        if not folder.is_dir():
            raise LabelsError(folder, "--labels folder not found")
    if mask_only:
        require_all_lesions(root, exams, label_roots)
    out_root = Path(prep_root) if prep_root else root / PREP_FOLDER
    needed = [s for s in input_names() if s == REFERENCE or inputs is None or s in inputs]
    config = PrepConfig(**{"sequences": tuple(needed), **(prep_config or {})})
    training: list[TrainingExam] = []
    outcomes: list[CaseResult] = []

    def prepare(exam) -> dict[str, Path] | Skipped:  # the exam's prepared files
        exam.require((*needed, POST) if exam.t1w_gd is not None or not mask_only else needed)
        prepared = prepare_to_folder(exam, out_root, config)
        paths = {k: Path(v) for k, v in prepared.paths.items() if v is not None}
        return Skipped(paths) if getattr(prepared, "cached", False) else paths

    tag = f"{dataset}:" if dataset else ""
    results = iter_batch(exams, prepare, case=lambda e: tag + e.prefix, description="preparing exams",
                         progress=progress, catch=(GdsynthError, OSError, RuntimeError, ValueError))
    for exam, outcome in zip(exams, results, strict=True):
        outcomes.append(outcome)
        if outcome.status == FAILED:
            continue
        # outside the per-exam guard: a bad annotation stops the run, naming the file
        one = TrainingExam(id=tag + exam.prefix, paths=outcome.value, subject=tag + exam.subject,
                           extra={"dataset": dataset} if dataset else {})
        training.append(with_labels(root, exam, one, label_roots))
    missing = [e for e in training if label_roots and e.has_target
               and e.extra["label_source"] != "annotation"]
    if missing:
        log.warning("%d exam(s) have no enhancing-lesion mask in %s; labelled by the phantom truth "
                    "or else the post - pre threshold: %s", len(missing),
                    ", ".join(map(str, label_roots)),
                    ", ".join(f"{e.id} ({e.extra['label_source']})" for e in missing))
    return training, outcomes
