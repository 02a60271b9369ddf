#!/usr/bin/env python
"""gdsynth benchmark harness (``make bench``): every step measured in one run, one table.

Each step runs in its own subprocess (so each peak resident memory is that step's own) and
reports wall and process CPU time; the table compares numbers measured in the same run:

* phantom: seconds per subject (simulation + writing, one worker; template loading excluded);
* prepare: seconds per subject (``prepare_arrays``: registration, mask, N4, normalization);
* training: samples/s of the full pipeline (Lightning + torchio queue + augmentation) versus the
  bare D+G step on in-memory batches; ratio = 1 - overhead (target overhead <= 15 %);
* synthesis: seconds per whole-brain exam with 1 and 10 MC-dropout samples (phantom recipe's
  2.5D U-Net, random weights: speed does not depend on them);
* the generator's achieved GFLOP/s during synthesis versus a plain matmul in the same process
  (fp32 on CPU; bf16 and fp32 on CUDA, where synthesis runs in bf16 autocast) (target >= 50 %);
* gdsynth versus MONAI ``sliding_window_inference`` with the same weights and (zero) overlap
  (target: ratio <= 1);
* the same synthesis through ``torch.compile`` (Inductor): seconds per exam and GFLOP/s next to
  the eager rows, with the compile time in its own row (cold Inductor cache in a fresh folder,
  and warm cache in a new process), and recompilations for another exam's slice size;
* cohort ``predict`` at 2 mm: t(8 exams) / (8 t(1 exam)) (linear = 1.0), and with ``--workers``
  prefetch threads;
* resolution: time ratio 1 mm / 2 mm versus voxel ratio (full run only);
* precision (``benchmarks/bench_precision.py``): bf16 autocast + channels-last versus fp32 for
  the training step (bare, and a short run with its validation SSIM/MAE), synthesis (1 and 10
  MC samples, eager and compiled, versus fp32 eager; GFLOP/s versus the bf16 matmul peak), and
  the agreement of bf16 and fp32 maps and detections with the shipped model.

    python benchmarks/run.py [--device auto|cpu|cuda] [--quick] [--out FILE] [--steps ...]
                              [--no-compile]

``--quick``: 2 mm only, fewer repeats (a smoke test). ``--out FILE``: ``.json`` or ``.md``; any
other suffix writes both ``FILE.json`` and ``FILE.md``.

Steps are registry entries, not if-chains: a :class:`BenchStep` (``--steps``) plans its child
measurements (:data:`PER_RESOLUTION` or :data:`ONCE`), :data:`MEASURES` runs one in the child
process, :data:`ROWS` turns its result into table rows; a new step adds one entry to each. A child's
settings travel as ``--params`` JSON and, where a library reads the environment (Inductor's cache
folder), in that child's own ``env`` (:func:`child_env`); this process's environment is not changed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    ROOT,
    SHAPE_1MM,
    SHAPE_2MM,
    Timer,
    child_argv,
    machine_info,
    matmul_gflops,
    process_usage,
    run_child,
    sync,
)

WORK = Path(tempfile.gettempdir()) / "gdsynth-bench"
#: Environment variable that points Inductor at its cache folder (read when it first compiles).
INDUCTOR_CACHE_ENV = "TORCHINDUCTOR_CACHE_DIR"


# ---------------------------------------------------------------------------------------- steps
def measure_phantom(resolution: float, subjects: int = 1, work: Path = WORK) -> dict[str, Any]:
    """Seconds per subject of ``generate_dataset`` (simulate + write, one worker)."""
    import shutil

    from gdsynth.phantom import generate_dataset
    from gdsynth.phantom.anatomy import load_landmarks, load_template

    load_template(resolution)
    load_landmarks()
    out = work / f"phantom-timed-{resolution:g}mm"
    shutil.rmtree(out, ignore_errors=True)
    with Timer() as t:
        generate_dataset(out, subjects=subjects, seed=0, resolution=resolution, workers=1)
    shutil.rmtree(out, ignore_errors=True)
    per = t.per(subjects)
    return {"wall": per.wall, "cpu": per.cpu}


def phantom_cohort(resolution: float, subjects: int, work: Path = WORK) -> Path:
    """A cached phantom BIDS cohort (generated once; not timed)."""
    from gdsynth.phantom import generate_dataset

    root = work / f"phantom-{resolution:g}mm-n{subjects}"
    if not (root / "derivatives" / "phantom").exists():
        generate_dataset(root, subjects=subjects, seed=3, resolution=resolution, workers=1)
    return root


def measure_prepare(resolution: float, subjects: int = 1, work: Path = WORK) -> dict[str, Any]:
    """Seconds per subject of ``prepare_arrays`` (in memory: only the computation is timed)."""
    from gdsynth.io.bids import discover
    from gdsynth.preprocess import PrepConfig, prepare_arrays

    exams = discover(phantom_cohort(resolution, subjects, work))[:subjects]
    with Timer() as t:
        for exam in exams:
            prepare_arrays(exam, PrepConfig())
    per = t.per(len(exams))
    return {"wall": per.wall, "cpu": per.cpu}


def measure_training(quick: bool, device: str = "cpu") -> dict[str, Any]:
    """Full pipeline versus bare step (``benchmarks/bench_training.py``)."""
    from bench_training import measure

    if quick:
        return measure(ROOT / "experiments" / "phantom.yaml", subjects=2, shape=(72, 88, 72),
                       spacing=2.0, steps=12, warmup=3, threads=None, device=device)
    return measure(ROOT / "experiments" / "phantom.yaml", subjects=4, shape=(144, 176, 144),
                   spacing=1.0, steps=30, warmup=5, threads=None, device=device)


def measure_inference(shape: tuple[int, int, int], *, mc: int = 10, batch: int | None = None,
                      repeats: int = 1, device: str = "cpu", monai: bool = True,
                      matmul_n: int = 2048, channels_last: bool = False,
                      mc_slices: int | None = None, compile: bool = False) -> dict[str, Any]:
    """Synthesis seconds per exam (1 and ``mc`` samples), achieved GFLOP/s versus matmul, and
    gdsynth versus MONAI's sliding window, all in this process.

    ``mc_slices``: time the MC run on that many central axial slices only and scale to the whole
    exam (every slice costs the same: whole padded slices), to bound the run time at 1 mm.
    ``compile``: also measure synthesis through torch.compile (``result["compiled"]``, see
    ``bench_inference.measure_compiled``), from a cold Inductor cache in a fresh folder, then
    the compile time in a new process with that cache warm (``result["compiled"]["warm"]``)."""
    import torch
    from bench_inference import brain_like, build_model, flops_per_slice, time_monai, time_ours

    from gdsynth.inference.pipeline import SynthesisSettings

    batch = batch or SynthesisSettings().batch_size
    model, card = build_model(None, device)
    volume = brain_like(shape)
    result: dict[str, Any] = {"shape": list(shape), "batch": batch, "mc": mc}
    result["matmul_fp32"] = matmul_gflops(matmul_n, device=device)
    if device.startswith("cuda"):
        result["matmul_bf16"] = matmul_gflops(matmul_n, device=device, dtype="bfloat16")
    result["gflop_per_exam"] = flops_per_slice(model, card, shape) * shape[2] / 1e9
    time_ours(model, card, volume[..., : min(4, shape[2])], mc=1, batch=batch,
              channels_last=channels_last)  # warm-up (oneDNN primitive creation)

    def best(fn) -> Timer:
        runs = [fn() for _ in range(repeats)]
        return min(runs, key=lambda t: t.cpu)

    t1 = best(lambda: time_ours(model, card, volume, mc=1, batch=batch, channels_last=channels_last))
    n_z = shape[2]
    k = min(n_z, mc_slices or n_z)
    slab = volume[..., (n_z - k) // 2:(n_z - k) // 2 + k]
    tmc = time_ours(model, card, slab, mc=mc, batch=batch, channels_last=channels_last).per(k / n_z)
    result["one"] = {"wall": t1.wall, "cpu": t1.cpu}
    result["mc_run"] = {"wall": tmc.wall, "cpu": tmc.cpu, "slices_timed": k}
    if monai:
        tm = best(lambda: time_monai(model, card, volume, batch=batch))
        result["monai"] = {"wall": tm.wall, "cpu": tm.cpu}
    result["threads"] = torch.get_num_threads()
    if compile:
        result["compiled"] = measure_inference_compiled(
            model, card, volume, shape, mc=mc, batch=batch, repeats=repeats, device=device,
            channels_last=channels_last, mc_slices=mc_slices)
    return result


def measure_inference_compiled(model, card, volume, shape, *, mc: int, batch: int, repeats: int,
                               device: str, channels_last: bool, mc_slices: int | None
                               ) -> dict[str, Any]:
    """``bench_inference.measure_compiled`` (cold compile: the ``inference`` child is started
    with a fresh, empty Inductor cache folder, see :func:`child_env`), then
    :func:`measure_compile` in a new process on that folder (warm compile)."""
    import torch
    from bench_inference import measure_compiled

    out = measure_compiled(model, card, volume, mc=mc, batch=batch, repeats=repeats,
                           channels_last=channels_last, mc_slices=mc_slices)
    if "error" not in out:
        params = {"shape": list(shape), "mc": mc, "batch": batch, "device": device,
                  "threads": torch.get_num_threads()}
        cache = os.environ.get(INDUCTOR_CACHE_ENV)
        out["warm"] = run_child(child_argv(Path(__file__), "--child", "compile",
                                           "--params", json.dumps(params)),
                                env={INDUCTOR_CACHE_ENV: cache} if cache else None)
    return out


def measure_compile(shape: tuple[int, int, int], *, mc: int, batch: int, device: str = "cpu"
                    ) -> dict[str, Any]:
    """Compile time of the 1-sample and MC graphs in this (new) process: with the Inductor cache
    that ``measure_inference_compiled`` filled, what a second ``gdsynth`` run pays."""
    from bench_inference import brain_like, build_model, compile_time

    model, card = build_model(None, device)
    volume = brain_like((shape[0], shape[1], batch))
    c1 = compile_time(model, card, volume, mc=1, batch=batch)
    cmc = compile_time(model, card, volume, mc=mc, batch=batch)
    return {"compile_one": {"wall": c1.wall, "cpu": c1.cpu},
            "compile_mc": {"wall": cmc.wall, "cpu": cmc.cpu}}


def measure_precision_inference(params: dict[str, Any]) -> dict[str, Any]:
    """bf16 versus fp32 synthesis (``benchmarks/bench_precision.py``)."""
    import bench_precision as bp

    return bp.inference_precision(tuple(params["shape"]), mc_slices=params.get("mc_slices"),
                                  one_slices=params.get("one_slices"),
                                  compile=params.get("compile", True))


def measure_precision_agreement(params: dict[str, Any]) -> dict[str, Any]:
    """bf16 versus fp32 maps and detections of the shipped model (``bench_precision.py``)."""
    import bench_precision as bp

    return bp.agreement(WORK, resolution=params["resolution"], exams=params["exams"])


def measure_precision_training(params: dict[str, Any]) -> dict[str, Any]:
    """bf16 versus fp32 training step and short run (``bench_precision.py``)."""
    import bench_precision as bp

    return bp.training_precision(WORK, batches=params["batches"], threads=params.get("threads"))


def measure_cohort(resolution: float = 2.0, n: int = 8, workers: int = 1, device: str = "cpu",
                   work: Path = WORK) -> dict[str, Any]:
    """Cohort ``predict`` (prepare + synthesize + detect + write) of 1 and ``n`` exams, and of ``n``
    exams with ``workers`` prefetch threads."""
    import shutil

    from bench_inference import build_model

    from gdsynth.inference.cohort import RunConfig, Step, run_cohort
    from gdsynth.inference.pipeline import SynthesisSettings
    from gdsynth.io.bids import discover
    from gdsynth.models.folder import save_model_folder

    root = phantom_cohort(resolution, n, work)
    exams = discover(root)[:n]
    model_dir = work / "model-phantom-arch"
    if not (model_dir / "model_card.json").exists():
        save_model_folder(model_dir, *build_model(None))
    result: dict[str, Any] = {"n": len(exams), "workers": workers}
    for label, subset, w in (("one", exams[:1], 0), ("all", exams, 0), ("all_workers", exams, workers)):
        if label == "all_workers" and workers <= 0:
            continue
        out = work / f"predict-{label}"
        shutil.rmtree(out, ignore_errors=True)
        config = RunConfig(out=out, model=model_dir, step=Step.predict, device=device,
                           settings=SynthesisSettings(), overwrite=True, workers=w)
        with Timer() as t:
            results = run_cohort(subset, config, bids_root=root)
        failed = [r.error for r in results if r.status != "done"]
        if failed:
            raise RuntimeError(f"cohort predict failed: {failed[0]}")
        result[label] = {"wall": t.wall, "cpu": t.cpu}
        shutil.rmtree(out, ignore_errors=True)
    return result


#: What a child process measures: child step name -> function(params, device) -> result.
MEASURES: dict[str, Callable[[dict[str, Any], str], dict[str, Any]]] = {
    "phantom": lambda p, device: measure_phantom(p["resolution"], p.get("subjects", 1)),
    "prepare": lambda p, device: measure_prepare(p["resolution"], p.get("subjects", 1)),
    "training": lambda p, device: measure_training(p["quick"], device),
    "inference": lambda p, device: measure_inference(
        tuple(p["shape"]), mc=p.get("mc", 10), repeats=p.get("repeats", 1), device=device,
        mc_slices=p.get("mc_slices"), channels_last=p.get("channels_last", False),
        compile=p.get("compile", False)),
    "compile": lambda p, device: measure_compile(tuple(p["shape"]), mc=p["mc"], batch=p["batch"],
                                                 device=device),
    "cohort": lambda p, device: measure_cohort(p.get("resolution", 2.0), p.get("n", 8),
                                               p.get("workers", 1), device),
    "precision-inference": lambda p, device: measure_precision_inference(p),
    "precision-agreement": lambda p, device: measure_precision_agreement(p),
    "precision-training": lambda p, device: measure_precision_training(p),
}


def run_step(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one step in this process (what each child does)."""
    if name not in MEASURES:
        raise ValueError(f"unknown step {name!r}; valid steps: {', '.join(MEASURES)}")
    device = params.get("device", "cpu")
    if params.get("threads"):
        import torch

        torch.set_num_threads(int(params["threads"]))
    out = MEASURES[name](params, device)
    sync(device)
    return {**out, **process_usage()}


@contextmanager
def child_env(step: str, params: dict[str, Any]) -> Iterator[dict[str, str] | None]:
    """Extra environment of one step's child process: a compiled ``inference`` step gets a
    fresh, empty Inductor cache folder (a cold compile; its warm-compile grandchild reuses it),
    removed when the step is done. Nothing is set in this process's own environment."""
    if step != "inference" or not params.get("compile"):
        yield None
        return
    cache = Path(tempfile.mkdtemp(prefix="gdsynth-inductor-"))
    try:
        yield {INDUCTOR_CACHE_ENV: str(cache)}
    finally:
        shutil.rmtree(cache, ignore_errors=True)


# ---------------------------------------------------------------------------------------- table
def _scaled_note(mc_run: dict, r: dict) -> str:
    """"; timed on N of M slices, scaled" when an MC run timed part of the exam, else ""."""
    timed = mc_run.get("slices_timed", r["shape"][2])
    return f"; timed on {timed} of {r['shape'][2]} slices, scaled" if timed < r["shape"][2] else ""


def _row(name: str, wall: float | None, cpu: float | None, unit: str, ratio: float | None = None,
         ratio_of: str = "", target: str = "", rss: float | None = None,
         note: str = "") -> dict[str, Any]:
    return {"row": name, "wall": wall, "cpu": cpu, "unit": unit, "ratio": ratio,
            "ratio_of": ratio_of, "target": target, "peak_rss_gb": rss, "note": note}


def _ok(x: Any) -> bool:
    return isinstance(x, dict) and "error" not in x


def phantom_rows(r: dict[str, Any], res: str, device: str) -> list[dict[str, Any]]:
    return [_row(f"phantom {res}", r["wall"], r["cpu"], "s/subject", rss=r.get("peak_rss_gb"),
                 target="<= 15 s (1 mm)")]


def prepare_rows(r: dict[str, Any], res: str, device: str) -> list[dict[str, Any]]:
    return [_row(f"prepare {res}", r["wall"], r["cpu"], "s/subject", rss=r.get("peak_rss_gb"),
                 target="<= 30 s (1 mm)")]


def training_rows(r: dict[str, Any], res: str, device: str) -> list[dict[str, Any]]:
    return [_row(f"training full pipeline {res}", r["full"], r["full_cpu"], "samples/s",
                 ratio=r["full_cpu"] / r["bare_cpu"], ratio_of="full/bare (CPU)", target=">= 0.85",
                 rss=r.get("peak_rss_gb"),
                 note=f"wall ratio {r['full'] / r['bare']:.2f}; {r['recipe']}"),
            _row(f"training bare step {res}", r["bare"], r["bare_cpu"], "samples/s")]


def inference_rows(r: dict[str, Any], res: str, device: str) -> list[dict[str, Any]]:
    gf = r["gflop_per_exam"]
    rows = [_row(f"synthesis 1 sample {res}", r["one"]["wall"], r["one"]["cpu"], "s/exam",
                 rss=r.get("peak_rss_gb"), target="RSS < 4 GB",
                 note=f"{tuple(r['shape'])} voxels, batch {r['batch']}, {gf:.1f} GFLOP"),
            _row(f"synthesis {r['mc']} MC samples {res}", r["mc_run"]["wall"], r["mc_run"]["cpu"],
                 "s/exam", ratio=r["mc_run"]["cpu"] / r["one"]["cpu"], ratio_of="MC/1 (CPU)",
                 note=f"linear would be {r['mc']}" + _scaled_note(r["mc_run"], r))]
    peak_key = "matmul_bf16" if device.startswith("cuda") else "matmul_fp32"
    mm = r[peak_key]
    ach = {k: gf / r["one"][k] for k in ("wall", "cpu")}
    rows.append(_row(f"generator GFLOP/s {res}", ach["wall"], ach["cpu"], "GFLOP/s",
                     ratio=ach["cpu"] / mm["cpu"] if not device.startswith("cuda")
                     else ach["wall"] / mm["wall"],
                     ratio_of=f"/ {peak_key.split('_')[1]} matmul", target=">= 0.50"))
    rows.append(_row(f"{peak_key.replace('_', ' ')} peak {res}", mm["wall"], mm["cpu"], "GFLOP/s"))
    if "monai" in r:
        m = r["monai"]
        rows.append(_row(f"MONAI sliding window {res}", m["wall"], m["cpu"], "s/exam",
                         ratio=r["one"]["cpu"] / m["cpu"], ratio_of="gdsynth/MONAI (CPU)",
                         target="<= 1.00", note=f"wall ratio {r['one']['wall'] / m['wall']:.2f}"))
    if "compiled" in r:
        rows.extend(compiled_rows(r, res, gf, mm, device))
    return rows


def cohort_rows(r: dict[str, Any], res: str, device: str) -> list[dict[str, Any]]:
    n = r["n"]
    one, all_ = r["one"], r["all"]
    rows = [_row(f"predict 1 exam {res}", one["wall"], one["cpu"], "s/exam",
                 rss=r.get("peak_rss_gb")),
            _row(f"predict {n} exams {res}", all_["wall"], all_["cpu"], "s",
                 ratio=all_["cpu"] / (n * one["cpu"]), ratio_of=f"t({n})/({n} t(1)) CPU",
                 target="~1.0", note=f"wall ratio {all_['wall'] / (n * one['wall']):.2f}")]
    if "all_workers" in r:
        w = r["all_workers"]
        rows.append(_row(f"predict {n} exams, {r['workers']} prefetch worker(s) {res}",
                         w["wall"], w["cpu"], "s", ratio=w["wall"] / all_["wall"],
                         ratio_of="wall / no workers", target="< 1.0"))
    return rows


def precision_step_rows(step: str) -> Callable[[dict[str, Any], str, str], list[dict[str, Any]]]:
    """The rows of one ``precision-*`` step (``bench_precision.precision_rows``)."""
    def rows(r: dict[str, Any], res: str, device: str) -> list[dict[str, Any]]:
        from bench_precision import precision_rows

        return precision_rows(step, r, res, _row)

    return rows


#: Table rows of each measured step: child step name -> function(result, resolution tag, device).
ROWS: dict[str, Callable[[dict[str, Any], str, str], list[dict[str, Any]]]] = {
    "phantom": phantom_rows,
    "prepare": prepare_rows,
    "training": training_rows,
    "inference": inference_rows,
    "cohort": cohort_rows,
    **{name: precision_step_rows(name)
       for name in ("precision-inference", "precision-agreement", "precision-training")},
}


def build_rows(results: dict[str, dict[str, Any]], device: str = "cpu") -> list[dict[str, Any]]:
    """Table rows from the steps' results (keys ``phantom@2mm``, ``inference@1mm``, ...); a
    failed step is one row with its error; a step with no rows (``compile``) adds none."""
    rows: list[dict[str, Any]] = []
    for key, r in results.items():
        step, _, res = key.partition("@")
        if not _ok(r):
            rows.append(_row(key, None, None, "", note=str(r.get("error", "?"))[:200]))
            continue
        if step in ROWS:
            rows.extend(ROWS[step](r, res, device))
    one, two = results.get("inference@1mm"), results.get("inference@2mm")
    if _ok(one) and _ok(two):
        voxels = math.prod(one["shape"]) / math.prod(two["shape"])
        rows.append(_row("synthesis 1 mm / 2 mm", one["one"]["wall"] / two["one"]["wall"],
                         one["one"]["cpu"] / two["one"]["cpu"], "x time",
                         ratio=(one["one"]["cpu"] / two["one"]["cpu"]) / voxels,
                         ratio_of=f"time ratio / voxel ratio ({voxels:.2f})", target="~1.0"))
    return rows


def compiled_rows(r: dict[str, Any], res: str, gf: float, mm: dict[str, float],
                  device: str) -> list[dict[str, Any]]:
    """Rows of the torch.compile measurement, next to the eager ones of the same run."""
    c = r["compiled"]
    if not _ok(c):
        return [_row(f"synthesis compiled {res}", None, None, "", note=str(c.get("error"))[:200])]
    rows = [_row(f"synthesis 1 sample compiled {res}", c["one"]["wall"], c["one"]["cpu"],
                 "s/exam", ratio=r["one"]["cpu"] / c["one"]["cpu"], ratio_of="eager/compiled (CPU)",
                 note=f"wall ratio {r['one']['wall'] / c['one']['wall']:.2f}; compile time "
                      "excluded (own row)")]
    rows.append(_row(f"synthesis {r['mc']} MC samples compiled {res}", c["mc_run"]["wall"],
                     c["mc_run"]["cpu"], "s/exam",
                     ratio=r["mc_run"]["cpu"] / c["mc_run"]["cpu"], ratio_of="eager/compiled (CPU)",
                     note=f"wall ratio {r['mc_run']['wall'] / c['mc_run']['wall']:.2f}"
                          + _scaled_note(c["mc_run"], r)))
    ach = {k: gf / c["one"][k] for k in ("wall", "cpu")}
    rows.append(_row(f"generator GFLOP/s compiled {res}", ach["wall"], ach["cpu"], "GFLOP/s",
                     ratio=ach["cpu"] / mm["cpu"] if not device.startswith("cuda")
                     else ach["wall"] / mm["wall"],
                     ratio_of="/ fp32 matmul" if not device.startswith("cuda") else "/ bf16 matmul",
                     target=">= 0.50"))
    cold = {k: c["compile_one"][k] + c["compile_mc"][k] for k in ("wall", "cpu")}
    warm = c.get("warm", {})
    saved = r["one"]["cpu"] - c["one"]["cpu"]  # CPU: wall time swings on a shared machine
    note = (f"cold cache: 1 sample {c['compile_one']['wall']:.0f} s + MC graphs "
            f"{c['compile_mc']['wall']:.0f} s wall")
    if _ok(warm) and warm:
        note += (f"; warm cache, new process: {warm['compile_one']['wall']:.0f} s + "
                 f"{warm['compile_mc']['wall']:.0f} s")
    note += (f"; {c['graphs']} graphs, {c['recompiles']} recompiles for another slice size; "
             "CPU excludes Inductor's compile workers; pay back = 1-sample compile wall / CPU "
             "seconds saved per exam")
    rows.append(_row(f"torch.compile time {res}", cold["wall"], cold["cpu"], "s once",
                     ratio=c["compile_one"]["wall"] / saved if saved > 0 else None,
                     ratio_of="exams to pay back (1 sample)" if saved > 0 else "",
                     note=note))
    return rows


def _fmt(x: Any, digits: int = 3) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:.{digits}g}" if abs(x) < 1000 else f"{x:.0f}"
    return str(x)


COLUMNS = ("row", "wall", "cpu", "unit", "ratio", "ratio_of", "target", "peak_rss_gb", "note")


def format_text(rows: list[dict[str, Any]]) -> str:
    """Fixed-width table."""
    cells = [[_fmt(r[c]) for c in COLUMNS] for r in rows]
    head = ["step", "wall", "CPU", "unit", "ratio", "ratio of", "target", "peak RSS GB", "note"]
    widths = [max(len(h), *(len(c[i]) for c in cells)) if cells else len(h)
              for i, h in enumerate(head)]
    widths[-1] = len(head[-1])
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines += ["  ".join(c.ljust(w) for c, w in zip(cell, widths, strict=True)) for cell in cells]
    return "\n".join(lines)


def format_markdown(rows: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    """Markdown table with the machine description above it."""
    head = ["step", "wall", "CPU", "unit", "ratio", "ratio of", "target", "peak RSS GB", "note"]
    lines = [f"Machine: {describe(machine)}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(_fmt(r[c]).replace("|", "/") for c in COLUMNS) + " |" for r in rows]
    return "\n".join(lines) + "\n"


def describe(m: dict[str, Any]) -> str:
    """One line: CPU, cores, torch and threads, BLAS env, load."""
    env = ", ".join(f"{k}={v}" for k, v in m["env"].items()) or "no BLAS/OMP env"
    gpu = f", GPU {m['cuda']}" if m.get("cuda") else ""
    return (f"{m['cpu']}, {m['cores']} cores (affinity {m['affinity']}){gpu}; torch {m['torch']} "
            f"({m['torch_threads']} threads, {m['torch_interop_threads']} interop); {env}; "
            f"load average at start {m['load_avg']}")


# ------------------------------------------------------------------------------------- harness
class BenchStep(str, Enum):
    """What ``--steps`` selects (each plans one or more child measurements, :data:`PLANS`)."""

    phantom = "phantom"
    prepare = "prepare"
    training = "training"
    inference = "inference"
    cohort = "cohort"
    precision = "precision"

    @classmethod
    def parse(cls, name: str) -> BenchStep:
        try:
            return cls(name)
        except ValueError:
            raise ValueError(f"unknown step {name!r}; valid steps: "
                             f"{', '.join(s.value for s in cls)}") from None


STEPS = tuple(s.value for s in BenchStep)


@dataclass(frozen=True)
class PlanOptions:
    """The run's settings every step plans its measurements from."""

    quick: bool
    common: dict[str, Any]  # device and threads of every child
    subjects: int = 1
    repeats: int = 1
    mc_slices_1mm: int | None = None
    compile: bool = True


Job = tuple[str, dict[str, Any]]  # (result key "step@resolution", child parameters)


def plan_phantom(o: PlanOptions, res: float) -> list[Job]:
    return [(f"phantom@{res:g}mm", {**o.common, "resolution": res, "subjects": o.subjects})]


def plan_prepare(o: PlanOptions, res: float) -> list[Job]:
    return [(f"prepare@{res:g}mm", {**o.common, "resolution": res, "subjects": o.subjects})]


def plan_inference(o: PlanOptions, res: float) -> list[Job]:
    shape = SHAPE_2MM if res == 2.0 else SHAPE_1MM
    return [(f"inference@{res:g}mm", {**o.common, "shape": shape, "mc": 10,
                                      "repeats": 1 if o.quick else o.repeats,
                                      "mc_slices": o.mc_slices_1mm if res == 1.0 else None,
                                      "compile": o.compile})]


def plan_training(o: PlanOptions) -> list[Job]:
    return [("training@" + ("2mm" if o.quick else "1mm"), {**o.common, "quick": o.quick})]


def plan_cohort(o: PlanOptions) -> list[Job]:
    return [("cohort@2mm", {**o.common, "resolution": 2.0, "n": 8, "workers": 1})]


def plan_precision(o: PlanOptions) -> list[Job]:
    """bf16 vs fp32 (docs/benchmarks.md, "bf16")."""
    res = "2mm" if o.quick else "1mm"
    return [("precision-inference@" + res, {**o.common, "shape": SHAPE_2MM if o.quick else SHAPE_1MM,
                                            "mc_slices": o.mc_slices_1mm, "compile": o.compile}),
            ("precision-agreement@" + res, {**o.common, "resolution": 2.0 if o.quick else 1.0,
                                            "exams": 1 if o.quick else 2}),
            ("precision-training@2mm", {**o.common, "batches": 30 if o.quick else 100})]


#: Steps measured once per resolution: step -> planner(options, resolution in mm).
PER_RESOLUTION: dict[BenchStep, Callable[[PlanOptions, float], list[Job]]] = {
    BenchStep.phantom: plan_phantom,
    BenchStep.prepare: plan_prepare,
    BenchStep.inference: plan_inference,
}
#: Steps measured once per run: step -> planner(options).
ONCE: dict[BenchStep, Callable[[PlanOptions], list[Job]]] = {
    BenchStep.training: plan_training,
    BenchStep.cohort: plan_cohort,
    BenchStep.precision: plan_precision,
}


def plan(quick: bool, device: str, steps: tuple[str, ...], threads: int | None,
         subjects: int = 1, repeats: int = 1, resolutions: list[float] | None = None,
         mc_slices_1mm: int | None = None, compile: bool = True) -> list[Job]:
    """(result key, child parameters) for each measurement of this run: the per-resolution steps
    resolution by resolution, then the others (each group in :class:`BenchStep` order)."""
    chosen = {BenchStep.parse(s) for s in steps}
    options = PlanOptions(quick, {"device": device, "threads": threads}, subjects, repeats,
                          mc_slices_1mm, compile)
    resolutions = [2.0] if quick else (resolutions or [2.0, 1.0])
    jobs: list[Job] = []
    for res in resolutions:
        for step, planner in PER_RESOLUTION.items():
            if step in chosen:
                jobs += planner(options, res)
    for step, once in ONCE.items():
        if step in chosen:
            jobs += once(options)
    return jobs


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    ap.add_argument("--quick", action="store_true", help="2 mm only, fewer repeats")
    ap.add_argument("--out", type=Path, default=None, help="write the table (.json / .md / both)")
    ap.add_argument("--steps", nargs="+", choices=STEPS, default=list(STEPS))
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--subjects", type=int, default=1, help="phantom/prepare subjects per row")
    ap.add_argument("--repeats", type=int, default=1, help="synthesis repeats (best CPU time)")
    ap.add_argument("--resolutions", type=float, nargs="+", default=None,
                    help="full run: resolutions in mm (default 2 1)")
    ap.add_argument("--mc-slices-1mm", type=int, default=None,
                    help="time the 1 mm MC run on this many central slices, scaled to the exam")
    ap.add_argument("--no-compile", action="store_true",
                    help="skip the torch.compile synthesis rows (eager rows only)")
    ap.add_argument("--merge", type=Path, default=None,
                    help="JSON written by an earlier run: its results fill the steps not rerun")
    ap.add_argument("--child", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--params", default="{}", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child:
        print(json.dumps(run_step(args.child, json.loads(args.params))), flush=True)
        return 0

    from gdsynth.runtime import resolve_device

    device = str(resolve_device(args.device))
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    machine = machine_info()
    print(f"machine: {describe(machine)}", flush=True)
    WORK.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    if args.merge:
        results.update(json.loads(args.merge.read_text())["results"])
    for key, params in plan(args.quick, device, tuple(args.steps), args.threads,
                                args.subjects, args.repeats, args.resolutions,
                                args.mc_slices_1mm, not args.no_compile):
        print(f"  running {key} ...", flush=True)
        step = key.split("@")[0]
        with child_env(step, params) as env:
            results[key] = run_child(child_argv(Path(__file__), "--child", step,
                                                "--params", json.dumps(params)), env=env)
        if "error" in results[key]:
            print(f"    failed: {results[key]['error']}", flush=True)
        if args.out:  # partial results survive an interrupted run
            write_outputs(args.out, results, machine, device, args.quick, quiet=True)
    machine["load_avg_end"] = [round(v, 2) for v in os.getloadavg()]
    print(format_text(build_rows(results, device)))
    print(f"load average at end: {machine['load_avg_end']}")
    if args.out:
        write_outputs(args.out, results, machine, device, args.quick)
    return 0


def write_outputs(out: Path, results: dict[str, dict[str, Any]], machine: dict[str, Any],
                  device: str, quick: bool, quiet: bool = False) -> None:
    """``out`` as JSON (machine, rows, raw results) and/or markdown, by suffix."""
    rows = build_rows(results, device)
    payload = {"machine": machine, "device": device, "quick": quick, "rows": rows,
               "results": results}
    targets = ([out] if out.suffix in (".json", ".md")
               else [out.with_suffix(".json"), out.with_suffix(".md")])
    for target in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps(payload, indent=2) if target.suffix == ".json" \
            else format_markdown(rows, machine)
        target.write_text(text)
        if not quiet:
            print(f"wrote {target}")


if __name__ == "__main__":
    raise SystemExit(main())
