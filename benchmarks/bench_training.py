#!/usr/bin/env python
"""Training throughput: the full pipeline vs the bare model step, in one run.

* full: Lightning ``Trainer`` + ``GdsynthDataModule`` (torchio Queue with a subject-loading worker,
  LabelSampler, augmentation, 2.5D conversion) + CSV logging, recipe ``experiments/phantom.yaml``;
  throughput is measured between training-batch ends after a warm-up, so data waiting counts.
* bare: the same generator/discriminator/loss step (D then G, Adam) in a plain loop over batches
  already in memory.

Prints samples/s for both and the overhead ``1 - full / bare`` (target <= 15 %). Data: synthetic
prepared volumes (ellipsoid brain, enhancing blobs) of ``--shape`` voxels, written with gdsynth.io.

    python benchmarks/bench_training.py --steps 40 --threads 2
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
from _common import ROOT, Timer, sync


def write_volumes(folder: Path, n: int, shape: tuple[int, int, int], spacing: float):
    """``n`` synthetic prepared exams (NAWM = 1, post − pre = 0.6 in a few blobs)."""
    from gdsynth.data.subjects import TrainingExam
    from gdsynth.io import Geometry, write_image, write_labels

    geometry = Geometry(shape, (spacing,) * 3, (0.0, 0.0, 0.0), (-1, 0, 0, 0, -1, 0, 0, 0, 1))
    grid = np.meshgrid(*[np.linspace(-1, 1, s, dtype=np.float32) for s in shape], indexing="ij")
    r2 = sum((g / a) ** 2 for g, a in zip(grid, (0.8, 0.85, 0.9), strict=True))
    brain = r2 < 1
    exams = []
    for i in range(n):
        rng = np.random.default_rng(i)
        base = np.where(brain, np.where(r2 > 0.6, 0.75, 1.0), 0.05).astype(np.float32)
        enh = np.zeros(shape, np.float32)
        for c in np.argwhere(brain & (r2 < 0.5))[rng.integers(0, int((brain & (r2 < 0.5)).sum()), 4)]:
            d2 = sum((g - g[tuple(c)]) ** 2 for g in grid)
            enh[d2 < (6.0 / shape[0]) ** 2] = 0.6
        vols = {k: base * f + rng.normal(0, 0.02, shape).astype(np.float32)
                for k, f in (("T1w", 1.0), ("T2w", 1.2), ("FLAIR", 1.1))}
        vols["T1w_gd"] = vols["T1w"] + enh
        d = folder / f"sub-{i:02d}"
        paths = {k: write_image(d / f"{k}.nii.gz", v, geometry) for k, v in vols.items()}
        paths["mask"] = write_labels(d / "mask.nii.gz", brain.astype(np.uint8), geometry)
        exams.append(TrainingExam(id=f"sub-{i:02d}", paths=paths))
    return exams


def bare_throughput(module, batches: list[dict], steps: int, precision: str = "fp32",
                    ) -> tuple[float, float]:
    """Samples/s (by wall time, by CPU time) of the D+G step alone on in-memory batches (no
    Lightning, no data loading), in the module's memory format (channels-last on CPU, as the
    training step) and ``precision`` (``fp32``, or ``bf16`` autocast as Lightning's
    ``bf16-mixed`` runs it, losses in float32)."""
    import torch

    oc, lc = module.cfg.optim, module.cfg.loss
    if module.channels_last:
        module.to(memory_format=torch.channels_last)
    opt_g = torch.optim.Adam(module.generator.parameters(), lr=oc.lr_g, betas=(oc.beta1, oc.beta2))
    opt_d = torch.optim.Adam(module.discriminator.parameters(), lr=oc.lr_d, betas=(oc.beta1, oc.beta2))
    module.train()
    kind = batches[0]["input"].device.type

    def autocast():
        return torch.autocast(kind, dtype=torch.bfloat16, enabled=precision == "bf16")

    def layout(x):  # the training step's memory format (``module.channels_last``)
        return x.contiguous(memory_format=torch.channels_last) if module.channels_last else x

    def step(batch):
        x = layout(batch["input"])
        with autocast():
            out = module.generator(x)
            synth = out[:, :1]
            real = module.discriminator(layout(torch.cat([x, module.goal(batch)], 1))).float()
            fake = module.discriminator(layout(torch.cat([x, synth.detach()], 1))).float()
            d_loss = 0.5 * (module.adversarial(real, True, True) + module.adversarial(fake, False, True))
        opt_d.zero_grad()
        d_loss.backward()
        torch.nn.utils.clip_grad_norm_(module.discriminator.parameters(), oc.grad_clip_d)
        opt_d.step()
        with autocast():
            fake = module.discriminator(layout(torch.cat([x, synth], 1))).float()
            g_loss = lc.l1_weight * module.generator_loss(out, batch)["l1"] + \
                lc.adversarial_weight * module.adversarial(fake, True, False)
        opt_g.zero_grad()
        g_loss.backward()
        torch.nn.utils.clip_grad_norm_(module.generator.parameters(), oc.grad_clip_g)
        opt_g.step()

    step(batches[0])  # warm-up
    with Timer() as t:
        for i in range(steps):
            step(batches[i % len(batches)])
        sync(str(batches[0]["input"].device))
    samples = steps * batches[0]["input"].shape[0]
    return samples / t.wall, samples / max(t.cpu, 1e-9)


def measure(config: Path, *, subjects: int = 4, shape: tuple[int, int, int] = (144, 176, 144),
            spacing: float = 1.0, steps: int = 40, warmup: int = 5, threads: int | None = 2,
            workers: int | None = None, device: str = "cpu") -> dict:
    """Full-pipeline and bare-step samples/s, measured in this process (see the module doc).

    Returns ``full``, ``bare`` (mean of before and after the full run), ``bare_before``,
    ``bare_after`` (samples/s by wall time), ``full_cpu``/``bare_cpu`` (samples per process CPU
    second: fair on a shared machine), ``wait_fraction`` and a ``recipe`` description."""
    import pytorch_lightning as pl
    import torch
    from pytorch_lightning.loggers import CSVLogger

    from gdsynth.data.module import GdsynthDataModule
    from gdsynth.training.config import load_config
    from gdsynth.training.module import Pix2PixModule

    if threads:
        torch.set_num_threads(threads)
    cfg = load_config(config)
    if workers is not None:
        cfg.data.num_workers = workers
    cfg.data.val_fraction = 0.0
    tmp = Path(tempfile.mkdtemp(prefix="gdsynth-bench-"))
    exams = write_volumes(tmp / "data", subjects, tuple(shape), spacing)
    pl.seed_everything(0, verbose=False)

    class Clock(pl.Callback):
        def __init__(self) -> None:
            self.ends: list[float] = []
            self.starts: list[float] = []
            self.cpu: list[float] = []

        def on_train_batch_start(self, *a, **k) -> None:
            self.starts.append(time.perf_counter())

        def on_train_batch_end(self, *a, **k) -> None:
            self.ends.append(time.perf_counter())
            self.cpu.append(_tree_cpu())

    clock = Clock()
    dm = GdsynthDataModule(exams=exams, config=cfg.data, seed=0)
    # bare step before and after the full run (the machine's load may change in between)
    batches = [b for _, b in zip(range(8), dm.train_dataloader(), strict=False)]
    if device != "cpu":
        batches = [{k: v.to(device) if hasattr(v, "to") else v for k, v in b.items()} for b in batches]
    bare_before, bare_cpu_before = bare_throughput(_module(cfg, device), batches, max(2, steps // 2))
    accelerator = "gpu" if device.startswith("cuda") else "cpu"
    trainer = pl.Trainer(max_steps=warmup + steps + 1, accelerator=accelerator, devices=1,
                         callbacks=[clock], logger=CSVLogger(str(tmp), name="logs"),
                         log_every_n_steps=10, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, limit_val_batches=0)
    trainer.fit(Pix2PixModule(cfg.to_dict()), datamodule=dm)
    n = len(clock.ends) - warmup
    span = clock.ends[-1] - clock.ends[warmup - 1]
    full = n * cfg.data.batch_size / span
    full_cpu = n * cfg.data.batch_size / max(clock.cpu[-1] - clock.cpu[warmup - 1], 1e-9)
    # time between one batch's end and the next one's start: waiting for data (queue refills)
    wait = sum(s - e for s, e in zip(clock.starts[warmup:], clock.ends[warmup - 1:-1], strict=False))
    bare_after, bare_cpu_after = bare_throughput(_module(cfg, device), batches, max(2, steps // 2))
    patch = f"{cfg.data.patch_size}x{cfg.data.patch_size}x{2 * cfg.data.context_slices + 1}"
    return {
        "full": full, "full_cpu": full_cpu,
        "bare": 0.5 * (bare_before + bare_after), "bare_cpu": 0.5 * (bare_cpu_before + bare_cpu_after),
        "bare_before": bare_before, "bare_after": bare_after, "wait_fraction": wait / span,
        "recipe": f"{Path(config).name}: batch {cfg.data.batch_size}, patch {patch}, volumes "
                  f"{tuple(shape)}, {subjects} subjects, {cfg.data.num_workers} queue worker(s), "
                  f"{torch.get_num_threads()} torch thread(s)",
    }


def _module(cfg, device: str):
    from gdsynth.training.module import Pix2PixModule

    return Pix2PixModule(cfg.to_dict()).to(device)


def _tree_cpu() -> float:
    """CPU seconds of this process and its live children (data-loader workers), via psutil if
    installed, else of this process only."""
    try:
        import psutil
    except ImportError:
        return time.process_time()
    me = psutil.Process()
    total = sum(me.cpu_times()[:2])
    for child in me.children(recursive=True):
        try:
            total += sum(child.cpu_times()[:2])
        except psutil.Error:
            pass
    return total


def main() -> None:
    p = argparse.ArgumentParser(description="training throughput: full pipeline vs bare step")
    p.add_argument("--config", type=Path, default=ROOT / "experiments" / "phantom.yaml")
    p.add_argument("--subjects", type=int, default=4)
    p.add_argument("--shape", type=int, nargs=3, default=(144, 176, 144))
    p.add_argument("--spacing", type=float, default=1.0)
    p.add_argument("--steps", type=int, default=40, help="measured batches (after warm-up)")
    p.add_argument("--warmup", type=int, default=5)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--workers", type=int, default=None, help="queue workers (default: recipe)")
    args = p.parse_args()
    r = measure(args.config, subjects=args.subjects, shape=tuple(args.shape), spacing=args.spacing,
                steps=args.steps, warmup=args.warmup, threads=args.threads, workers=args.workers)
    print(f"recipe {r['recipe']}")
    print(f"full pipeline : {r['full']:8.2f} samples/s ({100 * r['wait_fraction']:.1f} % of the "
          "time waiting for patches)")
    print(f"bare step     : {r['bare']:8.2f} samples/s (before {r['bare_before']:.2f}, after "
          f"{r['bare_after']:.2f})")
    print(f"ratio full/bare {r['full'] / r['bare']:.3f}  -> overhead "
          f"{100 * (1 - r['full'] / r['bare']):.1f} % (target <= 15 %); by CPU time "
          f"{r['full_cpu'] / r['bare_cpu']:.3f}")


if __name__ == "__main__":
    main()
