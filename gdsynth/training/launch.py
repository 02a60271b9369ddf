"""The work of ``gdsynth train`` below the CLI: the run's configuration, the training exams of a
BIDS cohort (prepared, cached), then the run and the fit of its lesion stage.

``gdsynth train`` parses its options, then calls :func:`load_run_config`,
:func:`collect_training_set` and :func:`train_from_set` in that order (so a bad recipe, setting
or tracker fails before any exam is prepared or folder written).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gdsynth.data.subjects import TrainingExam
from gdsynth.training.config import TrainConfig

#: The CLI's logger (its messages read ``WARNING gdsynth: ...``).
log = logging.getLogger("gdsynth")


def load_run_config(recipe: Path | None, run_dir: Path, *, resume: bool,
                    settings: Sequence[str] = (), overrides: dict[str, Any] | None = None,
                    init_from: str | Path | None = None) -> TrainConfig:
    """The configuration of the run in ``run_dir``: the ``recipe`` YAML (when resuming without
    one: the run's own config.yaml), then ``settings`` (``KEY=VALUE``), then ``overrides``
    (dotted keys; None values are left alone), then ``init_from`` (``init.model``: fine-tune from
    ``phantom`` or a model folder, checked against the recipe here, before any exam is prepared;
    ignored with a warning when resuming: last.ckpt wins). Raises :class:`TrainingError` when
    ``resume`` finds no last.ckpt, :class:`ConfigError` for a bad field or tracker,
    :class:`ModelError` for a source model that does not fit the recipe."""
    from gdsynth.errors import TrainingError
    from gdsynth.training.config import apply_overrides, apply_settings, load_config
    from gdsynth.training.loggers import validate_tracker
    from gdsynth.training.run import last_checkpoint

    if resume and not last_checkpoint(run_dir).is_file():
        raise TrainingError(last_checkpoint(run_dir), "nothing to resume: no last.ckpt in this run folder")
    saved = run_dir / "config.yaml"
    if recipe is None and resume and saved.is_file():
        recipe = saved  # resume with the exact configuration of the run
    cfg = apply_settings(load_config(recipe), list(settings))
    apply_overrides(cfg, **(overrides or {}))
    validate_tracker(cfg.trainer.tracker)  # before any exam is prepared or folder written
    return _with_init(cfg, init_from, resume)


def _with_init(cfg: TrainConfig, init_from: str | Path | None, resume: bool) -> TrainConfig:
    """``cfg`` starting from ``init_from`` (a folder as an absolute path), checked against the
    recipe; when resuming, ``init_from`` is not used (the run continues from last.ckpt)."""
    from gdsynth.models.folder import SHIPPED
    from gdsynth.training.finetune import check_init_compatible, load_init_source

    if resume:
        if init_from is not None:
            log.warning("--resume continues the run from last.ckpt; --init-from %s is not used "
                        "(the run's config keeps init.model=%s)", init_from, cfg.init.model)
        return cfg
    if init_from is not None:
        model = str(init_from) if str(init_from) in SHIPPED else str(Path(init_from).resolve())
        if model != cfg.init.model:
            cfg.init.model, cfg.init.sha256 = model, None  # the recipe's pin was for another model
    if cfg.init.model:
        source = load_init_source(cfg.init.model, cfg.init.sha256)
        check_init_compatible(source, cfg)
        cfg.init.sha256 = source.sha256
    return cfg


@dataclass
class DatasetPart:
    """One dataset of a run: ``path`` (BIDS folder or table), ``name`` (``""`` when the run has
    one dataset, else the folder's name, made unique), its exams with a post-Gd T1w
    (``with_target``), its mask-only exams (``mask_only``: trained when the recipe has the
    ``lesions`` head) and how many exams it left out (``unused``: no post-Gd T1w, and no
    ``lesions`` head to train them)."""

    path: Path
    name: str
    with_target: list  # list[gdsynth.io.bids.Exam]
    mask_only: list
    unused: int = 0

    def summary(self) -> dict[str, Any]:
        return {"path": str(self.path), "name": self.name,
                "n_with_target": len(self.with_target), "n_mask_only": len(self.mask_only),
                "n_unused": self.unused}


@dataclass
class TrainingSet:
    """The exams a run trains on: ``bids`` (the first dataset), ``usable`` (the exams with a
    post-Gd T1w, every dataset), ``training`` (the ones prepared, mask-only exams included),
    ``outcomes`` (one preparation outcome per exam), ``datasets`` (one :class:`DatasetPart` per
    dataset given)."""

    bids: Path
    usable: list  # list[gdsynth.io.bids.Exam]
    training: list[TrainingExam]
    outcomes: list  # list[gdsynth.training.cohort.PrepOutcome]
    datasets: list[DatasetPart] = field(default_factory=list)

    def source_of(self, exam_id: str) -> tuple[DatasetPart, object] | None:
        """The dataset and the ``gdsynth.io.bids.Exam`` of a training exam id."""
        for part in self.datasets:
            tag = f"{part.name}:" if part.name else ""
            for exam in (*part.with_target, *part.mask_only):
                if tag + exam.prefix == exam_id:
                    return part, exam
        return None

    def summary(self) -> dict[str, Any]:
        """The data section of the run's card: sources, exams, and how many of each kind."""
        kinds = {"n_with_target": sum(e.has_target for e in self.training),
                 "n_mask_only": sum(not e.has_target for e in self.training)}
        source: str | list[str] = str(self.bids) if len(self.datasets) <= 1 else \
            [str(d.path) for d in self.datasets]
        return {"source": source, "n_exams": len(self.training),
                "exams": [e.id for e in self.training], **kinds,
                "datasets": [d.summary() for d in self.datasets]}


def dataset_names(roots: Sequence[Path]) -> list[str]:
    """Names of several datasets trained together: each folder's (table's stem) name, ``-2``,
    ``-3``... appended to repeats; ``[""]`` for a single dataset (exam ids stay ``sub-X``)."""
    if len(roots) == 1:
        return [""]
    names: list[str] = []
    for root in roots:
        base = (root.stem if root.is_file() else root.name) or "dataset"
        name, n = base, 1
        while name in names:
            n += 1
            name = f"{base}-{n}"
        names.append(name)
    return names


def labels_for(root: Path, roots: Sequence[Path], labels: Sequence[Path]) -> list[Path]:
    """The ``--labels`` folders that apply to dataset ``root``: a folder inside one of the
    datasets (e.g. ``BIDS/derivatives/masks``) applies to that dataset only, any other to all."""
    def inside(folder: Path, r: Path) -> bool:
        return r.is_dir() and folder.resolve().is_relative_to(r.resolve())

    return [f for f in map(Path, labels)
            if inside(f, root) or not any(inside(f, r) for r in roots)]


def _discover_all(roots: Sequence[Path], participant_labels: Sequence[str]) -> list[list]:
    """The exams of each dataset; ``participant_labels`` keeps those subjects in every dataset
    that has them (a label no dataset has is refused)."""
    from gdsynth.errors import BidsError
    from gdsynth.io.bids import discover

    if len(roots) == 1:
        return [discover(roots[0], list(participant_labels) or None)]
    found = [discover(r) for r in roots]
    if not participant_labels:
        return found
    wanted = {p.removeprefix("sub-") for p in participant_labels}
    unknown = wanted - {e.subject for exams in found for e in exams}
    if unknown:
        raise BidsError(roots[0], f"participant(s) not found in any dataset: "
                        f"{', '.join(sorted(unknown))}")
    return [[e for e in exams if e.subject in wanted] for exams in found]


def _split_kinds(roots: Sequence[Path], found: Sequence[list], lesions_head: bool
                 ) -> list[DatasetPart]:
    """Each dataset's exams by kind; exams without post-Gd T1w are mask-only exams when the
    recipe trains the ``lesions`` head, else left out with a warning."""
    parts = []
    for root, name, exams in zip(roots, dataset_names(roots), found, strict=True):
        with_target = [e for e in exams if e.t1w_gd is not None]
        without = [e for e in exams if e.t1w_gd is None]
        parts.append(DatasetPart(root, name, with_target, without if lesions_head else [],
                                 0 if lesions_head else len(without)))
    unused = sum(p.unused for p in parts)
    if unused:
        log.warning("%d exam(s) without post-Gd T1w are not used for training (mask-only exams "
                    "train only the 'lesions' head, which this recipe lacks)", unused)
    return parts


def collect_training_set(bids: Path | Sequence[Path], run_dir: Path, cfg: TrainConfig, *,
                         participant_labels: Sequence[str] = (), labels: Sequence[Path] = (),
                         prep_dir: Path | None = None, progress: bool = False) -> TrainingSet:
    """Discover the exams of ``bids`` (one dataset, or several trained together;
    ``participant_labels``: only these subjects), and prepare them (cached in ``prep_dir``,
    default ``BIDS/derivatives/gdsynth-prep``; with several datasets ``prep_dir/<name>``) with
    their label folders (``labels``, :func:`labels_for`). Exams with a post-Gd T1w train
    everything; exams without one are *mask-only* exams when the recipe trains the ``lesions``
    head (each needs an all-lesion mask: :class:`LabelsError` naming the exam otherwise), else
    not used. With several datasets, exam ids are ``<dataset>:<prefix>``
    (:func:`dataset_names`). Raises :class:`ConfigError` when no exam has a post-Gd T1w."""
    from gdsynth.errors import ConfigError
    from gdsynth.io.atomic import sweep_stale_temps
    from gdsynth.training import cohort
    from gdsynth.training.finetune import check_init_spacing

    roots = [Path(bids)] if isinstance(bids, str | Path) else [Path(b) for b in bids]
    if not roots:
        raise ConfigError(None, "no dataset given")
    lesions_head = "lesions" in cfg.generator.heads
    parts = _split_kinds(roots, _discover_all(roots, participant_labels), lesions_head)
    usable = [e for p in parts for e in p.with_target]
    if not usable:
        raise ConfigError(roots[0], "no exam with a post-gadolinium T1w (the training target)")
    check_init_spacing(cfg, usable[0].path("T1w"))  # fine-tuning: before anything is prepared
    for part in parts:  # every mask-only exam has its mask: before anything is prepared
        cohort.require_all_lesions(part.path, part.mask_only, labels_for(part.path, roots, labels))
    training: list[TrainingExam] = []
    outcomes: list = []
    for part in parts:
        prep = (prep_dir / part.name if part.name else prep_dir) if prep_dir is not None else None
        for folder in (run_dir, prep or (part.path / "derivatives" / "gdsynth-prep"
                                         if part.path.is_dir() else None)):
            if folder is not None:  # temporary files killed processes left there
                sweep_stale_temps(Path(folder))
        exams = sorted([*part.with_target, *part.mask_only], key=lambda e: (e.subject, e.session or ""))
        done, out = cohort.prepare_cohort(part.path, exams, prep_root=prep, prep_config=cfg.prep,
                                          inputs=cfg.data.inputs,
                                          labels=tuple(labels_for(part.path, roots, labels)),
                                          progress=progress, mask_only=lesions_head,
                                          dataset=part.name)
        training += done
        outcomes += out
    return TrainingSet(bids=roots[0], usable=usable, training=training, outcomes=outcomes,
                       datasets=parts)


def train_from_set(data: TrainingSet, run_dir: Path, cfg: TrainConfig, *, resume: bool = False,
                   prep_dir: Path | None = None, fit_detector: bool = True,
                   progress: bool = False):  # -> gdsynth.training.run.TrainResult
    """Train on ``data.training`` into ``run_dir`` (third-party messages only at DEBUG level);
    then, unless ``fit_detector`` is false, fit the model's lesion stage on the held-out exams
    (its figures in ``TrainResult.after_export``)."""
    from gdsynth.training.run import RunOptions, train_run

    def fit(model_dir: Path, held_out: list[str]) -> str:
        from gdsynth.inference.fit_stage import FitOptions, fit_after_training

        part, held = _held_out(data, held_out)
        prep = (prep_dir / part.name if part.name else prep_dir) if prep_dir is not None else None
        return fit_after_training(model_dir, held, FitOptions(prep_dir=prep),
                                  bids_root=part.path if part.path.is_dir() else None)

    summary = data.summary()
    options = RunOptions(resume=resume, progress=progress, data_summary=summary,
                         verbose=logging.getLogger().isEnabledFor(logging.DEBUG),  # --verbose
                         after_export=fit if fit_detector else None)
    return train_run(data.training, run_dir, cfg, options)


def _held_out(data: TrainingSet, held_out: Sequence[str]) -> tuple[DatasetPart, list]:
    """The held-out exams the lesion stage is fitted on, and their dataset: truth and
    preparation are looked up per dataset, so with held-out exams in several datasets it is
    fitted on those of the dataset holding most of them (a warning names the others)."""
    by_part: dict[int, list] = {}
    for exam_id in held_out:
        found = data.source_of(exam_id)
        if found is not None:
            by_part.setdefault(data.datasets.index(found[0]), []).append(found[1])
    if not by_part:
        return (data.datasets[0] if data.datasets else DatasetPart(data.bids, "", [], [])), []
    best = max(by_part, key=lambda i: (len(by_part[i]), -i))
    others = [f"{data.datasets[i].name}:{e.prefix}" for i in by_part if i != best for e in by_part[i]]
    if others:
        log.warning("the lesion stage is fitted on the held-out exams of dataset %s; not on %s",
                    data.datasets[best].name, ", ".join(others))
    return data.datasets[best], by_part[best]
