#!/usr/bin/env python
"""Figure of one phantom subject: the four sequences, post - pre and the ground truth.

Generates one subject with ``gdsynth.phantom.generate_dataset`` into a temporary folder, reads the
files back through ``gdsynth.io``, moves T2w/FLAIR/post onto the T1w grid with the motion truth
(as a registration would), shows everything in RAS voxel order and picks the axial slice with the
most (enhancing) lesion voxels. Writes ``docs/img/phantom.png``.

    python experiments/figure_phantom.py [--seed 4] [--resolution 1] [--out docs/img/phantom.png]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from scipy import ndimage as ndi  # noqa: E402

from gdsynth.io import Geometry, read_image, read_tsv  # noqa: E402
from gdsynth.phantom import generate_dataset, truth_path  # noqa: E402
from gdsynth.phantom.scanner import reorient  # noqa: E402


def on_t1w(array: np.ndarray, geo: Geometry, t1w: Geometry, matrix=None) -> np.ndarray:
    """Resample ``array`` onto the T1w grid at ``M p`` (trilinear)."""
    m = np.eye(4) if matrix is None else np.asarray(matrix)
    t = np.linalg.inv(geo.affine_lps) @ m @ t1w.affine_lps
    return ndi.affine_transform(array, t[:3, :3], offset=t[:3, 3], output_shape=t1w.shape,
                                order=1)


def load(root: Path, exam) -> tuple[dict, list[dict]]:
    """All images and truth maps on the T1w grid, in RAS voxel order."""
    pre, t1w = read_image(exam.t1w)
    motion = json.loads(truth_path(root, exam, "headmotion", ".json").read_text())
    vols = {"T1w": pre}
    for seq, path in (("T2w", exam.t2w), ("FLAIR", exam.flair), ("T1w_gd", exam.t1w_gd)):
        arr, geo = read_image(path)
        vols[seq] = on_t1w(arr, geo, t1w, motion[seq]["matrix_lps"])
    for key, (suffix, ents) in {
        "enhancing": ("dseg", {"label": "L", "desc": "enhancing"}),
        "lesions": ("mask", {"label": "L", "desc": "all"}),
        "vessel": ("mask", {"label": "vessel"}),
        "WM": ("probseg", {"label": "WM"}),
    }.items():
        vols[key] = read_image(truth_path(root, exam, suffix, **ents))[0]
    rows = read_tsv(truth_path(root, exam, "lesions", ".tsv"))
    return {k: reorient(v, t1w, "RAS")[0] for k, v in vols.items()}, rows


def figure(vols: dict, rows: list[dict], out: Path, title: str) -> None:
    nawm = (vols["WM"] > 0.9) & (vols["lesions"] == 0) & (vols["vessel"] == 0)
    norm = {k: vols[k] / np.median(vols[k][nawm]) for k in ("T1w", "T2w", "FLAIR", "T1w_gd")}
    enh = vols["enhancing"] > 0
    # The axial slice showing most lesion tissue, enhancing lesions weighted up.
    k = int(np.argmax(3 * enh.sum(axis=(0, 1)) + (vols["lesions"] > 0).sum(axis=(0, 1))))
    sl = lambda a: a[:, :, k].T  # noqa: E731  (x right, y anterior up, with origin="lower")
    fig, axes = plt.subplots(2, 4, figsize=(16, 8.6), facecolor="black")
    show = dict(origin="lower", cmap="gray", interpolation="nearest")
    for ax, seq, vmax in zip(axes[0], ("T1w", "T2w", "FLAIR", "T1w_gd"), (1.4, 3.2, 2.2, 1.8),
                             strict=True):
        ax.imshow(sl(norm[seq]), vmin=0, vmax=vmax, **show)
        ax.set_title({"T1w_gd": "T1w + Gd (real post)"}.get(seq, seq), color="w")
    diff = norm["T1w_gd"] - norm["T1w"]
    axes[1, 0].imshow(sl(diff), origin="lower", cmap="RdBu_r", vmin=-0.8, vmax=0.8)
    axes[1, 0].set_title("post - pre (NAWM-normalised)", color="w")
    ax = axes[1, 1]
    ax.imshow(sl(norm["FLAIR"]), vmin=0, vmax=2.2, **show)
    for mask, colour in ((vols["lesions"] > 0, "yellow"), (enh, "red"),
                         (vols["vessel"] > 0, "cyan")):
        if sl(mask).any():
            ax.contour(sl(mask.astype(float)), [0.5], colors=colour, linewidths=0.9)
    ax.set_title("truth: lesions (yellow), enhancing (red), vessels (cyan)", color="w",
                 fontsize=9)
    # Zoom on the largest enhancing lesion of the slice.
    lab, _ = ndi.label(sl(enh))
    if lab.max():
        biggest = np.argmax(np.bincount(lab.ravel())[1:]) + 1
        cy, cx = (int(v) for v in np.mean(np.argwhere(lab == biggest), axis=0))
        win = (slice(max(cy - 20, 0), cy + 20), slice(max(cx - 20, 0), cx + 20))
        for ax, seq, vmax in ((axes[1, 2], "T1w_gd", 1.8), (axes[1, 3], "FLAIR", 2.2)):
            ax.imshow(sl(norm[seq])[win], vmin=0, vmax=vmax, **show)
            ax.contour(sl(enh.astype(float))[win], [0.5], colors="red", linewidths=0.8)
            ax.set_title(f"zoom: {seq} + enhancing truth", color="w")
    n_active = sum(r["kind"] == "active" for r in rows)
    patterns = ", ".join(sorted({r["enhancement"] for r in rows if r["kind"] == "active"}))
    fig.suptitle(f"{title}: {len(rows)} lesions, {n_active} enhancing ({patterns}); axial "
                 f"slice {k}", color="w")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("black")
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=80, facecolor="black")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=4)
    parser.add_argument("--subject", type=int, default=0, help="0-based subject index")
    parser.add_argument("--resolution", type=float, default=1.0)
    parser.add_argument("--out", type=Path, default=Path("docs/img/phantom.png"))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "phantom"
        exams = generate_dataset(root, subjects=args.subject + 1, seed=args.seed,
                                 resolution=args.resolution, active_fraction=1.0)
        exam = exams[args.subject]
        vols, rows = load(root, exam)
    figure(vols, rows, args.out, f"gdsynth phantom sub-{exam.subject} (seed {args.seed})")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
