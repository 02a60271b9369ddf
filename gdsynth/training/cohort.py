"""From a BIDS cohort to prepared training exams: discovery, preparation (cached), enhancing-lesion
labels.

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


class LabelsError(GdsynthError):
    """An enhancing-lesion mask that cannot be used for training (e.g. not on the brain)."""


def annotation_path(folder: Path, exam) -> Path | None:  # exam: gdsynth.io.bids.Exam
    """The enhancing-lesion mask of ``exam`` in derivative ``folder`` (:data:`LABEL_NAMES`)."""
    from gdsynth.io.bids import find_derivative

    for suffix, entities in LABEL_NAMES:
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


def with_labels(bids_root: Path, exam, training: TrainingExam,
                label_roots: Sequence[Path] = ()) -> TrainingExam:
    """``training`` with its enhancing-lesion labels and their source (``extra['label_source']``,
    ``extra['label_path']``): the first ``label_roots`` mask (checked by :func:`check_labels`),
    else the phantom truth, else none (``threshold``)."""
    for folder in label_roots:
        path = annotation_path(folder, exam)
        if path is not None:
            check_labels(path, Path(training.paths["mask"]))
            source = "annotation"
            break
    else:
        from gdsynth.phantom.dataset import enhancing_truth_path

        path = enhancing_truth_path(bids_root, exam)
        source = "truth" if path is not None else "threshold"
    extra = {**training.extra, "label_source": source, "label_path": str(path) if path else ""}
    return replace(training, truth=path, extra=extra)


def label_sources(exams: Sequence[TrainingExam]) -> dict[str, Any]:
    """Where the exams' enhancing-lesion labels came from, for the model card: exam counts per
    source (:data:`LABEL_SOURCES`) and each exam's source and file."""
    per_exam = {}
    for e in exams:
        source = e.extra.get("label_source") or ("truth" if e.truth else "threshold")
        per_exam[e.id] = {"source": source, "path": str(e.truth) if e.truth else ""}
    counts = {s: sum(v["source"] == s for v in per_exam.values()) for s in LABEL_SOURCES}
    return {"counts": counts, "exams": per_exam}


def prepare_cohort(
    bids_root: str | Path, exams: Sequence, *, prep_root: str | Path | None = None,
    prep_config: dict[str, Any] | None = None, progress: bool = True,
    inputs: Sequence[str] | None = None, labels: Sequence[str | Path] = (),
) -> tuple[list[TrainingExam], list[CaseResult]]:
    """Prepare every exam (``gdsynth.preprocess.prepare_to_folder``, cached) and return the training
    exams plus one outcome per exam; a failing exam does not stop the rest.

    Each exam needs the T1w, the ``inputs`` (default: every input of the sequence registry,
    :mod:`gdsynth.io.sequences`) and the post-Gd T1w; only those pre-contrast
    sequences are prepared unless ``prep_config`` names ``sequences`` itself. ``labels``:
    derivative folders of enhancing-lesion masks, taking precedence over the phantom truth and
    the post − pre threshold (:func:`with_labels`); a mask off the brain raises
    :class:`LabelsError`, exams without a mask there are logged (warning).
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
    out_root = Path(prep_root) if prep_root else root / PREP_FOLDER
    needed = [s for s in input_names() if s == REFERENCE or inputs is None or s in inputs]
    config = PrepConfig(**{"sequences": tuple(needed), **(prep_config or {})})
    training: list[TrainingExam] = []
    outcomes: list[CaseResult] = []

    def prepare(exam) -> dict[str, Path] | Skipped:  # the exam's prepared files
        exam.require((*needed, POST))
        prepared = prepare_to_folder(exam, out_root, config)
        paths = {k: Path(v) for k, v in prepared.paths.items() if v is not None}
        return Skipped(paths) if getattr(prepared, "cached", False) else paths

    results = iter_batch(exams, prepare, case=lambda e: e.prefix, description="preparing exams",
                         progress=progress, catch=(GdsynthError, OSError, RuntimeError, ValueError))
    for exam, outcome in zip(exams, results, strict=True):
        outcomes.append(outcome)
        if outcome.status == FAILED:
            continue
        # outside the per-exam guard: a bad annotation stops the run, naming the file
        training.append(with_labels(root, exam, TrainingExam(id=exam.prefix, paths=outcome.value,
                                                             subject=exam.subject), label_roots))
    missing = [e for e in training if label_roots and e.extra["label_source"] != "annotation"]
    if missing:
        log.warning("%d exam(s) have no enhancing-lesion mask in %s; labelled by the phantom truth "
                    "or else the post - pre threshold: %s", len(missing),
                    ", ".join(map(str, label_roots)),
                    ", ".join(f"{e.id} ({e.extra['label_source']})" for e in missing))
    return training, outcomes
