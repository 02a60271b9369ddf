"""Pattern discovery over a cohort: spectral relevance analysis (SpRAy) of lesion relevance maps.

After Lapuschkin et al. (Nature Communications 2019, "Unmasking Clever Hans predictors"), extended
from one class score to a lesion's synthetic enhancement:

1. every lesion's enhancement is explained by LRP (:mod:`gdsynth.explain.lrp`); the relevance of
   its input slab (all context slices) is summed along z, giving one in-plane map per sequence;
2. the maps are **aligned on the lesion**: resampled on a ``size × size`` grid centred on the
   lesion's centroid (:class:`Alignment`): ``lesion`` (default), half-width
   ``max(min_half_width_mm, scale × r)`` with ``r`` the lesion's equivalent-sphere radius (so
   small and large lesions are compared at the same relative scale, but the grid always reaches
   ``min_half_width_mm`` around the lesion); ``mm``, a fixed ±``min_half_width_mm`` window, so
   that something at a fixed distance and direction from every lesion (a spurious cue, a
   neighbouring structure) lands on the same pixels whatever the lesion's size. The input images
   are sampled the same way at the centroid slice, and so is the in-plane distance (mm) from the
   lesion's footprint;
3. each lesion's relevance patches (all sequences, 2×2 average-pooled; :class:`PatternRegion`:
   ``all`` the whole window, ``context`` only the relevance beyond ``shell_mm`` of the lesion —
   *what outside the lesion* drives its enhancement, the question of a Clever-Hans check, where
   the lesion's own relevance would otherwise dominate every map) are divided by their total
   absolute relevance and **clustered**: a symmetric k-nearest-neighbour affinity graph
   (``k = round(√n)``, at least 2), the number of clusters chosen by the largest eigengap of its
   normalized Laplacian (2 … ``max_clusters``) as in SpRAy, then scikit-learn's
   ``SpectralClustering`` on that affinity;
4. per cluster: the number of lesions, how many are truly active (when known), mean relevance
   (positive and negative evidence separately), mean input patch per sequence, and where the
   relevance falls by distance from the lesion (:data:`BANDS`).

Arrays follow :mod:`gdsynth.explain.attribution`: volume ``(S, X, Y, Z)``, masks ``(X, Y, Z)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum
from typing import TYPE_CHECKING, Any

import numpy as np

from gdsynth.errors import ConfigError, parse_choice

if TYPE_CHECKING:
    from torch import nn

#: Distance bands (mm from the lesion mask): name -> (lower, upper], the lesion itself first.
BANDS: dict[str, tuple[float, float]] = {
    "lesion": (-1.0, 0.0), "shell_0_3mm": (0.0, 3.0), "shell_3_6mm": (3.0, 6.0),
    "elsewhere": (6.0, float("inf")),
}

#: Relevance within this distance (mm) of the lesion is left out of ``context`` clustering.
DEFAULT_SHELL_MM = 3.0


class Alignment(str, Enum):
    """How a lesion's window is sized (see the module doc)."""

    lesion = "lesion"  # scaled to the lesion: ±max(min_half_width_mm, scale × r)
    mm = "mm"  # a fixed ±min_half_width_mm window


class PatternRegion(str, Enum):
    """Which part of the aligned relevance the clustering compares (see the module doc)."""

    all = "all"  # the whole window
    context = "context"  # beyond shell_mm of the lesion


@dataclass
class LesionPattern:
    """One lesion's aligned relevance: ``relevance``/``image``/``ig`` ``(S, size, size)``;
    ``bands``: sequence → band → signed relevance summed in that band; ``output``: the explained
    enhancement (sum over the lesion); ``distance``: ``(size, size)`` in-plane distance (mm) from
    the lesion's footprint (``None``: a disc of ``radius_mm`` stands for it); ``info``: free
    columns (truth, detection) for the tables."""

    exam: str
    label: int
    active: bool | None
    relevance: np.ndarray
    image: np.ndarray
    bands: dict[str, dict[str, float]]
    output: float
    conservation: float
    radius_mm: float
    half_width_mm: float
    ig: np.ndarray | None = None
    info: dict[str, Any] = field(default_factory=dict)
    cluster: int = -1
    distance: np.ndarray | None = None

    def distance_map(self) -> np.ndarray:
        """``distance``, or the distance from a disc of ``radius_mm`` at the centre."""
        if self.distance is not None:
            return self.distance
        size = self.relevance.shape[-1]
        off = np.linspace(-self.half_width_mm, self.half_width_mm, size)
        r = np.sqrt(off[:, None] ** 2 + off[None, :] ** 2)
        return np.clip(r - self.radius_mm, 0.0, None)

    def band_fractions(self) -> dict[str, float]:
        """Share of the absolute relevance (all sequences) in each band — from the band sums of
        absolute values stored under the ``abs`` key."""
        tot = sum(self.bands["abs"].values())
        return {b: (v / tot if tot > 0 else 0.0) for b, v in self.bands["abs"].items()}


def equivalent_radius_mm(mask: np.ndarray, spacing: Sequence[float]) -> float:
    """Radius (mm) of the sphere with the volume of ``mask``."""
    volume = float(mask.sum()) * float(np.prod(spacing))
    return float((3.0 * volume / (4.0 * np.pi)) ** (1.0 / 3.0))


def sample_patch(plane: np.ndarray, centre: Sequence[float], half_width_mm: float,
                 spacing: Sequence[float], size: int, *, outside: str = "zero") -> np.ndarray:
    """``(size, size)`` bilinear samples of ``plane`` (X, Y) on a grid of ±``half_width_mm``
    around ``centre`` (voxel coordinates); outside the plane zero (``outside="zero"``) or the
    nearest edge value (``"edge"``)."""
    from scipy.ndimage import map_coordinates

    offs = np.linspace(-half_width_mm, half_width_mm, size)
    gx = centre[0] + offs[:, None] / spacing[0] + 0 * offs[None, :]
    gy = centre[1] + offs[None, :] / spacing[1] + 0 * offs[:, None]
    mode = {"zero": "constant", "edge": "nearest"}[outside]
    return map_coordinates(plane, [gx, gy], order=1, mode=mode, cval=0.0).astype(np.float32)


def band_sums(relevance: np.ndarray, mask: np.ndarray, spacing: Sequence[float],
              sequences: Sequence[str]) -> dict[str, dict[str, float]]:
    """Signed relevance per sequence and band, ``abs_<seq>``: absolute relevance per band of each
    sequence, and ``abs``: absolute relevance per band (all sequences); ``relevance``
    ``(S, x, y, z)`` and ``mask`` ``(x, y, z)`` on the same crop."""
    from scipy.ndimage import distance_transform_edt

    dist = distance_transform_edt(~mask, sampling=spacing)
    out: dict[str, dict[str, float]] = {k: {} for s in sequences for k in (s, f"abs_{s}")}
    out["abs"] = {}
    total_abs = np.abs(relevance).sum(0)
    for band, (lo, hi) in BANDS.items():
        sel = mask if band == "lesion" else (dist > lo) & (dist <= hi)
        for i, s in enumerate(sequences):
            out[s][band] = float(relevance[i][sel].sum())
            out[f"abs_{s}"][band] = float(np.abs(relevance[i][sel]).sum())
        out["abs"][band] = float(total_abs[sel].sum())
    return out


def lesion_pattern(
    generator: nn.Module, volume: np.ndarray, mask: np.ndarray, spacing: Sequence[float], *,
    sequences: Sequence[str], mode: str, context: int = 0, residual: bool = True,
    exam: str = "", label: int = 0, active: bool | None = None, size: int = 32,
    scale: float = 4.0, min_half_width_mm: float = 15.0, epsilon: float | None = None,
    ig_steps: int = 0, baseline: np.ndarray | None = None, info: dict[str, Any] | None = None,
    alignment: Alignment | str = Alignment.lesion,
) -> tuple[LesionPattern, np.ndarray]:
    """Explain one lesion ``mask`` of ``volume`` by LRP (and integrated gradients when
    ``ig_steps``; ``baseline`` is then the baseline volume) and align it (``alignment``, see the
    module doc).

    Returns the pattern and the full-volume relevance ``(S, X, Y, Z)`` (zero outside the region
    the generator saw) for analyses that need it (e.g. relevance near a known spurious cue)."""
    from scipy.ndimage import distance_transform_edt

    from gdsynth.explain.attribution import integrated_gradients, make_forward, slab_of
    from gdsynth.explain.exam import add_slab
    from gdsynth.explain.lrp import DEFAULT_EPSILON, lrp
    from gdsynth.inference.predictor import module_device

    seqs = list(sequences)
    fixed = parse_choice(Alignment, alignment, "pattern alignment") is Alignment.mm
    t1w = seqs.index("T1w") if "T1w" in seqs else 0
    fwd, region = make_forward(generator, mask, mode=mode, context=context, residual=residual,
                               t1w_index=t1w)
    device = module_device(generator)
    fwd = fwd.to(device)
    slab = slab_of(volume, region).to(device)
    rel = lrp(fwd, slab, epsilon=DEFAULT_EPSILON if epsilon is None else epsilon)
    full = np.zeros(volume.shape, np.float32)
    add_slab(full, region, rel.relevance.cpu().numpy())
    crop = (slice(None), region.x, region.y)
    zs = np.unique(region.z_in)
    rel_crop = full[crop][..., zs]
    bands = band_sums(rel_crop, mask[region.x, region.y][..., zs], spacing, seqs)
    radius = equivalent_radius_mm(mask, spacing)
    half = min_half_width_mm if fixed else max(min_half_width_mm, scale * radius)
    centre = np.argwhere(mask).mean(0)
    proj = full.sum(-1)
    zc = int(round(centre[2]))
    patches = np.stack([sample_patch(proj[i], centre, half, spacing, size) for i in range(len(seqs))])
    images = np.stack([sample_patch(volume[i][..., zc], centre, half, spacing, size)
                       for i in range(len(seqs))])
    footprint = distance_transform_edt(~mask.any(-1), sampling=spacing[:2]).astype(np.float32)
    distance = sample_patch(footprint, centre, half, spacing, size, outside="edge")
    ig_patch = None
    if ig_steps:
        was = generator.training
        generator.eval()
        try:
            base = slab_of(baseline if baseline is not None else volume, region).to(device)
            _, attr, _ = integrated_gradients(fwd, slab, base, n_steps=ig_steps)
        finally:
            generator.train(was)
        ig_full = np.zeros(volume.shape, np.float32)
        add_slab(ig_full, region, attr.detach().cpu().numpy())
        ig_proj = ig_full.sum(-1)
        ig_patch = np.stack([sample_patch(ig_proj[i], centre, half, spacing, size)
                             for i in range(len(seqs))])
    return LesionPattern(exam, int(label), active, patches, images, bands, rel.output,
                         rel.conservation, radius, half, ig_patch, dict(info or {}),
                         distance=distance), full


def features(patterns: Sequence[LesionPattern], region: PatternRegion | str = PatternRegion.all,
             shell_mm: float = DEFAULT_SHELL_MM) -> np.ndarray:
    """``(n, d)`` clustering features: 2×2-pooled relevance patches (``context``: zero within
    ``shell_mm`` of the lesion), each lesion scaled to unit total absolute relevance."""
    context = parse_choice(PatternRegion, region, "pattern region") is PatternRegion.context
    rows = []
    for p in patterns:
        r = p.relevance
        if context:
            r = np.where(p.distance_map()[None] > shell_mm, r, 0.0)
        s, h, w = r.shape
        pooled = r[:, : h // 2 * 2, : w // 2 * 2].reshape(s, h // 2, 2, w // 2, 2).mean((2, 4))
        tot = float(np.abs(pooled).sum())
        rows.append((pooled / tot if tot > 0 else pooled).ravel())
    return np.asarray(rows, np.float64)


def knn_affinity(x: np.ndarray, n_neighbors: int | None = None) -> np.ndarray:
    """Symmetric 0/1 k-nearest-neighbour affinity (Euclidean), ``k = round(√n)`` by default."""
    n = len(x)
    k = n_neighbors or max(2, int(round(np.sqrt(n))))
    k = min(k, n - 1)
    d = ((x[:, None, :] - x[None, :, :]) ** 2).sum(-1)
    np.fill_diagonal(d, np.inf)
    a = np.zeros((n, n))
    idx = np.argsort(d, axis=1)[:, :k]
    a[np.repeat(np.arange(n), k), idx.ravel()] = 1.0
    return np.maximum(a, a.T)


def eigengap_clusters(affinity: np.ndarray, max_clusters: int = 8) -> tuple[int, np.ndarray]:
    """SpRAy's choice of the number of clusters: the largest gap between consecutive eigenvalues
    of the normalized graph Laplacian (2 … max_clusters); returns ``(k, eigenvalues)``."""
    from scipy.sparse.csgraph import laplacian

    lap = laplacian(affinity, normed=True)
    eig = np.sort(np.linalg.eigvalsh(lap))
    top = min(max_clusters, len(eig) - 1)
    if top < 2:
        return 1, eig
    gaps = np.diff(eig[: top + 1])  # gaps[k-1] = λ_k − λ_{k−1}: k clusters before the gap
    k = int(np.argmax(gaps[1:top]) + 2) if top >= 2 else 1
    return k, eig


def spectral_clusters(x: np.ndarray, n_clusters: int | None = None, max_clusters: int = 8,
                      seed: int = 0) -> tuple[np.ndarray, dict[str, Any]]:
    """Cluster the rows of ``x`` (see module doc); returns labels and how the clustering went."""
    from sklearn.cluster import SpectralClustering

    n = len(x)
    if n < 3:
        return np.zeros(n, int), {"n_clusters": 1, "eigenvalues": [], "chosen_by": "too few"}
    aff = knn_affinity(x)
    k_gap, eig = eigengap_clusters(aff, max_clusters)
    k = min(int(n_clusters), n - 1) if n_clusters else k_gap
    info = {"n_clusters": k, "eigenvalues": [float(v) for v in eig[: max_clusters + 1]],
            "chosen_by": "given" if n_clusters else "eigengap"}
    if k < 2:
        return np.zeros(n, int), info
    sc = SpectralClustering(n_clusters=k, affinity="precomputed", random_state=seed,
                            assign_labels="cluster_qr")
    labels = sc.fit_predict(aff)
    # renumber by decreasing size (cluster 0 the largest)
    order = [c for c, _ in sorted(((c, -int((labels == c).sum())) for c in set(labels)),
                                  key=lambda t: (t[1], t[0]))]
    remap = {c: i for i, c in enumerate(order)}
    return np.array([remap[c] for c in labels]), info


@dataclass
class Cluster:
    """Summary of one cluster (arrays ``(S, size, size)``)."""

    id: int
    members: list[LesionPattern]
    mean_relevance: np.ndarray
    mean_positive: np.ndarray
    mean_negative: np.ndarray
    mean_image: np.ndarray
    mean_ig: np.ndarray | None

    @property
    def n(self) -> int:
        return len(self.members)

    @property
    def n_known(self) -> int:
        return sum(m.active is not None for m in self.members)

    @property
    def n_active(self) -> int:
        return sum(bool(m.active) for m in self.members)

    def band_fractions(self) -> dict[str, float]:
        """Mean over members of each band's share of absolute relevance."""
        fr = [m.band_fractions() for m in self.members]
        return {b: float(np.mean([f[b] for f in fr])) for b in BANDS}

    def sequence_bands(self, sequences: Sequence[str]) -> dict[str, dict[str, float]]:
        """Per sequence and band: mean over members of the signed relevance in the band divided by
        the member's total absolute relevance (so lesions weigh equally)."""
        out: dict[str, dict[str, float]] = {}
        for s in sequences:
            out[s] = {}
            for b in BANDS:
                vals = [m.bands[s][b] / max(sum(m.bands["abs"].values()), 1e-12)
                        for m in self.members]
                out[s][b] = float(np.mean(vals))
        return out

    def describe(self, keys: Sequence[str]) -> dict[str, str]:
        """Per ``info`` key: the mean (numbers) or the commonest value with its share."""
        out = {}
        for key in keys:
            vals = [m.info.get(key) for m in self.members if m.info.get(key) not in (None, "")]
            if not vals:
                out[key] = "n/a"
                continue
            nums = [_number(v) for v in vals]
            if all(v is not None for v in nums):
                out[key] = f"{np.mean(nums):.3g}"
            else:
                values, counts = np.unique([str(v) for v in vals], return_counts=True)
                best = int(np.argmax(counts))
                out[key] = f"{values[best]} ({counts[best] / len(vals):.0%})"
        return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool):
        return float(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v if np.isfinite(v) else None


def cluster_patterns(patterns: Sequence[LesionPattern], n_clusters: int | None = None,
                     max_clusters: int = 8, seed: int = 0,
                     region: PatternRegion | str = PatternRegion.all,
                     shell_mm: float = DEFAULT_SHELL_MM) -> tuple[list[Cluster], dict[str, Any]]:
    """Spectral clustering of the patterns' ``region`` (sets each ``cluster``); clusters by
    decreasing size. The returned info records the region (and ``shell_mm`` for ``context``)."""
    region = parse_choice(PatternRegion, region, "pattern region")
    if shell_mm < 0:
        raise ConfigError(None, f"pattern shell must be >= 0 mm, got {shell_mm}")
    where = {"region": region.value, "shell_mm": shell_mm if region is PatternRegion.context
             else None}
    if not patterns:
        return [], {"n_clusters": 0, "eigenvalues": [], "chosen_by": "no lesions", **where}
    labels, info = spectral_clusters(features(patterns, region, shell_mm), n_clusters,
                                     max_clusters, seed)
    info.update(where)
    clusters = []
    for c in sorted(set(labels.tolist())):
        members = [p for p, lab in zip(patterns, labels, strict=True) if lab == c]
        for m in members:
            m.cluster = int(c)
        norm = [m.relevance / max(float(np.abs(m.relevance).sum()), 1e-12) for m in members]
        rel = np.mean(norm, 0)
        igs = [m.ig / max(float(np.abs(m.ig).sum()), 1e-12) for m in members if m.ig is not None]
        clusters.append(Cluster(int(c), members, rel,
                                np.mean([np.clip(r, 0, None) for r in norm], 0),
                                np.mean([np.clip(r, None, 0) for r in norm], 0),
                                np.mean([m.image for m in members], 0),
                                np.mean(igs, 0) if igs else None))
    return clusters, info


LESION_COLUMNS = ("exam", "label", "cluster", "active", "output", "conservation", "radius_mm",
                  "half_width_mm", *(f"abs_{b}" for b in BANDS))


def pattern_rows(patterns: Sequence[LesionPattern], sequences: Sequence[str]) -> list[dict]:
    """One table row per lesion: cluster, activity, band shares, signed band sums, info."""
    rows = []
    for p in patterns:
        row = {"exam": p.exam, "label": p.label, "cluster": p.cluster,
               "active": "n/a" if p.active is None else str(bool(p.active)).lower(),
               "output": p.output, "conservation": p.conservation, "radius_mm": p.radius_mm,
               "half_width_mm": p.half_width_mm,
               **{f"abs_{b}": v for b, v in p.band_fractions().items()}}
        for s in sequences:
            row.update({f"R_{s}_{b}": p.bands[s][b] for b in BANDS})
        row.update({k: v for k, v in p.info.items() if k not in row})
        rows.append(row)
    return rows
