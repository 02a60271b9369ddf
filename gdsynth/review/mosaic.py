"""Static PNG mosaics: a few axial slices of each sequence, the posts, and the overlays."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from gdsynth.io import atomic_path


def _slices(shape_z: int, n: int, mask: np.ndarray | None) -> list[int]:
    """``n`` axial slice indices, spread over the slab holding the lesions (else the volume)."""
    if mask is not None and mask.any():
        zs = np.nonzero(mask.any(axis=(0, 1)))[0]
        lo, hi = int(zs.min()), int(zs.max())
        if hi - lo + 1 < n:
            mid = (lo + hi) // 2
            lo, hi = max(0, mid - n), min(shape_z - 1, mid + n)
    else:
        lo, hi = int(shape_z * 0.25), int(shape_z * 0.75)
    return sorted({int(round(z)) for z in np.linspace(lo, hi, n)})


def _window(array: np.ndarray) -> tuple[float, float]:
    values = array[array != 0]
    if values.size == 0:
        return 0.0, 1.0
    lo, hi = np.percentile(values, [0.5, 99.5])
    return float(lo), float(hi if hi > lo else lo + 1)


def _radiological(slice2d: np.ndarray) -> np.ndarray:
    """(X, Y) slice of a RAS-ordered grid (i grows toward the patient's right) → display image:
    anterior at the top, patient right on screen left (radiological convention)."""
    return np.flipud(slice2d.T)[:, ::-1]


def write_mosaic(
    path: Path,
    volumes: dict[str, np.ndarray],
    *,
    enhancement: np.ndarray | None = None,
    threshold: float = 0.0,
    lesions: np.ndarray | None = None,
    n_slices: int = 5,
    title: str = "",
    base: str | None = None,
) -> Path:
    """Write a PNG grid: one row per volume (all on one RAS-ordered grid), ``n_slices`` columns.

    The last row shows ``volumes[base]`` (default: the first volume) with the enhancement map
    above ``threshold`` in colour and lesion outlines in red.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(volumes)
    first = volumes[names[0]]
    zs = _slices(first.shape[2], n_slices, lesions)
    rows = len(names) + (1 if enhancement is not None or lesions is not None else 0)
    fig, axes = plt.subplots(rows, len(zs), figsize=(1.9 * len(zs), 2.0 * rows), squeeze=False)
    fig.patch.set_facecolor("black")
    for r, name in enumerate(names):
        lo, hi = _window(volumes[name])
        for c, z in enumerate(zs):
            ax = axes[r][c]
            ax.imshow(_radiological(volumes[name][:, :, z]), cmap="gray", vmin=lo, vmax=hi)
            if c == 0:
                ax.set_title(name, color="white", fontsize=8, loc="left")
    if rows > len(names):
        under = volumes.get(base or names[0], first)
        lo, hi = _window(under)
        for c, z in enumerate(zs):
            ax = axes[-1][c]
            ax.imshow(_radiological(under[:, :, z]), cmap="gray", vmin=lo, vmax=hi)
            if enhancement is not None:
                enh = np.ma.masked_less_equal(_radiological(enhancement[:, :, z]), threshold)
                ax.imshow(enh, cmap="hot", alpha=0.6)
            if lesions is not None and lesions[:, :, z].any():
                ax.contour(_radiological(lesions[:, :, z] > 0), levels=[0.5], colors="red",
                           linewidths=0.8)
            if c == 0:
                ax.set_title("enhancement + lesions", color="white", fontsize=8, loc="left")
    for ax in axes.ravel():
        ax.set_xticks([])
        ax.set_yticks([])
        ax.set_facecolor("black")
    for c, z in enumerate(zs):
        axes[-1][c].set_xlabel(f"z={z}", color="white", fontsize=7)
    if title:
        fig.suptitle(title, color="white", fontsize=9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=90, facecolor="black", format="png")
    plt.close(fig)
    return path
