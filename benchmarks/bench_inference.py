"""Benchmark whole-volume inference on CPU for a 1 mm whole-brain exam (one run, printed as ratios).

Measures, with the shipped model's architecture (experiments/phantom.yaml: 2.5D U-Net, 16
features, depth 4) or ``--model FOLDER``:

* seconds per exam (197 x 233 x 189 voxels) with 1 and with ``--mc`` MC-dropout samples;
* achieved GFLOP/s of the generator during whole-volume inference (FLOPs counted with
  ``torch.utils.flop_counter.FlopCounterMode``) versus a plain fp32 matmul measured in this run
  (target >= 50 %);
* time versus MONAI ``sliding_window_inference`` with the same network, the same 2.5D input and
  the same (zero) overlap, whole slices as the window (target: no slower);
* peak resident memory (target < 4 GB).

``--sweep`` first times batch sizes and channels-last on a few slices; ``--compile`` also times
the same runs through torch.compile (compile time apart, see :func:`measure_compiled`). Run:
``python benchmarks/bench_inference.py [--threads 2] [--mc 10] [--sweep] [--compile]``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from _common import SHAPE_1MM as SHAPE
from _common import Timer, matmul_gflops, sync
from _common import peak_rss_gb as rss_gb


def brain_like(shape=SHAPE, seed: int = 0) -> np.ndarray:
    """(3, X, Y, Z) float32: an ellipsoid of NAWM-like intensity with noise (content is irrelevant
    for speed, but keeps values realistic)."""
    rng = np.random.default_rng(seed)
    axes = [np.linspace(-1, 1, s, dtype=np.float32) for s in shape]
    r = axes[0][:, None, None] ** 2 + axes[1][None, :, None] ** 2 + axes[2][None, None, :] ** 2
    base = np.where(r < 0.8, 1.0, 0.0).astype(np.float32)
    return np.stack([base + 0.05 * rng.standard_normal(shape, dtype=np.float32) for _ in range(3)])


def build_model(folder: str | None, device: str = "cpu"):
    from gdsynth.models.card import ModelCard
    from gdsynth.models.unet import UNetGenerator

    if folder:
        from gdsynth.models.folder import load_model_folder

        return load_model_folder(folder, device)
    kwargs = {"in_channels": 9, "features": 16, "depth": 4, "max_features": 128, "dropout": 0.5,
              "heads": ["enhancing"]}
    torch.manual_seed(0)
    card = ModelCard(architecture={"name": "unet", "kwargs": kwargs}, mode="2.5d", context_slices=1,
                     heads=["enhancing"])
    return UNetGenerator(**kwargs).eval().to(device), card


def flops_per_slice(model, card, shape) -> float:
    """FLOPs of one forward on one whole (padded) axial slice of a volume of ``shape``."""
    from torch.utils.flop_counter import FlopCounterMode

    from gdsynth.inference.slices import pad_to_multiple

    x, _ = pad_to_multiple(torch.zeros(1, card.in_channels, *shape[:2]), model.size_multiple)
    x = x.to(next(model.parameters()).device)
    with FlopCounterMode(display=False) as counter, torch.inference_mode():
        model(x)
    return float(counter.get_total_flops())


def time_ours(model, card, volume, *, mc: int, batch: int, channels_last: bool | None,
              compile: str = "off", precision: str = "fp32") -> Timer:
    """Whole-volume prediction with gdsynth's slice predictor (and MC dropout when ``mc`` > 1);
    ``compile="on"``: through torch.compile (the first call of a process includes compiling);
    ``precision`` ``fp32`` or ``bf16`` (``channels_last=None``: the predictor's default)."""
    from gdsynth.inference.pipeline import SynthesisSettings, build_predictor
    from gdsynth.inference.volume import predict_volume

    settings = SynthesisSettings(mc_samples=mc, batch_size=batch, channels_last=channels_last,
                                 compile=compile, precision=precision)
    predictor = build_predictor(model, settings)
    with Timer() as t:
        predict_volume(predictor, volume, card, size_multiple=model.size_multiple, batch_size=batch)
        sync(str(next(model.parameters()).device))
    return t


def compile_time(model, card, volume, *, mc: int, batch: int, channels_last: bool = False
                 ) -> Timer:
    """What torch.compile adds to the first batch of a process: the first compiled call on one
    batch of slices minus a second call on the same batch. CPU time is this process's only
    (Inductor compiles kernels in worker processes too)."""
    first = volume[..., :batch]
    a = time_ours(model, card, first, mc=mc, batch=batch, channels_last=channels_last,
                  compile="on")
    b = time_ours(model, card, first, mc=mc, batch=batch, channels_last=channels_last,
                  compile="on")
    return Timer(a.wall - b.wall, a.cpu - b.cpu)


def measure_compiled(model, card, volume, *, mc: int, batch: int, channels_last: bool = False,
                     mc_slices: int | None = None, repeats: int = 1) -> dict:
    """Synthesis through torch.compile (``compile="on"``), compilation kept apart:

    * ``compile_one`` / ``compile_mc``: compile time of the 1-sample graph and of the MC-dropout
      encoder + decoder graphs (:func:`compile_time`);
    * ``one`` / ``mc_run``: seconds per exam with compiled code (MC on ``mc_slices`` central
      slices, scaled, as the eager row);
    * ``graphs`` compiled, and ``recompiles`` when another exam's slice size and a smaller last
      batch are predicted afterwards (0: one compilation serves every exam).

    ``{"error": reason}`` when compilation is unavailable here."""
    from gdsynth.inference import compiled as C

    reason = C.compile_unsupported(next(model.parameters()).device)
    if reason is not None:
        return {"error": reason}
    g0 = C.compile_counters()["graphs"]
    c1 = compile_time(model, card, volume, mc=1, batch=batch, channels_last=channels_last)
    cmc = compile_time(model, card, volume, mc=mc, batch=batch, channels_last=channels_last)
    graphs = C.compile_counters()["graphs"] - g0
    if any(not c.active for c in C.compiled_runs(model)):
        return {"error": "compilation failed (see the warning above); eager fallback"}

    def run(vol, n: int) -> Timer:
        return time_ours(model, card, vol, mc=n, batch=batch, channels_last=channels_last,
                         compile="on")

    t1 = min((run(volume, 1) for _ in range(repeats)), key=lambda t: t.cpu)
    n_z = volume.shape[-1]
    k = min(n_z, mc_slices or n_z)
    tmc = run(volume[..., (n_z - k) // 2:(n_z - k) // 2 + k], mc).per(k / n_z)
    x, y = volume.shape[1:3]
    other = volume[:, : max(1, x - 17), : max(1, y - 17), : batch + 1]  # other slice size
    run(other, 1)
    run(other, mc)
    return {"compile_one": {"wall": c1.wall, "cpu": c1.cpu},
            "compile_mc": {"wall": cmc.wall, "cpu": cmc.cpu},
            "one": {"wall": t1.wall, "cpu": t1.cpu},
            "mc_run": {"wall": tmc.wall, "cpu": tmc.cpu, "slices_timed": k},
            "graphs": graphs, "recompiles": C.compile_counters()["graphs"] - g0 - graphs}


def time_monai(model, card, volume, *, batch: int) -> Timer:
    """MONAI sliding window over the stacked 2.5D input, one whole (padded) slice per window."""
    from monai.inferers import sliding_window_inference

    from gdsynth.inference.predictor import make_predictor
    from gdsynth.inference.slices import stack_slices

    vol = torch.as_tensor(volume)
    timer = Timer().__enter__()
    stacked = stack_slices(vol, range(vol.shape[-1]), card.context_slices)  # (Z, C, X, Y)
    x = stacked.permute(1, 2, 3, 0)[None]  # (1, C, X, Y, Z)
    m = model.size_multiple
    roi = (-(-x.shape[2] // m) * m, -(-x.shape[3] // m) * m, 1)
    predict = make_predictor(model)

    def slice_predictor(patch: torch.Tensor) -> torch.Tensor:  # (B, C, X, Y, 1)
        return predict(patch[..., 0])[..., None]

    with torch.inference_mode():
        sliding_window_inference(x, roi, batch, slice_predictor, overlap=0.0, mode="constant")
    timer.__exit__()
    return timer


def sweep(model, card, volume) -> tuple[int, bool]:
    """Time batch sizes and channels-last on 32 slices; return the fastest (by CPU time)."""
    sub = volume[..., :32]
    best = (float("inf"), 8, False)
    for channels_last in (False, True):
        for batch in (1, 4, 8, 16):
            m = build_model(None)[0] if channels_last else model
            dt = time_ours(m, card, sub, mc=1, batch=batch, channels_last=channels_last).cpu
            print(f"  sweep batch={batch:2d} channels_last={channels_last!s:5}: "
                  f"{dt / sub.shape[-1] * 1000:.1f} ms CPU/slice")
            best = min(best, (dt, batch, channels_last))
    return best[1], best[2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=None, help="torch intra-op threads")
    ap.add_argument("--mc", type=int, default=10, help="MC-dropout samples of the second run")
    ap.add_argument("--batch-size", type=int, default=8)
    ap.add_argument("--channels-last", action="store_true")
    ap.add_argument("--sweep", action="store_true", help="pick batch size / channels-last first")
    ap.add_argument("--model", default=None, help="exported model folder (default: phantom architecture)")
    ap.add_argument("--no-monai", action="store_true")
    ap.add_argument("--compile", action="store_true",
                    help="also time synthesis through torch.compile (compile time apart)")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model, card = build_model(args.model)
    volume = brain_like()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, volume {SHAPE}, "
          f"model {card.mode} in={card.in_channels}")
    batch, channels_last = args.batch_size, args.channels_last
    if args.sweep:
        batch, channels_last = sweep(model, card, volume)
        print(f"  kept batch={batch} channels_last={channels_last}")
    mm = matmul_gflops()
    mm_wall, mm_cpu = mm["wall"], mm["cpu"]
    gflop_exam = flops_per_slice(model, card, SHAPE) * SHAPE[2] / 1e9
    t1 = time_ours(model, card, volume, mc=1, batch=batch, channels_last=channels_last)
    tmc = time_ours(model, card, volume, mc=args.mc, batch=batch, channels_last=channels_last)
    peak = rss_gb()
    print(f"fp32 matmul:          {mm_wall:7.1f} GFLOP/s wall ({mm_cpu:.1f} per CPU second)")
    print(f"generator per exam:   {gflop_exam:7.1f} GFLOP ({card.mode}, {SHAPE[2]} slices)")
    for label, t, n in (("1 sample", t1, 1), (f"{args.mc} MC samples", tmc, args.mc)):
        wall, cpu = gflop_exam * n / t.wall, gflop_exam * n / t.cpu
        print(f"{label:<21} {t}/exam; {wall:.1f} GFLOP/s = {wall / mm_wall:.2f} x matmul "
              f"(CPU: {cpu / mm_cpu:.2f} x; target >= 0.50)")
    print(f"MC/1-sample time:     {tmc.wall / t1.wall:.2f} x wall, {tmc.cpu / t1.cpu:.2f} x CPU "
          f"(for {args.mc} samples)")
    print(f"peak RSS:             {peak:7.2f} GB = {peak / 4:.2f} x the 4 GB target")
    if not args.no_monai:
        tm = time_monai(model, card, volume, batch=batch)
        print(f"MONAI sliding window: {tm}/exam; ours/MONAI = {t1.wall / tm.wall:.2f} wall, "
              f"{t1.cpu / tm.cpu:.2f} CPU (target <= 1.00); peak RSS after it {rss_gb():.2f} GB")
    if args.compile:
        c = measure_compiled(model, card, volume, mc=args.mc, batch=batch,
                             channels_last=channels_last)
        if "error" in c:
            print(f"torch.compile:        unavailable ({c['error']})")
            return
        print(f"torch.compile:        {c['compile_one']['wall']:.1f} s (1 sample) + "
              f"{c['compile_mc']['wall']:.1f} s (MC graphs) wall, once; {c['graphs']} graphs, "
              f"{c['recompiles']} recompiles for another slice size")
        for label, eager, key, n in (("1 sample", t1, "one", 1),
                                     (f"{args.mc} MC samples", tmc, "mc_run", args.mc)):
            cw, cc = c[key]["wall"], c[key]["cpu"]
            print(f"{label + ' compiled':<21} {cw:7.2f} s wall ({cc:7.2f} s CPU)/exam; "
                  f"{gflop_exam * n / cc:.1f} GFLOP/s per CPU s = "
                  f"{gflop_exam * n / cc / mm_cpu:.2f} x matmul; eager/compiled "
                  f"{eager.cpu / cc:.2f} CPU, {eager.wall / cw:.2f} wall")

if __name__ == "__main__":
    main()
