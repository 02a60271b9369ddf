#!/usr/bin/env python
"""Regenerate gdsynth's results table on the digital phantom (models vs baselines).

Usage::

    python experiments/phantom_results.py --work DIR --model NAME=FOLDER [--model NAME=FOLDER ...]
        [--calibrate NAME ...] [--calibrate-in-place NAME] [--detector NAME=DETECTOR]
        [--test-subjects 12] [--cal-subjects 6] [--resolution R] [--workers W] [--mc-samples N]
        [--tune] [--out-table docs/results.md] [--out-json docs/results.json]

Steps (every one resumable; a rerun with the same arguments redoes nothing):

1. phantom cohorts: CALIBRATION (sites A+B, seed 500) and TEST (unseen site C, seed 1000); the
   shipped model was trained on seed 0, sites A+B, so both hold unseen subjects. The resolution
   defaults to the first model card's ``spacing_mm``;
2. ``gdsynth.preprocess.prepare_cohort_to_folder`` of both (``derivatives/gdsynth-prep``: the reference of the
   synthesis metrics);
3. per model: a snapshot of the input folder (``DIR/snapshots/NAME``) synthesizes the calibration
   cohort; the detection calibration and refer operating point are fitted with
   :mod:`gdsynth.inference.calibrate` (as ``experiments/calibrate_detection.py``) into a copy,
   ``DIR/models/NAME`` (the input folder is untouched unless ``--calibrate-in-place NAME``); the
   copy predicts the test cohort. Both read the exams from the preparation cache of step 2
   (:class:`gdsynth.inference.prep.PrepCache`, as ``gdsynth predict --prep-cache``).
   ``--calibrate NAME`` (repeatable) calibrates only those models, the others keep their card;
   ``--detector NAME=segmentation`` picks a model's detector (e.g. a segmentation network given as
   ``--model seg=FOLDER`` whose card has an ``enhancing`` head);
4. baselines on the test cohort, as prediction folders: ``post = pre`` (the input T1w) and the
   FLAIR-hyperintensity heuristic (prepared normalized FLAIR and brain mask, labels put back on the
   input T1w grid with ``gdsynth.preprocess.move_to_grid``);
5. ``gdsynth.evaluation.evaluate_folder`` of every prediction folder against the phantom truth
   (``DIR/evaluation/METHOD``); a Markdown table (``--out-table``) and a JSON file with every
   summary and timing (``--out-json``);
6. where the time went: wall and CPU seconds of each stage (the run that computed it).

Layout of ``DIR``: ``phantom-{cal,test}-s<seed>-r<res>/`` (BIDS, with ``derivatives/phantom``,
``derivatives/gdsynth-prep`` and one ``derivatives/pred-<method>`` per method), ``snapshots/``,
``models/``, ``evaluation/``, ``state/`` (resume stamps and ``timings.json``).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import logging
import resource
import shutil
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

log = logging.getLogger("phantom_results")

CAL_SEED, TEST_SEED = 500, 1000
CAL_SITES, TEST_SITES = ("siteA", "siteB"), ("siteC",)
BASELINES = {"post=pre": "baseline-post-equals-pre", "FLAIR heuristic": "baseline-flair"}
#: Table columns: header -> (path in summary.json, digits).
COLUMNS = {
    "exams": ("n_evaluated", 0),
    "SSIM": ("synthesis.ssim.mean", 3),
    "PSNR (dB)": ("synthesis.psnr.mean", 2),
    "MAE": ("synthesis.mae.mean", 3),
    "MAE enh.": ("synthesis.mae_enhancing.mean", 3),
    "MAE lesions": ("synthesis.mae_lesions.mean", 3),
    "lesion sens.": ("lesions.sensitivity", 3),
    "PPV": ("lesions.ppv", 3),
    "F1": ("lesions.f1", 3),
    "FP/scan": ("lesions.fp_per_scan", 2),
    "sens. small": ("lesions.by_size.small.sensitivity", 3),
    "AUC": ("patient.auc", 3),
    "sens.": ("patient.operating_point.sensitivity.value", 3),
    "spec.": ("patient.operating_point.specificity.value", 3),
    "NPV": ("patient.operating_point.npv.value", 3),
    "ECE": ("patient.calibration.ece", 3),
}


# --------------------------------------------------------------------------- small utilities

def sha256(path: Path) -> str | None:
    """:func:`gdsynth.io.file_sha256` of a file, None when absent."""
    from gdsynth.io import file_sha256

    return file_sha256(path) if Path(path).is_file() else None


def tree_digest(root: Path, pattern: str = "sub-*/**/*") -> str:
    """One digest of every file under ``root`` matching ``pattern`` (relative path + content)."""
    h = hashlib.sha256()
    for p in sorted(Path(root).glob(pattern)):
        if p.is_file():
            h.update(str(p.relative_to(root)).encode())
            h.update((sha256(p) or "").encode())
    return h.hexdigest()


def read_json(path: Path) -> Any:
    """A JSON file's content, None when absent or unreadable."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def same(a: Any, b: Any) -> bool:
    """Equality after a JSON round trip (tuples vs lists, int vs float keys)."""
    return json.loads(json.dumps(a, default=str)) == json.loads(json.dumps(b, default=str))


def cpu_seconds() -> float:
    """CPU seconds of this process (all threads) and its waited-for children."""
    own = resource.getrusage(resource.RUSAGE_SELF)
    kids = resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + kids.ru_utime + kids.ru_stime


@dataclass
class Timings:
    """Wall/CPU seconds per stage; a stage that did no work this run keeps the stored record of
    the run that computed it (``cached`` marks it in this run)."""

    path: Path
    stages: dict[str, dict[str, Any]] = field(default_factory=dict)
    touched: list[str] = field(default_factory=list)

    @classmethod
    def load(cls, path: Path) -> Timings:
        return cls(Path(path), dict(read_json(path) or {}))

    @contextmanager
    def stage(self, name: str) -> Iterator[dict[str, Any]]:
        """Time the block; the block sets ``info["work"] = False`` when everything was cached."""
        info: dict[str, Any] = {"work": True}
        w0, c0 = time.perf_counter(), cpu_seconds()
        log.info("-- %s", name)
        try:
            yield info
        finally:
            record = {"wall_s": round(time.perf_counter() - w0, 2),
                      "cpu_s": round(cpu_seconds() - c0, 2), "cached": not info["work"]}
            old = self.stages.get(name)
            self.touched.append(name)
            if info["work"] or old is None:
                self.stages[name] = record
            else:
                self.stages[name] = {**old, "cached": True, "rerun_wall_s": record["wall_s"]}
            from gdsynth.io import write_json

            write_json(self.path, self.stages)

    def current(self) -> dict[str, dict[str, Any]]:
        """The stages of this run (records of the run that computed each)."""
        return {k: self.stages[k] for k in self.touched}

    def did_work(self) -> list[str]:
        """Stages that computed something in this run."""
        return [k for k in self.touched if not self.stages[k].get("cached")]


# --------------------------------------------------------------------------- arguments

def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--work", type=Path, required=True, help="work folder (everything is cached here)")
    p.add_argument("--model", action="append", required=True, metavar="NAME=FOLDER",
                   help="a model folder (or 'phantom'); repeatable")
    p.add_argument("--calibrate", action="append", default=None, metavar="NAME",
                   help="calibrate only these models (default: every model)")
    p.add_argument("--calibrate-in-place", action="append", default=[], metavar="NAME",
                   help="also write the fitted detection section into NAME's input folder")
    p.add_argument("--detector", action="append", default=[], metavar="NAME=DETECTOR",
                   help="difference | segmentation | combined for one model")
    p.add_argument("--test-subjects", type=int, default=12)
    p.add_argument("--cal-subjects", type=int, default=6)
    p.add_argument("--resolution", type=float, default=None,
                   help="phantom resolution in mm (default: the first model card's spacing_mm)")
    p.add_argument("--workers", type=int, default=1, help="processes for phantom and preparation")
    p.add_argument("--mc-samples", type=int, default=5)
    p.add_argument("--target-sensitivity", type=float, default=None)
    p.add_argument("--tune", action="store_true", help="tune hysteresis thresholds in calibration")
    p.add_argument("--out-table", type=Path, default=Path("docs/results.md"))
    p.add_argument("--out-json", type=Path, default=Path("docs/results.json"))
    return p.parse_args(argv)


def parse_pairs(items: Sequence[str], what: str) -> dict[str, str]:
    """``NAME=VALUE`` items → dict, with clear errors (names: letters, digits, ``-``, ``_``)."""
    from gdsynth.errors import ConfigError

    out: dict[str, str] = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise ConfigError(None, f"{what} {item!r} must look like NAME=VALUE")
        if not name.replace("-", "").replace("_", "").isalnum():
            raise ConfigError(None, f"{what} name {name!r}: use letters, digits, '-' or '_'")
        if name in out:
            raise ConfigError(None, f"{what} {name!r} given twice")
        out[name] = value
    return out


# --------------------------------------------------------------------------- cohorts

def make_cohort(root: Path, subjects: int, seed: int, resolution: float, sites: Sequence[str],
                workers: int, timings: Timings, tag: str) -> list:
    """Generate (or reuse) a phantom cohort; return its exams (only the first ``subjects``)."""
    from gdsynth.phantom import generate_dataset

    with timings.stage(f"phantom {tag}") as info:
        status: list[str] = []
        exams = generate_dataset(root, subjects=subjects, seed=seed, resolution=resolution,
                                 sites=list(sites), workers=workers,
                                 on_result=lambda r: status.append(r.status))
        info["work"] = any(s != "skipped" for s in status)
    return exams


def prepare(exams: list, bids: Path, spacing: float | None, workers: int, timings: Timings,
            tag: str) -> None:
    """``prepare_cohort_to_folder`` into ``bids/derivatives/gdsynth-prep`` (cached by provenance)."""
    from gdsynth.errors import GdsynthError
    from gdsynth.preprocess import PrepConfig, prepare_cohort_to_folder

    with timings.stage(f"prepare {tag}") as info:
        results = prepare_cohort_to_folder(exams, bids / "derivatives" / "gdsynth-prep",
                                           PrepConfig(spacing=spacing), workers=workers)
        info["work"] = any(r.status != "skipped" for r in results)
    failed = [r for r in results if r.status == "failed"]
    if failed:
        raise GdsynthError(bids, "preparation failed: " + "; ".join(f"{r.case}: {r.error}"
                                                                     for r in failed))


# --------------------------------------------------------------------------- models

@dataclass
class ModelSpec:
    """One ``--model``: its name, input folder, detector override and calibration choices."""

    name: str
    source: Path
    detector: str | None = None
    calibrate: bool = True
    in_place: bool = False


def copy_model(src: Path, dst: Path) -> None:
    """Copy the weights, the learned lesion stage (when there is one) and the card of model folder
    ``src`` into ``dst`` (files only if changed; a stage ``src`` lacks is removed from ``dst``)."""
    from gdsynth.detection.stage import STAGE_FILE
    from gdsynth.io import atomic_write_text
    from gdsynth.models.card import CARD_NAME, WEIGHTS_NAME

    dst.mkdir(parents=True, exist_ok=True)
    for name in (WEIGHTS_NAME, STAGE_FILE):
        if not (src / name).is_file():
            (dst / name).unlink(missing_ok=True)
        elif sha256(src / name) != sha256(dst / name):  # None when dst lacks it
            tmp = dst / (name + ".tmp")
            shutil.copyfile(src / name, tmp)
            tmp.replace(dst / name)
    atomic_write_text(dst / CARD_NAME, (src / CARD_NAME).read_text(encoding="utf-8"))


def snapshot(spec: ModelSpec, work: Path) -> Path:
    """``DIR/snapshots/NAME``: the input folder as first given. Re-taken when the input changes,
    except when the only change is the calibrated card this script wrote into it (in place)."""
    from gdsynth.detection.stage import STAGE_FILE
    from gdsynth.models.card import CARD_NAME, WEIGHTS_NAME

    snap = work / "snapshots" / spec.name
    state = read_json(work / "state" / f"model-{spec.name}.json") or {}
    w_in, c_in = sha256(spec.source / WEIGHTS_NAME), sha256(spec.source / CARD_NAME)
    keep = (sha256(snap / WEIGHTS_NAME) == w_in
            and sha256(snap / STAGE_FILE) == sha256(spec.source / STAGE_FILE)
            and c_in in (sha256(snap / CARD_NAME), state.get("calibrated_card_sha256")))
    if not keep:
        copy_model(spec.source, snap)
    return snap


def prep_cache(bids: Path):
    """The cohort's preparation cache (``bids/derivatives/gdsynth-prep``, read only), as
    ``gdsynth predict --prep-cache`` uses it: an exam prepared there for the model's preparation
    (``prepare_cohort_to_folder`` wrote it, same spacing and sequences) is read back, not
    prepared again (identical arrays); another model's exams are prepared afresh."""
    from gdsynth.inference.prep import PrepCache

    return PrepCache(bids / "derivatives" / "gdsynth-prep")


def run_config(out: Path, model: Path, step: str, mc_samples: int, workers: int,
               detector: str | None = None, bids: Path | None = None):
    """A ``RunConfig`` as ``gdsynth predict`` builds it (CPU or GPU: 'auto'), reading the
    preparation cache of ``bids`` when given."""
    from gdsynth.inference.cohort import RunConfig, Step
    from gdsynth.inference.pipeline import SynthesisSettings

    return RunConfig(out=out, model=model, step=Step(step),
                     settings=SynthesisSettings(mc_samples=mc_samples, seed=0), device="auto",
                     overwrite=False, shard=None, workers=1 if workers > 1 else 0,
                     detector=detector, prep_cache=prep_cache(bids) if bids is not None else None)


def run(exams: list, config, bids: Path, timings: Timings, stage: str) -> list[str]:
    """``run_cohort`` under a timed stage; returns the failure lines."""
    from gdsynth.inference.cohort import run_cohort

    with timings.stage(stage) as info:
        results = run_cohort(exams, config, bids_root=bids)
        info["work"] = any(r.status != "skipped" for r in results)
    return [f"{stage}: {r.case}: {r.error}" for r in results if r.status == "failed"]


def calibrate(spec: ModelSpec, snap: Path, cal_bids: Path, cal_pred: Path, cal_exams: list,
              args: argparse.Namespace, work: Path, timings: Timings) -> dict[str, Any]:
    """Fit calibration on the calibration cohort into ``DIR/models/NAME`` (skipped when the
    stamp matches); returns the fitted ``calibration_info``."""
    from gdsynth.detection.stage import STAGE_FILE
    from gdsynth.errors import ConfigError
    from gdsynth.inference.calibrate import (
        calibrate_cases,
        load_cases,
        starting_params,
        update_card,
    )
    from gdsynth.io import atomic_write_text, write_json
    from gdsynth.models.card import CARD_NAME, WEIGHTS_NAME, ModelCard

    target = work / "models" / spec.name
    state_path = work / "state" / f"model-{spec.name}.json"
    state = read_json(state_path) or {}
    ids = sorted(e.id for e in cal_exams)
    stamp = {"snapshot": [sha256(snap / WEIGHTS_NAME), sha256(snap / CARD_NAME),
                          sha256(snap / STAGE_FILE)],
             "exams": ids, "synthesis": tree_digest(cal_pred, "sub-*/**/*synthesis_provenance.json"),
             "detector": spec.detector, "target_sensitivity": args.target_sensitivity,
             "tune": bool(args.tune)}
    with timings.stage(f"calibrate {spec.name}") as info:
        if same(state.get("stamp"), stamp) and \
                sha256(target / CARD_NAME) == state.get("calibrated_card_sha256"):
            info["work"] = False
        else:
            card = ModelCard.load(snap / CARD_NAME)
            params = starting_params(card, spec.detector, args.target_sensitivity)
            cases = load_cases(cal_bids, cal_pred, cal_bids / "derivatives" / "phantom", card,
                               [e.subject for e in cal_exams], prepare=prep_cache(cal_bids).prepare)
            if not cases:
                raise ConfigError(cal_pred, "no calibration exam with both predictions and truth")
            fitted = calibrate_cases(cases, params, tune=args.tune)
            copy_model(snap, target)
            update_card(target, fitted)
            state = {"stamp": stamp, "calibrated_card_sha256": sha256(target / CARD_NAME)}
            write_json(state_path, state)
    if spec.in_place and sha256(spec.source / CARD_NAME) != state["calibrated_card_sha256"]:
        atomic_write_text(spec.source / CARD_NAME, (target / CARD_NAME).read_text(encoding="utf-8"))
        log.info("calibrated card written into %s (in place)", spec.source)
    card = ModelCard.load(target / CARD_NAME)
    return dict((card.detection or {}).get("calibration_info", {}))


def model_predictions(spec: ModelSpec, cohorts: dict, args: argparse.Namespace, work: Path,
                      timings: Timings, failures: list[str]) -> tuple[Path, dict[str, Any]]:
    """Snapshot, calibration-cohort synthesis, calibration and test prediction of one model;
    returns the test prediction folder and the calibration info."""
    from gdsynth.models.card import CARD_NAME

    snap = snapshot(spec, work)
    cal_bids, cal_exams = cohorts["cal"]
    test_bids, test_exams = cohorts["test"]
    info: dict[str, Any] = {}
    if spec.calibrate:
        cal_pred = cal_bids / "derivatives" / f"pred-{spec.name}"
        bad = run(cal_exams, run_config(cal_pred, snap, "synthesize", args.mc_samples, args.workers,
                                        bids=cal_bids),
                  cal_bids, timings, f"synthesize calibration {spec.name}")
        failures += bad
        if bad:
            raise RuntimeError(f"calibration synthesis failed for {spec.name}: {bad}")
        info = calibrate(spec, snap, cal_bids, cal_pred, cal_exams, args, work, timings)
    else:
        target = work / "models" / spec.name
        if sha256(target / CARD_NAME) != sha256(snap / CARD_NAME):
            copy_model(snap, target)
    test_pred = test_bids / "derivatives" / f"pred-{spec.name}"
    failures += run(test_exams, run_config(test_pred, work / "models" / spec.name, "predict",
                                           args.mc_samples, args.workers, spec.detector,
                                           bids=test_bids),
                    test_bids, timings, f"predict test {spec.name}")
    return test_pred, info


# --------------------------------------------------------------------------- baselines

def baseline_output(kind: str, exam, prep_root: Path):
    """One baseline's output on the exam's input T1w grid, and that grid."""
    import numpy as np

    from gdsynth.evaluation import baselines as B
    from gdsynth.io import read_image
    from gdsynth.preprocess import load_prepared, move_to_grid, open_prepared

    if kind == "post=pre":
        t1w, geometry = read_image(exam.t1w)
        return B.post_equals_pre(t1w), geometry
    prepared = open_prepared(exam, prep_root)
    vols = load_prepared(prepared)
    out = B.flair_heuristic(vols.images["FLAIR"], vols.mask, prepared.geometry.spacing)
    native = move_to_grid(out.labels, prepared.geometry, prepared.native_geometry,
                          interpolation="nearest")
    kept = [k for k in np.unique(native) if k > 0]  # a lesion may vanish when resampled
    relabel = np.zeros(int(out.labels.max()) + 1, np.int32)
    relabel[kept] = np.arange(1, len(kept) + 1, dtype=np.int32)
    scores = {i: out.scores[int(k)] for i, k in enumerate(kept, start=1)}
    prob = max(scores.values()) if scores else 0.0
    return B.BaselineOutput(relabel[native], scores, prob, bool(scores)), prepared.native_geometry


def write_baseline(kind: str, exams: list, bids: Path, work: Path, timings: Timings,
                   failures: list[str]) -> Path:
    """Write one baseline as a prediction folder; exams whose prepared inputs did not change
    since they were written are skipped."""
    from gdsynth.evaluation.baselines import write_prediction
    from gdsynth.io import write_json
    from gdsynth.io.bids import derivative_path, write_dataset_description
    from gdsynth.preprocess import output_path

    out = bids / "derivatives" / BASELINES[kind]
    prep_root = bids / "derivatives" / "gdsynth-prep"
    state_path = work / "state" / f"{BASELINES[kind]}.json"
    state = read_json(state_path) or {}
    write_dataset_description(out, f"gdsynth baseline {kind}")
    with timings.stage(f"baseline {kind}") as info:
        info["work"] = False
        for exam in exams:
            key = {"t1w": sha256(exam.t1w), "prep": sha256(output_path(prep_root, exam, "provenance"))}
            summary = derivative_path(out, exam, "summary", ".json", desc="activity")
            if same(state.get(exam.id), key) and summary.is_file():
                continue
            info["work"] = True
            try:
                output, geometry = baseline_output(kind, exam, prep_root)
                write_prediction(out, exam, geometry, output)
                state[exam.id] = key
                write_json(state_path, state)
            except Exception as exc:  # noqa: BLE001 - one exam's failure is reported, not fatal
                failures.append(f"baseline {kind}: {exam.id}: {type(exc).__name__}: {exc}")
    return out


# --------------------------------------------------------------------------- evaluation, table

def evaluate(name: str, pred: Path, bids: Path, exams: list, work: Path,
             timings: Timings) -> dict[str, Any]:
    """``evaluate_folder`` of one prediction folder (skipped when its files did not change)."""
    from gdsynth.evaluation import ReferenceSpec, evaluate_folder
    from gdsynth.io import write_json

    report = work / "evaluation" / slug(name)
    state_path = work / "state" / f"evaluation-{slug(name)}.json"
    stamp = {"pred": tree_digest(pred), "prep": tree_digest(bids / "derivatives" / "gdsynth-prep",
                                                            "sub-*/**/*provenance.json"),
             "exams": sorted(e.subject for e in exams)}
    with timings.stage(f"evaluate {name}") as info:
        summary = read_json(report / "summary.json")
        if summary is not None and same(read_json(state_path), stamp):
            info["work"] = False
            return summary
        result = evaluate_folder(pred, ReferenceSpec(root=bids), report,
                                 participant_labels=[e.subject for e in exams], progress=False)
        write_json(state_path, stamp)
    return read_json(report / "summary.json") or result.summary


def slug(name: str) -> str:
    """A file-name-safe form of a method name."""
    return "".join(c if c.isalnum() or c in "-_" else "-" for c in name).strip("-").lower()


def fmt(value: Any, digits: int) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a"
    if isinstance(value, (int, float)):
        if value != value or value in (float("inf"), float("-inf")):
            return "n/a"
        return f"{value:.{digits}f}" if digits else str(int(value))
    return str(value)


def metrics_table(summaries: dict[str, dict[str, Any]]) -> str:
    """Markdown table: one row per method, the :data:`COLUMNS`."""
    from gdsynth.evaluation.report import summary_value

    lines = ["| method | " + " | ".join(COLUMNS) + " |", "|---|" + "---:|" * len(COLUMNS)]
    for name, summary in summaries.items():
        cells = [fmt(summary_value(summary, path), digits) for path, digits in COLUMNS.values()]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def timing_table(stages: dict[str, dict[str, Any]]) -> str:
    """Markdown table of stage wall/CPU seconds, slowest first, with the share of wall time."""
    total = sum(v["wall_s"] for v in stages.values()) or 1.0
    lines = ["| stage | wall (s) | CPU (s) | share |", "|---|---:|---:|---:|"]
    for name, v in sorted(stages.items(), key=lambda kv: -kv[1]["wall_s"]):
        lines.append(f"| {name} | {v['wall_s']:.1f} | {v['cpu_s']:.1f} | "
                     f"{100 * v['wall_s'] / total:.0f} % |")
    lines.append(f"| **total** | {total:.1f} | {sum(v['cpu_s'] for v in stages.values()):.1f} | |")
    return "\n".join(lines) + "\n"


def render(summaries: dict[str, dict[str, Any]], timings: Timings, context: dict[str, Any]) -> str:
    """The whole Markdown page: setting, metrics table, timing table."""
    return "\n".join([
        "# gdsynth on the digital phantom",
        "",
        f"Generated by `experiments/phantom_results.py` (gdsynth {context['gdsynth_version']}). "
        f"Test cohort: {context['test_subjects']} unseen subjects of the unseen site C "
        f"(seed {TEST_SEED}); calibration: {context['cal_subjects']} subjects of sites A+B "
        f"(seed {CAL_SEED}); {context['resolution']:g} mm; {context['mc_samples']} MC-dropout "
        "sample(s). Synthesis metrics in the brain (normalized units, NAWM = 1, data range 2); "
        "MAE enh./lesions: in enhancing / all reference lesions; lesion metrics pooled "
        "(MSSEG rule); small: < 70 mm³; patient sensitivity/specificity/NPV at the operating "
        "point stored in each card; baselines' scores are ranks, not calibrated probabilities.",
        "",
        metrics_table(summaries),
        "## Where the time went",
        "",
        timing_table(timings.current()),
    ])


# --------------------------------------------------------------------------- main

def main(argv: Sequence[str] | None = None) -> int:
    from gdsynth import __version__
    from gdsynth.errors import ConfigError, GdsynthError
    from gdsynth.evaluation.report import jsonable
    from gdsynth.io import atomic_write_text, write_json
    from gdsynth.models.card import CARD_NAME, ModelCard
    from gdsynth.models.folder import resolve_model_dir

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    args = parse_args(argv)
    try:
        models = parse_pairs(args.model, "--model")
        detectors = parse_pairs(args.detector, "--detector")
        for name in [*detectors, *(args.calibrate or []), *args.calibrate_in_place]:
            if name not in models:
                raise ConfigError(None, f"{name!r} is not a --model name ({', '.join(models)})")
        specs = [ModelSpec(n, resolve_model_dir(f), detectors.get(n),
                           args.calibrate is None or n in args.calibrate or
                           n in args.calibrate_in_place, n in args.calibrate_in_place)
                 for n, f in models.items()]
        first = ModelCard.load(specs[0].source / CARD_NAME)
        resolution = float(args.resolution or first.spacing_mm or 1.0)
        work = args.work.resolve()
        timings = Timings.load(work / "state" / "timings.json")
        for key in list(timings.stages):  # mark every stored stage cached until redone
            timings.stages[key] = {**timings.stages[key], "cached": True}
        failures: list[str] = []
        t0 = time.perf_counter()
        cohorts = {}
        for tag, n, seed, sites in (("cal", args.cal_subjects, CAL_SEED, CAL_SITES),
                                    ("test", args.test_subjects, TEST_SEED, TEST_SITES)):
            bids = work / f"phantom-{tag}-s{seed}-r{resolution:g}"
            exams = make_cohort(bids, n, seed, resolution, sites, args.workers, timings, tag)
            prepare(exams, bids, first.spacing_mm, args.workers, timings, tag)
            cohorts[tag] = (bids, exams)
        test_bids, test_exams = cohorts["test"]
        preds: dict[str, Path] = {}
        calibration: dict[str, Any] = {}
        for spec in specs:
            preds[spec.name], calibration[spec.name] = model_predictions(
                spec, cohorts, args, work, timings, failures)
        for kind in BASELINES:
            preds[kind] = write_baseline(kind, test_exams, test_bids, work, timings, failures)
        summaries = {name: evaluate(name, pred, test_bids, test_exams, work, timings)
                     for name, pred in preds.items()}
        context = {"gdsynth_version": __version__, "test_subjects": len(test_exams),
                   "cal_subjects": len(cohorts["cal"][1]), "resolution": resolution,
                   "mc_samples": args.mc_samples}
        page = render(summaries, timings, context)
        atomic_write_text(args.out_table, page)
        write_json(args.out_json, jsonable({
            **context, "work": str(work),
            "models": {s.name: {"input": str(s.source), "calibrated_copy": str(work / "models" / s.name),
                                "detector": s.detector, "calibrated": s.calibrate,
                                "calibration_info": calibration.get(s.name)} for s in specs},
            "cohorts": {k: {"bids": str(b), "exams": [e.id for e in ex]} for k, (b, ex) in cohorts.items()},
            "predictions": {k: str(v) for k, v in preds.items()},
            "summaries": summaries, "timings": timings.current(), "failures": failures,
            "table": metrics_table(summaries),
        }))
    except (GdsynthError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(metrics_table(summaries))
    print(f"Where the time went (this run: {time.perf_counter() - t0:.1f} s wall; "
          f"stages computed this run: {', '.join(timings.did_work()) or 'none, all cached'}):")
    print(timing_table(timings.current()))
    print(f"table -> {args.out_table}\njson  -> {args.out_json}")
    for line in failures:
        print(f"failed: {line}", file=sys.stderr)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
