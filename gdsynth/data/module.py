"""``GdsynthDataModule``: subject-level split, lesion-oversampling patch queue, whole-volume
validation.

Reproducibility: every training epoch builds a fresh ``tio.Queue`` after reseeding Python, numpy
and torch with ``(seed, epoch, rank)``, so the patches of epoch *e* do not depend on what happened
before it; resuming from a checkpoint taken at an epoch boundary replays the same data.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pytorch_lightning as pl
import torchio as tio
from torch.utils.data import DataLoader

from gdsynth.data.augment import AugmentConfig, build_augmentation
from gdsynth.data.patches import (
    PatchCollate,
    TensorLabelSampler,
    VolumeCollate,
    patch_size_for,
)
from gdsynth.data.subjects import (
    SAMPLING,
    AddLesionLabels,
    CropToBrain,
    TrainingExam,
    make_subject,
)
from gdsynth.errors import ConfigError
from gdsynth.io.sequences import input_names
from gdsynth.models.card import Mode


@dataclass
class DataConfig:
    """Data and sampling settings (units: voxels of the prepared grid, normalized intensity)."""

    inputs: list[str] = field(default_factory=lambda: list(input_names()))
    mode: str = "2.5d"
    context_slices: int = 1
    patch_size: int = 64
    batch_size: int = 8
    samples_per_volume: int = 16
    queue_length: int = 128
    num_workers: int = 1
    lesion_probability: float = 0.5  # share of patches centred on enhancing lesions
    background_probability: float = 0.0  # share centred outside the brain (rest: brain)
    val_fraction: float = 0.2
    subjects_per_epoch: int = 0  # subject loads per epoch (0: one pass over the training set)
    cache_subjects: bool = True  # keep loaded, labelled, brain-cropped subjects in RAM
    enhancement_threshold: float = 0.25  # derived labels: smoothed post − pre above this
    label_smoothing_mm: float = 1.0
    all_lesion_labels: bool = False  # add ``lesions_all`` (the ``lesions`` head's target)
    cvae: str = ""  # folder of a trained lesion CVAE (gdsynth.models.cvae.save_cvae), 2D/2.5D
    cvae_per_batch: int = 0  # generated lesion patches appended to each training batch
    # missing sequences: each of ``optional_inputs`` is zeroed in a training patch with
    # probability ``input_dropout`` (the card lists them: inference may run without them)
    input_dropout: float = 0.0
    optional_inputs: list[str] = field(default_factory=list)
    augment: AugmentConfig = field(default_factory=AugmentConfig)

    def validate(self) -> None:
        valid = input_names()  # the sequence registry's inputs (gdsynth.io.sequences)
        bad = [s for s in self.inputs if s not in valid]
        if bad or not self.inputs or len(set(self.inputs)) != len(self.inputs):
            raise ConfigError(None, f"data.inputs {self.inputs} invalid; use a subset of {valid}")
        try:
            Mode(self.mode)
        except ValueError:
            raise ConfigError(None, f"data.mode {self.mode!r} invalid; choose one of "
                              f"{', '.join(m.value for m in Mode)}") from None
        if not 0 <= self.input_dropout < 1:
            raise ConfigError(None, f"data.input_dropout {self.input_dropout} must be in [0, 1)")
        stray = [s for s in self.optional_inputs if s not in self.inputs]
        if stray or len(set(self.optional_inputs)) >= len(self.inputs):
            raise ConfigError(None, f"data.optional_inputs {self.optional_inputs} must be a subset "
                              f"of data.inputs {self.inputs} that leaves at least one input "
                              "always present")
        if not 0 <= self.lesion_probability + self.background_probability <= 1:
            raise ConfigError(None, "data.lesion_probability + background_probability must be <= 1")

    @property
    def in_channels(self) -> int:
        per = 2 * self.context_slices + 1 if self.mode == Mode.two_half_d.value else 1
        return len(self.inputs) * per


def split_exams(
    exams: Sequence[TrainingExam], val_fraction: float, seed: int
) -> tuple[list[TrainingExam], list[TrainingExam]]:
    """Deterministic subject-level split: all exams of one subject fall on the same side.

    At least one subject is kept for training, and one for validation when ``val_fraction > 0``
    and there are two subjects or more. Validation needs a target: only the subjects of exams
    with a post-Gd T1w are split; mask-only exams (:attr:`TrainingExam.has_target` false) train,
    except those of a held-out subject, which are left out (no subject on both sides).
    """
    subjects = sorted({e.subject_id for e in exams if e.has_target})
    random.Random(seed).shuffle(subjects)
    n_val = 0
    if val_fraction > 0 and len(subjects) > 1:
        n_val = min(len(subjects) - 1, max(1, round(val_fraction * len(subjects))))
    val_subjects = set(subjects[:n_val])
    return ([e for e in exams if e.subject_id not in val_subjects],
            [e for e in exams if e.subject_id in val_subjects and e.has_target])


def check_mixed(train: Sequence[TrainingExam], val: Sequence[TrainingExam],
                config: DataConfig) -> None:
    """Refuse (:class:`ConfigError`, naming the exam) a validation exam without a target, and a
    mask-only training exam that cannot train anything: the recipe has no ``lesions`` head
    (``data.all_lesion_labels`` false) or the exam has no all-lesion mask."""
    for e in val:
        if not e.has_target:
            raise ConfigError(e.paths.get("T1w"), f"validation exam {e.id} has no post-Gd T1w "
                              "(validation scores the synthesis)")
    for e in train:
        if e.has_target:
            continue
        if not config.all_lesion_labels:
            raise ConfigError(e.paths.get("T1w"), f"exam {e.id} has no post-Gd T1w: a mask-only "
                              "exam trains only the 'lesions' head, which this recipe lacks "
                              "(add it to generator.heads)")
        if e.lesions is None:
            raise ConfigError(e.paths.get("T1w"), f"mask-only exam {e.id} (no post-Gd T1w) has "
                              "no all-lesion mask to train on")


class EpochLoader:
    """An iterable of training batches that rebuilds (and reseeds) its loader every epoch."""

    def __init__(self, make_loader: Callable[[], DataLoader], seed_for_epoch: Callable[[], int],
                 length: int) -> None:
        self.make_loader = make_loader
        self.seed_for_epoch = seed_for_epoch
        self.length = length

    def __len__(self) -> int:
        return self.length

    def __iter__(self) -> Iterator:
        # A generator: nothing (no reseeding) happens until the first batch is asked for.
        from gdsynth.runtime import seed_everything

        seed_everything(self.seed_for_epoch())
        yield from self.make_loader()


class GdsynthDataModule(pl.LightningDataModule):
    """Training patches from a ``tio.Queue`` (``tio.LabelSampler`` oversampling lesions) and whole
    validation volumes. ``exams`` are prepared exams; the split is by subject and by ``seed``."""

    def __init__(self, *, exams: Sequence[TrainingExam], config: DataConfig, seed: int = 0,
                 val_exams: Sequence[TrainingExam] | None = None) -> None:
        super().__init__()
        config.validate()
        self.config = config
        self.seed = seed
        if val_exams is None:
            self.train_exams, self.val_exams = split_exams(exams, config.val_fraction, seed)
        else:
            self.train_exams, self.val_exams = list(exams), list(val_exams)
        if not self.train_exams:
            raise ConfigError(None, "no training exams")
        check_mixed(self.train_exams, self.val_exams, config)
        self._cache: list[tio.Subject] | None = None
        self._mixer = None

    # -- pieces -----------------------------------------------------------------------------
    def label_transform(self) -> AddLesionLabels:
        c = self.config
        return AddLesionLabels(threshold=c.enhancement_threshold, smooth_mm=c.label_smoothing_mm,
                               all_lesions=c.all_lesion_labels)

    def sampler(self) -> TensorLabelSampler:
        c = self.config
        probs = {0: c.background_probability, 1: 1.0 - c.lesion_probability - c.background_probability,
                 2: c.lesion_probability}
        return TensorLabelSampler(patch_size_for(c.mode, c.patch_size, c.context_slices),
                                label_name=SAMPLING, label_probabilities=probs)

    def base_transform(self) -> tio.Transform:
        """Deterministic per-subject preparation: lesion/sampling labels, crop to the brain."""
        c = self.config
        patch = patch_size_for(c.mode, c.patch_size, c.context_slices)
        return tio.Compose([self.label_transform(), CropToBrain(margin=4, min_size=patch)])

    def train_subjects(self) -> list[tio.Subject]:
        """Training subjects; loaded and base-transformed once when ``cache_subjects``."""
        c = self.config
        subjects = [make_subject(e, c.inputs, need_target=e.has_target) for e in self.train_exams]
        if not c.cache_subjects:
            return subjects
        if self._cache is None:
            base = self.base_transform()
            self._cache = [base(s) for s in subjects]
        return self._cache

    def train_dataset(self) -> tio.SubjectsDataset:
        c = self.config
        transforms: list[tio.Transform] = [] if c.cache_subjects else [self.base_transform()]
        aug = build_augmentation(c.augment, c.inputs)
        if aug is not None:
            transforms.append(aug)
        return tio.SubjectsDataset(self.train_subjects(),
                                   transform=tio.Compose(transforms) if transforms else None)

    def subject_order(self, seed: int) -> list[int]:
        """Subject indices loaded this epoch: shuffled passes, ``subjects_per_epoch`` long."""
        n = len(self.train_exams)
        total = self.config.subjects_per_epoch or n
        rng = np.random.default_rng(seed)
        order: list[int] = []
        while len(order) < total:
            order += rng.permutation(n).tolist()
        return order[:total]

    def _rank_world(self) -> tuple[int, int]:
        t = getattr(self, "trainer", None)
        return (t.global_rank, t.world_size) if t is not None else (0, 1)

    def batches_per_epoch(self) -> int:
        c = self.config
        loads = c.subjects_per_epoch or len(self.train_exams)
        return max(1, loads * c.samples_per_volume // c.batch_size)

    def _make_train_loader(self) -> DataLoader:
        c = self.config
        queue = tio.Queue(
            self.train_dataset(), max_length=max(c.queue_length, c.samples_per_volume),
            samples_per_volume=c.samples_per_volume, sampler=self.sampler(),
            subject_sampler=self.subject_order(self._epoch_seed()),  # type: ignore[arg-type]
            num_workers=c.num_workers, shuffle_subjects=False, shuffle_patches=True,
            start_background=False,
        )
        loader = DataLoader(queue, batch_size=c.batch_size, num_workers=0, drop_last=True,
                            collate_fn=PatchCollate(c.inputs, c.mode, dropout=c.input_dropout,
                                                    optional=c.optional_inputs,
                                                    all_lesions=c.all_lesion_labels))
        return self._cvae_mixer().wrap(loader) if c.cvae and c.cvae_per_batch > 0 else loader

    def _cvae_mixer(self):  # -> gdsynth.models.cvae.CVAEMixer, built once
        import torch

        from gdsynth.data.subjects import BRAIN, LESION, TARGET
        from gdsynth.models.cvae import CVAEMixer, lesion_patches, load_cvae

        c = self.config
        if self._mixer is None:
            if Mode(c.mode) is Mode.three_d:
                raise ConfigError(None, "data.cvae works with 2d/2.5d patches only")
            model = load_cvae(c.cvae)
            if model.kwargs["patch"] != c.patch_size or model.channels != len(c.inputs) + 1:
                raise ConfigError(None, f"CVAE {c.cvae} is for {model.kwargs['patch']}-voxel "
                                  f"patches of {model.channels - 1} sequences; data has "
                                  f"{c.patch_size} and {c.inputs}")
            order = [*c.inputs, TARGET]
            subjects = [s for s in self.train_subjects() if TARGET in s]  # a bank needs targets
            if not c.cache_subjects:
                subjects = [self.base_transform()(s) for s in subjects]
            parts = [lesion_patches({k: s[k].data[0].numpy() for k in order},
                                    s[LESION].data[0].numpy(), s[BRAIN].data[0].numpy(), order,
                                    c.patch_size) for s in subjects]
            bank = tuple(torch.cat([p[i] for p in parts]) for i in range(3))
            k = c.context_slices if Mode(c.mode) is Mode.two_half_d else 0
            self._mixer = CVAEMixer(model, bank, c.cvae_per_batch, context_slices=k,
                                    t1w_index=c.inputs.index("T1w") if "T1w" in c.inputs else 0,
                                    seed=self.seed)
        return self._mixer

    def _epoch_seed(self) -> int:
        t = getattr(self, "trainer", None)
        epoch = t.current_epoch if t is not None else 0
        rank, _ = self._rank_world()
        return (self.seed * 1_000_003 + epoch * 7919 + rank * 104_729) % (2**31)

    # -- Lightning hooks ---------------------------------------------------------------------
    def train_dataloader(self) -> EpochLoader:
        self.train_subjects()  # fill the cache now, outside the per-epoch seeded region
        return EpochLoader(self._make_train_loader, self._epoch_seed, self.batches_per_epoch())

    def val_dataloader(self) -> DataLoader | list:
        if not self.val_exams:
            return []
        c = self.config
        subjects = [make_subject(e, c.inputs) for e in self.val_exams]
        dataset = tio.SubjectsDataset(subjects, transform=self.label_transform())
        return DataLoader(dataset, batch_size=1, shuffle=False, num_workers=0,
                          collate_fn=VolumeCollate(c.inputs))

    def summary(self) -> dict:
        """Training-data description for the model card."""
        mask_only = sum(not e.has_target for e in self.train_exams)
        return {"train_exams": [e.id for e in self.train_exams],
                "val_exams": [e.id for e in self.val_exams],
                "n_train": len(self.train_exams), "n_val": len(self.val_exams),
                "n_train_with_target": len(self.train_exams) - mask_only,
                "n_train_mask_only": mask_only}
