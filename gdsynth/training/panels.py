"""Image panels for the tracker: pre, real post, synthetic post, difference, lesion outline."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def panel_figure(pre: np.ndarray, real: np.ndarray, synth: np.ndarray, lesion: np.ndarray,
                 title: str = ""):  # -> matplotlib Figure
    """One axial slice (X, Y arrays) of each image, the real−synthetic difference and the
    lesion outline on the synthetic post. Slices are shown with X horizontal."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 5, figsize=(12.5, 2.8), dpi=80)
    vmax = float(np.percentile(real, 99.5)) or 1.0
    items = [("pre T1w", pre, "gray", 0, vmax), ("real post", real, "gray", 0, vmax),
             ("synthetic post", synth, "gray", 0, vmax),
             ("real − synthetic", real - synth, "bwr", -0.5, 0.5),
             ("lesion outline", synth, "gray", 0, vmax)]
    for ax, (name, img, cmap, lo, hi) in zip(axes, items, strict=True):
        ax.imshow(img.T, cmap=cmap, vmin=lo, vmax=hi, origin="lower")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if lesion.any():
        axes[4].contour(lesion.T.astype(float), levels=[0.5], colors="r", linewidths=0.8)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return fig


def best_slice(lesion: np.ndarray, brain: np.ndarray) -> int:
    """Axial index with the most lesion voxels (else the most brain)."""
    per = lesion.reshape(-1, lesion.shape[-1]).sum(0)
    if per.max() == 0:
        per = brain.reshape(-1, brain.shape[-1]).sum(0)
    return int(np.argmax(per))


def save_figure(fig, path: Path) -> Path:
    """Save a figure as PNG atomically and close it."""
    import matplotlib.pyplot as plt

    from gdsynth.io import atomic_path

    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return path
