#!/usr/bin/env python
"""Interleaved A/B, in one process, of memory format and precision on CPU (docs/benchmarks.md,
"bf16 and channels-last"): the phantom recipe's D+G training step (batch 8 x 9 x 64 x 64) and
the generator forward on 8 whole 1 mm slices (8 x 9 x 208 x 240), each in fp32, fp32
channels-last, bf16 channels-last and bf16 (autocast); ``--norm``: instance norm + a 3x3
convolution, ``aten::instance_norm`` versus the layout-keeping group norm, on channels-last maps.

    python benchmarks/bench_layout.py [--threads 1] [--repeats 3] [--norm]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F
from _common import ROOT

VARIANTS = {"fp32": (False, False), "fp32_cl": (True, False), "bf16_cl": (True, True),
            "bf16": (False, True)}


def _cpu(fn, n: int = 1) -> float:
    t = time.process_time()
    for _ in range(n):
        fn()
    return (time.process_time() - t) / n


def _batch(b: int = 8, c: int = 9, p: int = 64) -> dict[str, torch.Tensor]:
    x = torch.randn(b, c, p, p)
    return {"input": x, "pre": x[:, 4:5].clone(), "target": x[:, 4:5] + 0.1,
            "brain": torch.ones(b, 1, p, p), "lesion": torch.zeros(b, 1, p, p)}


def steps_and_forwards(repeats: int) -> dict[str, dict[str, float]]:
    """Median CPU seconds per training step and per inference forward of each variant."""
    from gdsynth.training.config import load_config
    from gdsynth.training.module import Pix2PixModule

    cfg = load_config(ROOT / "experiments" / "phantom.yaml")
    torch.manual_seed(0)
    data = _batch()

    def make(cl: bool):
        m = Pix2PixModule(cfg.to_dict()).train()
        if cl:
            m.to(memory_format=torch.channels_last)
        return (m, torch.optim.Adam(m.generator.parameters(), 2e-4),
                torch.optim.Adam(m.discriminator.parameters(), 2e-4))

    def step(m, og, od, cl: bool, bf: bool) -> None:
        fmt = torch.channels_last if cl else torch.contiguous_format
        b = {k: v.contiguous(memory_format=fmt) for k, v in data.items()}
        x = b["input"]
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf):
            out = m.generator(x)
            synth = out[:, :1]
            real = m.discriminator(torch.cat([x, m.goal(b)], 1)).float()
            fake = m.discriminator(torch.cat([x, synth.detach()], 1)).float()
            d = 0.5 * (m.adversarial(real, True, True) + m.adversarial(fake, False, True))
        od.zero_grad()
        d.backward()
        od.step()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf):
            fake = m.discriminator(torch.cat([x, synth], 1)).float()
            g = 100 * m.generator_loss(out, b)["l1"] + m.adversarial(fake, True, False)
        og.zero_grad()
        g.backward()
        og.step()

    mods = {k: make(cl) for k, (cl, _) in VARIANTS.items()}
    train: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for k, (cl, bf) in VARIANTS.items():
        step(*mods[k], cl, bf)
    for _ in range(repeats):
        for k, (cl, bf) in VARIANTS.items():
            train[k].append(_cpu(lambda k=k, cl=cl, bf=bf: step(*mods[k], cl, bf), 3))
    gen = mods["fp32"][0].generator.eval()
    x = torch.randn(8, 9, 208, 240)
    infer: dict[str, list[float]] = {k: [] for k in VARIANTS}
    for _ in range(repeats):
        for k, (cl, bf) in VARIANTS.items():
            fmt = torch.channels_last if cl else torch.contiguous_format
            gen.to(memory_format=fmt)
            xx = x.contiguous(memory_format=fmt)

            def fwd(xx=xx, bf=bf):
                with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf):
                    gen(xx)

            fwd()
            infer[k].append(_cpu(fwd))
    return {"train_step": {k: statistics.median(v) for k, v in train.items()},
            "inference_forward": {k: statistics.median(v) for k, v in infer.items()}}


def norms(repeats: int = 5) -> list[dict[str, float]]:
    """Instance norm (+ 3x3 convolution) on channels-last maps: aten::instance_norm versus
    group norm with one group per channel (what gdsynth.models.unet.InstanceNorm2d runs)."""
    rows = []
    for shape in [(8, 16, 64, 64), (8, 64, 16, 16), (8, 16, 208, 240)]:
        c = shape[1]
        w, b = torch.ones(c, requires_grad=True), torch.zeros(c, requires_grad=True)
        x = torch.randn(*shape).contiguous(memory_format=torch.channels_last).requires_grad_()
        conv = torch.nn.Conv2d(c, c, 3, padding=1).to(memory_format=torch.channels_last)
        ref, new = F.instance_norm(x, weight=w, bias=b), F.group_norm(x, c, w, b)
        row = {"shape": shape, "max_diff": float((ref - new).detach().abs().max())}
        for name in ("instance_norm", "group_norm"):
            def run(name=name, x=x, w=w, b=b, c=c, conv=conv) -> torch.Tensor:
                y = F.instance_norm(x, weight=w, bias=b) if name == "instance_norm" \
                    else F.group_norm(x, c, w, b)
                return conv(y)

            with torch.no_grad():
                run()
                row[f"{name}_fwd"] = _cpu(run, repeats)
            row[f"{name}_fwd_bwd"] = _cpu(lambda run=run: run().sum().backward(), repeats)
        rows.append(row)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--norm", action="store_true", help="only the instance-norm A/B")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    if args.norm:
        for row in norms():
            print({k: round(v, 5) if isinstance(v, float) else v for k, v in row.items()})
    else:
        r = steps_and_forwards(args.repeats)
        for part, times in r.items():
            print(part, "CPU s (median):", {k: round(v, 4) for k, v in times.items()})
    print("load average", [round(v, 2) for v in os.getloadavg()])


if __name__ == "__main__":
    main()
