#!/usr/bin/env python
"""Phantom generation speed and memory on one core (targets: <= 15 s per 1 mm subject, < 3 GB).

For each resolution (1 mm and 2 mm) it times, per subject: ``simulate_subject`` (in memory) and a
full ``generate_dataset`` run (simulation plus writing every image, sidecar and truth file, gzip
included) into a temporary folder, serially (``--workers 1``). The one-off loading of the MNI
template (nilearn import, cropping, distance maps; once per process) is timed separately. Prints
seconds per subject (wall clock and this process's CPU time: on a shared machine the CPU time is
the fair single-core figure) and the peak resident memory of the process.

    python benchmarks/bench_phantom.py [--subjects 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from _common import peak_rss_gb


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    from gdsynth.phantom import PhantomConfig, generate_dataset, simulate_subject
    from gdsynth.phantom.anatomy import load_landmarks, load_template

    start = time.perf_counter()
    for res in (1.0, 2.0):
        load_template(res)
    load_landmarks()
    print(f"template loading (once per process): {time.perf_counter() - start:.2f} s wall")
    print(f"load average (other work on this machine slows wall time): {os.getloadavg()[0]:.1f}")

    n = args.subjects
    for res in (1.0, 2.0):
        config = PhantomConfig(resolution=res)
        wall, cpu = time.perf_counter(), time.process_time()
        for i in range(n):
            simulate_subject(i, args.seed, config)
        sim = ((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n)
        with tempfile.TemporaryDirectory() as tmp:
            wall, cpu = time.perf_counter(), time.process_time()
            generate_dataset(Path(tmp) / "bids", subjects=n, seed=args.seed, resolution=res,
                             workers=1)
            full = ((time.perf_counter() - wall) / n, (time.process_time() - cpu) / n)
            size = sum(p.stat().st_size for p in Path(tmp).rglob("*") if p.is_file())
        print(f"{res:.0f} mm: simulate {sim[0]:.2f} s/subject wall ({sim[1]:.2f} s CPU); "
              f"simulate + write {full[0]:.2f} s/subject wall ({full[1]:.2f} s CPU); "
              f"{size / n / 1e6:.1f} MB/subject on disk")
    print(f"peak RSS: {peak_rss_gb():.2f} GB")


if __name__ == "__main__":
    main()
