"""Prepared exams as ``tio.Subject``s: input sequences, target post-Gd T1w, brain mask, and the
enhancing-lesion truth used for patch sampling.

Mixed training (several datasets): an exam *with a target* has a post-Gd T1w (synthesis, the
``enhancing`` head); a *mask-only* exam has none, only an all-lesion mask
(``TrainingExam.lesions``): it trains the ``lesions`` head, and its patches are centred on its
lesions.

Images are read through :func:`gdsynth.io.read_image` (lazily, by torchio's ``reader`` hook), so
tensors are ``(1, X, Y, Z)`` on the prepared grid with its RAS affine. Image keys are the sequence
names (``T1w``, ``T2w``, ``FLAIR``), ``T1w_gd`` (target) and ``brain`` (mask).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torchio as tio

from gdsynth.errors import MissingSequenceError
from gdsynth.io import read_image

TARGET = "T1w_gd"
BRAIN = "brain"
LESION = "lesion"  # binary enhancing-lesion map on the prepared grid (added by AddLesionLabels)
SAMPLING = "sampling"  # 0 outside brain, 1 brain, 2 enhancing lesion (mask-only exam: any lesion)
ALL_LESIONS = "lesions_all"  # binary map of every lesion visible before injection (head target)
TRUTH_ATTR = "truth_path"
LESIONS_ATTR = "lesions_path"  # the exam's all-lesion mask (TrainingExam.lesions), "" when none


@dataclass(frozen=True)
class TrainingExam:
    """One prepared exam for training.

    ``paths``: prepared NIfTI files keyed ``T1w``, ``T2w``, ``FLAIR``, ``T1w_gd``, ``mask`` (as
    ``gdsynth.preprocess.PreparedFiles.paths``). ``truth``: optional enhancing-lesion label map
    (phantom ``_desc-enhancing_dseg``) on any grid overlapping the prepared one (usually
    the native T1w grid); it is resampled by world coordinates (nearest neighbour). ``lesions``:
    optional all-lesion mask (every lesion visible before injection, the ``lesions`` head's
    target; any grid, resampled the same way). An exam without ``T1w_gd`` is *mask-only*: it
    needs ``lesions`` and trains the ``lesions`` head only.
    """

    id: str
    paths: Mapping[str, Path]
    truth: Path | None = None
    subject: str = ""
    extra: dict = field(default_factory=dict, compare=False, hash=False)
    lesions: Path | None = None

    @property
    def has_target(self) -> bool:
        """Whether the exam has the real post-Gd T1w (synthesis target); False: mask-only."""
        return self.paths.get(TARGET) is not None

    @property
    def subject_id(self) -> str:
        """Subject label used for the train/validation split (sessions stay together)."""
        return self.subject or self.id.split("_ses-")[0]


def read_scalar(path: Path) -> tuple[torch.Tensor, np.ndarray]:
    """torchio reader: ``(1, X, Y, Z)`` float32 tensor and RAS affine, via gdsynth.io."""
    array, geometry = read_image(path, allow_constant=True)
    return torch.from_numpy(np.ascontiguousarray(array))[None], geometry.affine


def read_label(path: Path) -> tuple[torch.Tensor, np.ndarray]:
    """torchio reader for masks: ``(1, X, Y, Z)`` uint8 tensor (value > 0.5) and RAS affine."""
    array, geometry = read_image(path, allow_constant=True)
    return torch.from_numpy((array > 0.5).astype(np.uint8))[None], geometry.affine


def make_subject(exam: TrainingExam, inputs: Sequence[str], *, need_target: bool = True) -> tio.Subject:
    """Build the ``tio.Subject`` of ``exam`` with ``inputs`` (in order), target and brain mask."""
    required = [*inputs, "mask"] + ([TARGET] if need_target else [])
    if "T1w" not in required:
        required.append("T1w")  # the pre-contrast reference (residual target, enhancement)
    missing = [k for k in required if k not in exam.paths or exam.paths[k] is None]
    if missing:
        raise MissingSequenceError(
            next(iter(exam.paths.values()), exam.id), f"exam {exam.id} lacks {', '.join(missing)}"
        )
    images: dict[str, object] = {}
    for key in dict.fromkeys([*inputs, "T1w", TARGET]):
        if key in exam.paths:
            images[key] = tio.ScalarImage(Path(exam.paths[key]), reader=read_scalar)
    images[BRAIN] = tio.LabelMap(Path(exam.paths["mask"]), reader=read_label)
    subject = tio.Subject(images, exam_id=exam.id, inputs=list(inputs))
    subject[TRUTH_ATTR] = str(exam.truth) if exam.truth else ""
    subject[LESIONS_ATTR] = str(exam.lesions) if exam.lesions else ""
    return subject


def truth_on_grid(truth_path: Path, reference: tio.Image) -> np.ndarray:
    """Resample a label map onto ``reference``'s grid by world coordinates (nearest neighbour).

    Returns an (X, Y, Z) uint8 array (1 where the label is > 0). Voxels outside the truth's field
    of view are 0.
    """
    import SimpleITK as sitk

    from gdsynth.io.geometry import Geometry, sitk_to_array

    labels, geometry = read_image(truth_path, allow_constant=True)
    moving = geometry.to_sitk((labels > 0).astype(np.uint8))
    ref = reference.as_sitk()
    ref_grid = Geometry.from_sitk(ref).empty_sitk(sitk.sitkUInt8)
    out = sitk.Resample(moving, ref_grid, sitk.Transform(), sitk.sitkNearestNeighbor, 0,
                        sitk.sitkUInt8)
    return sitk_to_array(out).astype(np.uint8)


def derived_lesions(
    pre: np.ndarray, post: np.ndarray, brain: np.ndarray, spacing: Sequence[float],
    *, threshold: float, smooth_mm: float,
) -> np.ndarray:
    """Enhancing voxels without truth: Gaussian-smoothed (σ = ``smooth_mm``) post − pre above
    ``threshold`` (normalized units) inside the brain. (X, Y, Z) uint8."""
    from scipy.ndimage import gaussian_filter

    diff = post.astype(np.float32) - pre.astype(np.float32)
    if smooth_mm > 0:
        diff = gaussian_filter(diff, sigma=[smooth_mm / s for s in spacing])
    return ((diff > threshold) & (brain > 0)).astype(np.uint8)


def all_lesions_truth_path(enhancing_truth: str | Path) -> Path | None:
    """The phantom ``_label-L_desc-all_mask`` next to a ``_desc-enhancing_dseg`` (or its name of
    gdsynth 0.1, ``_label-L_desc-enhancing_dseg``), if any."""
    name = str(enhancing_truth)
    for old in ("_label-L_desc-enhancing_dseg", "_desc-enhancing_dseg"):
        name = name.replace(old, "_label-L_desc-all_mask")
    p = Path(name)
    return p if p.is_file() and str(p) != str(enhancing_truth) else None


def derived_all_lesions(
    flair: np.ndarray, brain: np.ndarray, spacing: Sequence[float], *, threshold: float = 1.4,
    smooth_mm: float = 1.0,
) -> np.ndarray:
    """All lesions without truth: Gaussian-smoothed (σ = ``smooth_mm``) FLAIR (NAWM = 1) above
    ``threshold`` inside the brain eroded by 2 voxels (cortex/CSF borders are FLAIR-bright too).
    (X, Y, Z) uint8."""
    from scipy.ndimage import binary_erosion, gaussian_filter

    f = flair.astype(np.float32)
    if smooth_mm > 0:
        f = gaussian_filter(f, sigma=[smooth_mm / s for s in spacing])
    inner = binary_erosion(brain > 0, iterations=2)
    return ((f > threshold) & inner).astype(np.uint8)


class AddLesionLabels(tio.Transform):
    """Add ``lesion`` (binary enhancing) and ``sampling`` (0 out, 1 brain, 2 lesion) label maps.

    Uses the phantom truth (``truth_path`` attribute) when present, else :func:`derived_lesions`
    from the real post − pre. Apply first, before any spatial augmentation. With
    ``all_lesions`` it also adds ``lesions_all`` (every lesion visible before injection, the
    target of the ``lesions`` head), first found: the exam's all-lesion mask (``lesions_path``
    attribute: an annotation or the phantom ``_label-L_desc-all_mask``, found by
    :func:`gdsynth.training.cohort.with_labels`), the phantom mask next to the truth, else
    :func:`derived_all_lesions` from FLAIR hyperintensity; an exam with none of these (no FLAIR)
    gets no ``lesions_all`` (its patches do not train the head).

    A mask-only subject (no ``T1w_gd``) has an empty ``lesion`` map, and its ``sampling`` map
    marks its all-lesion mask as the lesion class, so lesion oversampling centres on its lesions.
    """

    def __init__(self, *, threshold: float = 0.25, smooth_mm: float = 1.0,
                 all_lesions: bool = False, flair_threshold: float = 1.4, **kwargs) -> None:
        super().__init__(**kwargs)
        self.threshold = threshold
        self.smooth_mm = smooth_mm
        self.all_lesions = all_lesions
        self.flair_threshold = flair_threshold
        self.args_names = ["threshold", "smooth_mm", "all_lesions", "flair_threshold"]

    def _all_lesions(self, subject: tio.Subject, brain: np.ndarray,
                     lesion: np.ndarray) -> np.ndarray | None:
        truth = subject.get(TRUTH_ATTR, "")
        path = subject.get(LESIONS_ATTR, "") or (all_lesions_truth_path(truth) if truth else None)
        if path:
            out = truth_on_grid(Path(path), subject["T1w"])
        elif "FLAIR" in subject and TARGET in subject:
            out = derived_all_lesions(subject["FLAIR"].data[0].numpy(), brain,
                                      subject["FLAIR"].spacing, threshold=self.flair_threshold)
        else:
            return None
        return ((out > 0) | (lesion > 0)).astype(np.uint8) * (brain > 0)

    def _enhancing(self, subject: tio.Subject, brain: np.ndarray) -> np.ndarray:
        truth = subject.get(TRUTH_ATTR, "")
        if TARGET not in subject:  # mask-only: nothing known about enhancement
            return np.zeros_like(brain, dtype=np.uint8)
        if truth:
            return truth_on_grid(Path(truth), subject["T1w"])
        return derived_lesions(subject["T1w"].data[0].numpy(), subject[TARGET].data[0].numpy(),
                               brain, subject["T1w"].spacing, threshold=self.threshold,
                               smooth_mm=self.smooth_mm)

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        brain = subject[BRAIN].data[0].numpy()
        lesion = self._enhancing(subject, brain) * (brain > 0)
        every = self._all_lesions(subject, brain, lesion) \
            if self.all_lesions or TARGET not in subject else None
        centres = lesion if TARGET in subject or every is None else every
        sampling = (brain > 0).astype(np.uint8) + (centres > 0).astype(np.uint8) * (brain > 0)
        affine = subject[BRAIN].affine

        def add(array: np.ndarray, name: str) -> None:
            subject.add_image(tio.LabelMap(tensor=torch.from_numpy(array[None].astype(np.uint8)),
                                           affine=affine), name)

        add(lesion, LESION)
        add(sampling, SAMPLING)
        if self.all_lesions and every is not None:
            add(every, ALL_LESIONS)
        return subject


def brain_bounds(brain: np.ndarray, margin: int, min_size: Sequence[int]) -> tuple[int, ...]:
    """torchio Crop bounds ``(i0, i1, j0, j1, k0, k1)`` (voxels removed at each side) keeping the
    mask's bounding box plus ``margin`` and at least ``min_size`` voxels per axis."""
    nz = np.argwhere(brain > 0)
    shape = brain.shape
    if nz.size == 0:
        return (0,) * 6
    bounds = []
    for ax in range(3):
        lo = max(0, int(nz[:, ax].min()) - margin)
        hi = min(shape[ax], int(nz[:, ax].max()) + 1 + margin)
        need = min(int(min_size[ax]), shape[ax]) - (hi - lo)
        if need > 0:  # grow symmetrically, staying inside the volume
            lo = max(0, lo - (need + 1) // 2)
            hi = min(shape[ax], lo + max(hi - lo, int(min_size[ax])))
            lo = max(0, hi - max(hi - lo, int(min_size[ax])))
        bounds += [lo, shape[ax] - hi]
    return tuple(bounds)


class CropToBrain(tio.Transform):
    """Crop every image to the brain bounding box + ``margin`` voxels (at least ``min_size``):
    fewer voxels to load, augment and sample from."""

    def __init__(self, *, margin: int = 4, min_size: Sequence[int] = (1, 1, 1), **kwargs) -> None:
        super().__init__(**kwargs)
        self.margin = int(margin)
        self.min_size = tuple(int(s) for s in min_size)
        self.args_names = ["margin", "min_size"]

    def apply_transform(self, subject: tio.Subject) -> tio.Subject:
        bounds = brain_bounds(subject[BRAIN].data[0].numpy(), self.margin, self.min_size)
        return subject if not any(bounds) else tio.Crop(bounds)(subject)
