"""Benchmark ``gdsynth prepare``: seconds per subject at 1 mm and 2 mm, and accuracy on truth.

For each resolution, generates (once, cached under ``--work``) a digital phantom cohort with
``gdsynth.phantom.generate_dataset`` and prepares every exam in memory with
``gdsynth.preprocess.prepare_arrays`` (registration, mask, N4 and normalization included; no
disk writes, so only the computation is timed). Reports per subject: wall seconds (and the
per-step split from provenance), registration error against the true motion (mean displacement
over brain voxels, mm), median NAWM enhancement (post - pre) and median enhancement inside the
enhancing lesions. Target: <= 30 s per subject at 1 mm on 2 cores.

Run: ``python benchmarks/bench_prepare.py [--subjects 2] [--threads 2] [--resolutions 2 1]``.
Note the machine load (printed): shared cores inflate wall time.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from _common import Timer  # noqa: E402  (benchmarks/ is on sys.path when run as a script)


def run(resolution: float, subjects: int, work: Path, seed: int) -> list[dict]:
    from gdsynth.io.bids import discover
    from gdsynth.phantom import generate_dataset
    from gdsynth.preprocess import PrepConfig, prepare_arrays
    from tests.preprocess.truth import score

    root = work / f"phantom-{resolution:g}mm-s{seed}-n{subjects}"
    if not (root / "derivatives" / "phantom").exists():
        generate_dataset(root, subjects=subjects, seed=seed, resolution=resolution)
    rows = []
    for exam in discover(root):
        with Timer() as t:
            vols = prepare_arrays(exam, PrepConfig())
        seconds = t.wall
        s = score(root, exam, vols)
        rows.append({
            "exam": exam.prefix, "resolution_mm": resolution, "shape": list(vols.geometry.shape),
            "seconds": round(seconds, 2), "cpu_seconds": round(t.cpu, 2), "steps_s": vols.provenance["timings_s"],
            "registration_error_mm": {k: round(v, 3) for k, v in s["registration_error_mm"].items()},
            "identity_error_mm": {k: round(v, 3) for k, v in s["identity_error_mm"].items()},
            "nawm_enhancement_median": round(s["nawm_enhancement_median"], 4),
            "enhancing_lesion_median": None if s["enhancing_lesion_median"] is None
            else round(s["enhancing_lesion_median"], 3),
            "mask_dice": round(s["mask_dice"], 4),
        })
        print(json.dumps(rows[-1]), flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subjects", type=int, default=2)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resolutions", type=float, nargs="+", default=[2.0, 1.0])
    parser.add_argument("--work", type=Path, default=Path("/tmp/gdsynth-bench-prepare"))
    args = parser.parse_args()

    import SimpleITK as sitk

    sitk.ProcessObject.SetGlobalDefaultNumberOfThreads(args.threads)
    print(f"threads={args.threads} cpus={os.cpu_count()} load_avg={os.getloadavg()}", flush=True)
    for res in args.resolutions:
        rows = run(res, args.subjects, args.work, args.seed)
        secs = [r["seconds"] for r in rows]
        print(f"{res:g} mm: {sum(secs) / len(secs):.1f} s per subject "
              f"(min {min(secs):.1f}, max {max(secs):.1f}); load_avg={os.getloadavg()}", flush=True)


if __name__ == "__main__":
    main()
