"""Measure the exam-level quality checks (:mod:`gdsynth.preprocess.quality`) on phantom exams:
good exams against mismatched ones (T2w/FLAIR of another subject, FLAIR a copy of the T1w, FLAIR
covering a third of the slices), to set and check the limits of ``QualityLimits``.

    python experiments/exam_quality.py [--subjects 4] [--resolution 2] [--coarsen 1 2]

Prints one row per (exam, variant, coarsening) with the measurements and the flags raised.
Cached under ``--work`` (default work/exam-quality).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from gdsynth.io import read_image, write_image
from gdsynth.io.bids import Exam, discover
from gdsynth.phantom import generate_dataset
from gdsynth.preprocess import PrepConfig, prepare_arrays
from gdsynth.preprocess.resample import resample


def coarse(path: Path, target: Path, factor: int) -> Path:
    """``path`` resampled onto voxels ``factor`` × larger (same field of view)."""
    array, g = read_image(path)
    if factor == 1:
        write_image(target, array, g)
        return target
    spacing = tuple(s * factor for s in g.spacing)
    shape = tuple(max(1, n // factor) for n in g.shape)
    origin = np.asarray(g.origin) + g.direction_matrix @ ((np.asarray(spacing) - g.spacing) / 2)
    grid = g.replace(shape=shape, spacing=spacing, origin=tuple(origin))
    write_image(target, resample(array, g, grid), grid)
    return target


def variants(exams: list[Exam], i: int, folder: Path, factor: int) -> dict[str, Exam]:
    exam, other = exams[i], exams[(i + 1) % len(exams)]
    folder.mkdir(parents=True, exist_ok=True)
    own = {s: coarse(exam.path(s), folder / f"{s}.nii.gz", factor) for s in ("T1w", "T2w", "FLAIR")}
    t2o = coarse(other.path("T2w"), folder / "other_T2w.nii.gz", factor)
    flo = coarse(other.path("FLAIR"), folder / "other_FLAIR.nii.gz", factor)
    fl, g = read_image(own["FLAIR"])
    keep = slice(int(g.shape[2] * 0.35), int(g.shape[2] * 0.35) + max(1, int(g.shape[2] * 12 / 42)))
    slab = folder / "slab_FLAIR.nii.gz"
    write_image(slab, fl[:, :, keep], g.replace(shape=fl[:, :, keep].shape,
                origin=tuple(g.index_to_world(np.array([0.0, 0.0, keep.start])))))
    sub = exam.subject
    return {
        "good": Exam(sub, files={"T1w": own["T1w"], "T2w": own["T2w"], "FLAIR": own["FLAIR"]}),
        "other-subject-T2w-FLAIR": Exam(sub, files={"T1w": own["T1w"], "T2w": t2o, "FLAIR": flo}),
        "FLAIR-is-T1w-copy": Exam(sub, files={"T1w": own["T1w"], "T2w": own["T2w"],
                                                  "FLAIR": own["T1w"]}),
        "FLAIR-12-of-42-slices": Exam(sub, files={"T1w": own["T1w"], "T2w": own["T2w"], "FLAIR": slab}),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subjects", type=int, default=4)
    ap.add_argument("--resolution", type=float, default=2.0)
    ap.add_argument("--coarsen", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--seed", type=int, default=11)
    ap.add_argument("--work", type=Path, default=Path("work/exam-quality"))
    args = ap.parse_args()
    root = args.work / f"phantom-{args.subjects}-{args.resolution}-{args.seed}"
    if not (root / "dataset_description.json").exists():
        generate_dataset(root, subjects=args.subjects, seed=args.seed,
                         resolution=args.resolution, workers=1)
    exams = discover(root)
    rows = []
    for factor in args.coarsen:
        for i, exam in enumerate(exams):
            cases = variants(exams, i, args.work / "work" / f"x{factor}" / exam.prefix, factor)
            for name, case in cases.items():
                prov = prepare_arrays(case, PrepConfig()).provenance
                row = {"exam": exam.prefix, "variant": name, "voxel_mm": args.resolution * factor,
                       "quality": prov["quality"], "flags": prov["quality_flags"]}
                rows.append(row)
                print(json.dumps(row), flush=True)
    wrong = [r for r in rows if bool(r["flags"]) != (r["variant"] != "good")]
    print(f"{len(rows)} exams, {len(wrong)} misclassified "
          f"(good flagged or bad unflagged): {[(r['exam'], r['variant']) for r in wrong]}")


if __name__ == "__main__":
    main()
