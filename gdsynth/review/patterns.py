"""The relevance-pattern page (``gdsynth explain --patterns``): one PNG panel and one table row
per cluster of :func:`gdsynth.explain.patterns.cluster_patterns`, a lesion table, and the TSVs.

Layout of ``OUT/``::

    patterns.html            the page (template ``patterns.html``, autoescaped)
    patterns_clusters.tsv    one row per cluster
    patterns_lesions.tsv     one row per lesion (cluster, activity, relevance by distance band)
    img/cluster-<k>.png      per sequence: mean input, mean relevance, positive and negative
                             evidence (and integrated gradients when computed)
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from gdsynth.explain.patterns import BANDS, LESION_COLUMNS, Cluster, LesionPattern, pattern_rows
from gdsynth.io import atomic_path, atomic_write_text, write_tsv
from gdsynth.review.render import copy_static, render

PAGE = "patterns.html"
BAND_TITLES = {"lesion": "lesion", "shell_0_3mm": "0–3 mm", "shell_3_6mm": "3–6 mm",
               "elsewhere": "> 6 mm"}


def write_cluster_png(path: Path, cluster: Cluster, sequences: Sequence[str],
                      half_width_mm: float) -> Path:
    """Rows: sequences; columns: mean input, mean relevance (red +, blue −), positive evidence,
    negative evidence, [integrated gradients]. Relevance panels share one symmetric scale."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cols = ["input", "relevance", "positive evidence", "negative evidence"]
    if cluster.mean_ig is not None:
        cols.append("integrated gradients")
    fig, axes = plt.subplots(len(sequences), len(cols), figsize=(1.7 * len(cols), 1.8 * len(sequences)),
                             squeeze=False)
    vmax = float(np.abs(cluster.mean_relevance).max()) or 1.0
    ig_max = float(np.abs(cluster.mean_ig).max() or 1.0) if cluster.mean_ig is not None else 1.0
    ext = [-half_width_mm, half_width_mm, -half_width_mm, half_width_mm]
    for r, seq in enumerate(sequences):
        panels = [(cluster.mean_image[r], "gray", None, None),
                  (cluster.mean_relevance[r], "bwr", -vmax, vmax),
                  (cluster.mean_positive[r], "Reds", 0, vmax),
                  (-cluster.mean_negative[r], "Blues", 0, vmax)]
        if cluster.mean_ig is not None:
            panels.append((cluster.mean_ig[r], "PiYG", -ig_max, ig_max))
        for c, (img, cmap, lo, hi) in enumerate(panels):
            ax = axes[r][c]
            ax.imshow(img.T, cmap=cmap, vmin=lo, vmax=hi, origin="lower", extent=ext)
            ax.plot([0], [0], "+", color="lime", ms=5)
            ax.set_xticks([])
            ax.set_yticks([])
            if r == 0:
                ax.set_title(cols[c], fontsize=7)
            if c == 0:
                ax.set_ylabel(seq, fontsize=8)
    fig.suptitle(f"cluster {cluster.id}: {cluster.n} lesion(s); patch ±{half_width_mm:.0f} mm",
                 fontsize=8)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=80, format="png")
    plt.close(fig)
    return path


def cluster_rows(clusters: Sequence[Cluster], sequences: Sequence[str],
                 describe: Sequence[str] = ()) -> list[dict[str, Any]]:
    """One row per cluster: size, activity, band shares, per-sequence signed band shares, and the
    ``describe`` info keys (means or commonest value)."""
    rows = []
    for c in clusters:
        known = c.n_known
        row: dict[str, Any] = {
            "cluster": c.id, "n_lesions": c.n, "n_active": c.n_active if known else "n/a",
            "fraction_active": c.n_active / known if known else "n/a",
            **{f"abs_{b}": v for b, v in c.band_fractions().items()},
        }
        for s, bands in c.sequence_bands(sequences).items():
            row.update({f"R_{s}_{b}": v for b, v in bands.items()})
        row.update(c.describe(describe))
        rows.append(row)
    return rows


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.2f}" if np.isfinite(v) else "n/a"
    return str(v)


def _region_text(clustering: dict[str, Any]) -> str:
    """What the clustering compared, in words (``cluster_patterns``' info)."""
    if clustering.get("region") == "context":
        return (f"the relevance beyond {float(clustering.get('shell_mm') or 0):g} mm of each "
                f"lesion (its context)")
    return "each lesion's whole aligned relevance map"


def write_pattern_page(out: Path, patterns: Sequence[LesionPattern], clusters: Sequence[Cluster],
                       sequences: Sequence[str], *, clustering: dict[str, Any],
                       title: str = "Relevance patterns", describe: Sequence[str] = (),
                       notes: Sequence[str] = ()) -> Path:
    """Write the page, its PNG panels and TSVs into ``out``; return the page's path."""
    out = Path(out)
    (out / "img").mkdir(parents=True, exist_ok=True)
    copy_static(out / "static")
    crows = cluster_rows(clusters, sequences, describe)
    write_tsv(out / "patterns_clusters.tsv", crows)
    lrows = pattern_rows(patterns, sequences)
    extra = sorted({k for r in lrows for k in r} - set(LESION_COLUMNS))
    write_tsv(out / "patterns_lesions.tsv", lrows, (*LESION_COLUMNS, *extra))
    cards = []
    for c, row in zip(clusters, crows, strict=True):
        half = float(np.median([m.half_width_mm for m in c.members]))
        png = write_cluster_png(out / "img" / f"cluster-{c.id}.png", c, sequences, half)
        cards.append({
            "id": c.id, "n": c.n, "active": _fmt(row["n_active"]),
            "fraction": _fmt(row["fraction_active"]), "png": f"img/{png.name}",
            "bands": [_fmt(row[f"abs_{b}"]) for b in BANDS],
            "seq_bands": [(s, [_fmt(row[f"R_{s}_{b}"]) for b in BANDS]) for s in sequences],
            "describe": [(k, row[k]) for k in describe],
            "members": ", ".join(f"{m.exam}#{m.label}" for m in c.members[:12])
                       + (" …" if c.n > 12 else ""),
        })
    lesions = [{"exam": r["exam"], "label": r["label"], "cluster": r["cluster"],
                "active": r["active"], "output": _fmt(r["output"]),
                "conservation": _fmt(r["conservation"]),
                "bands": [_fmt(r[f"abs_{b}"]) for b in BANDS]} for r in lrows]
    html = render(PAGE, static="static/", title=title, n_lesions=len(patterns),
                  clustering={"k": clustering.get("n_clusters"),
                              "by": clustering.get("chosen_by", ""),
                              "region": _region_text(clustering),
                              "eig": ", ".join(f"{v:.3f}" for v in clustering.get("eigenvalues", []))},
                  sequences=list(sequences), band_titles=[BAND_TITLES[b] for b in BANDS],
                  clusters=cards, lesions=lesions, notes=list(notes))
    page = atomic_write_text(out / PAGE, html)
    for f in out.rglob("*"):
        f.chmod(0o755 if f.is_dir() else 0o644)
    return page


def copy_pattern_page(pred: Path, site: Path) -> str | None:
    """Copy ``pred/patterns/`` (written by ``gdsynth explain --patterns``) into ``site/patterns``;
    return the page's link relative to the site root, or None when there is no pattern page."""
    import shutil

    src = Path(pred) / "patterns"
    if not (src / PAGE).is_file():
        return None
    dst = Path(site) / "patterns"
    if dst.exists():
        shutil.rmtree(dst)
    shutil.copytree(src, dst)
    return f"patterns/{PAGE}"
