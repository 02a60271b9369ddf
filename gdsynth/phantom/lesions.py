"""MS lesions: drawing their kind, shape, relaxation changes and enhancement, and placing them.

Lesions are ovoids (random semi-axes and orientation) centred in white matter, with a bias toward
the ventricles (periventricular) and the cortex (juxtacortical). Chronic lesions have sharp borders;
a minority are T1 black holes; some chronic lesions ("look-alikes") carry an oedema-like halo so
that activity cannot be read from the pre-contrast images alone. Active lesions have ill-defined
borders, a halo of varying strength and gadolinium enhancement (nodular when small, ring or
open-ring when larger). Times in ms, lengths in mm, concentrations in mM, positions in scanner
world LPS mm.

An alternative appearance model, ``"perivenular"`` (:func:`restyle`), changes drawn lesions after
placement: elongated ovoids (volume kept; Dawson's-finger-like), T1 changes smaller (chronic lesions
about T1-isointense, black holes milder), T2 changes larger, active lesions without an oedema halo
and with fainter, heterogeneous (patchy) enhancement and thinner peripheral rings.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from enum import Enum

import numpy as np
from scipy import ndimage as ndi

from gdsynth.phantom.anatomy import Anatomy, load_landmarks
from gdsynth.phantom.config import PhantomConfig


class Kind(str, Enum):
    """Lesion kinds written to the lesion table."""

    chronic = "chronic"
    blackhole = "blackhole"
    active = "active"


class Pattern(str, Enum):
    """Enhancement patterns."""

    none = "none"
    nodular = "nodular"
    ring = "ring"
    open_ring = "open-ring"


@dataclass(frozen=True)
class Lesion:
    """One lesion. ``border_mm`` is the edge width (sub-mm: sharp; 1-2.5 mm: ill-defined)."""

    kind: Kind
    centre: np.ndarray  # (3,) LPS mm
    radii: np.ndarray  # (3,) semi-axes, mm
    rotation: np.ndarray  # (3, 3), columns are the semi-axis directions (LPS)
    dt1_ms: float
    dt2_ms: float
    dpd: float
    border_mm: float
    smooth: bool
    halo_strength: float = 0.0  # 0..1
    halo_mm: float = 3.0
    halo_dt1_ms: float = 0.0
    halo_dt2_ms: float = 0.0
    pattern: Pattern = Pattern.none
    gd_mm: float = 0.0  # peak gadolinium concentration
    ring_pos: float = 0.8  # normalised radius of the ring
    ring_width: float = 0.15
    opening: np.ndarray | None = None  # unit vector toward the gap of an open ring
    lookalike: bool = False
    onset_session: int = 0  # first session where the lesion exists (chronic at baseline: 0)
    label: int = 0  # instance id in the enhancing dseg (active lesions), else 0
    heterogeneity: float = 0.0  # 0..1: patchy modulation of the gadolinium (perivenular model)
    texture_seed: int = 0  # seed of that modulation

    @property
    def radius_mm(self) -> float:
        """Radius of the sphere of equal volume."""
        return float(np.prod(self.radii) ** (1 / 3))

    @property
    def volume_mm3(self) -> float:
        return float(4 / 3 * np.pi * np.prod(self.radii))

    @property
    def extent_mm(self) -> float:
        """Half-size of a box holding the lesion, its soft border and its halo."""
        halo = 3 * self.halo_mm if self.halo_strength > 0 else 0.0
        return float(self.radii.max() + 3 * self.border_mm + halo + 1.0)


def _log_uniform(rng: np.random.Generator, lo: float, hi: float) -> float:
    return float(np.exp(rng.uniform(np.log(lo), np.log(hi))))


def _shape(rng: np.random.Generator, diameter: float) -> tuple[np.ndarray, np.ndarray]:
    """Semi-axes (mean diameter ``diameter``) and a random rotation."""
    aspect = np.array([rng.uniform(1.0, 1.6), 1.0, rng.uniform(0.7, 1.0)])
    radii = 0.5 * diameter * aspect / np.prod(aspect) ** (1 / 3)
    q, r = np.linalg.qr(rng.standard_normal((3, 3)))
    q = q * np.sign(np.diag(r))
    if np.linalg.det(q) < 0:
        q[:, 0] = -q[:, 0]
    return radii, q


def _halo(rng: np.random.Generator, strength: float) -> dict:
    return {"halo_strength": float(strength), "halo_mm": rng.uniform(2.0, 5.0),
            "halo_dt1_ms": rng.uniform(100, 250), "halo_dt2_ms": rng.uniform(30, 70)}


def draw_chronic(rng: np.random.Generator, config: PhantomConfig, centre: np.ndarray) -> Lesion:
    """A chronic lesion (black hole with ``blackhole_fraction``; look-alike halo sometimes)."""
    radii, rot = _shape(rng, _log_uniform(rng, *config.diameter_mm))
    if rng.random() < config.blackhole_fraction:
        kind, dt1, dt2, dpd = (Kind.blackhole, rng.uniform(600, 1200), rng.uniform(90, 160),
                               rng.uniform(0.08, 0.15))
    else:
        kind, dt1, dt2, dpd = (Kind.chronic, rng.uniform(200, 500), rng.uniform(40, 110),
                               rng.uniform(0.02, 0.08))
    lookalike = bool(rng.random() < config.lookalike_fraction)
    extra = _halo(rng, rng.uniform(0.4, 1.0)) if lookalike else {}
    border = rng.uniform(1.0, 2.0) if lookalike else rng.uniform(0.5, 0.9)
    return Lesion(kind, centre, radii, rot, dt1, dt2, dpd, border_mm=border, smooth=lookalike,
                  lookalike=lookalike, **extra)


def draw_active(
    rng: np.random.Generator, config: PhantomConfig, centre: np.ndarray, session: int
) -> Lesion:
    """An active (enhancing) lesion: smooth border, variable halo, nodular/ring enhancement."""
    lo = max(config.diameter_mm[0], config.active_min_diameter_mm)
    diameter = _log_uniform(rng, lo, max(lo, config.diameter_mm[1]))
    radii, rot = _shape(rng, diameter)
    u = rng.random()
    if diameter < config.ring_min_diameter_mm:
        pattern = Pattern.nodular if u < 0.9 else Pattern.ring
    else:
        pattern = Pattern.ring if u < 0.45 else Pattern.open_ring if u < 0.85 else Pattern.nodular
    opening = rng.standard_normal(3)
    return Lesion(
        Kind.active, centre, radii, rot,
        dt1_ms=rng.uniform(300, 700), dt2_ms=rng.uniform(50, 150), dpd=rng.uniform(0.03, 0.1),
        border_mm=rng.uniform(1.0, 2.5), smooth=True, pattern=pattern,
        gd_mm=rng.uniform(*config.gd_lesion_mm), ring_pos=rng.uniform(0.7, 0.85),
        ring_width=rng.uniform(0.12, 0.2), opening=opening / np.linalg.norm(opening),
        onset_session=session, **_halo(rng, rng.uniform(0.0, 1.0)),
    )


def heal(rng: np.random.Generator, lesion: Lesion) -> Lesion:
    """What an active lesion becomes at a later exam: chronic (sometimes a black hole), shrunk."""
    black = rng.random() < 0.25
    kind = Kind.blackhole if black else Kind.chronic
    dt1 = rng.uniform(600, 1200) if black else rng.uniform(200, 500)
    return replace(lesion, kind=kind, radii=lesion.radii * rng.uniform(0.75, 0.95), dt1_ms=dt1,
                   dt2_ms=rng.uniform(40, 110), border_mm=rng.uniform(0.5, 0.9), smooth=False,
                   halo_strength=0.0, pattern=Pattern.none, gd_mm=0.0, label=0)


def restyle(rng: np.random.Generator, lesion: Lesion) -> Lesion:
    """``lesion`` as the ``"perivenular"`` appearance model draws it (see the module docstring)."""
    long = rng.uniform(1.8, 2.8)
    radii = lesion.radius_mm * np.array([long, long**-0.5, long**-0.5])
    if lesion.kind is Kind.active:
        return replace(
            lesion, radii=radii, dt1_ms=rng.uniform(150, 350), dt2_ms=rng.uniform(90, 180),
            border_mm=rng.uniform(0.6, 1.0), halo_strength=0.0,
            gd_mm=rng.uniform(0.08, 0.3), ring_pos=rng.uniform(0.85, 0.95),
            ring_width=rng.uniform(0.06, 0.1), heterogeneity=rng.uniform(0.3, 0.7),
            texture_seed=int(rng.integers(2**31)),
        )
    black = lesion.kind is Kind.blackhole
    return replace(lesion, radii=radii,
                   dt1_ms=rng.uniform(300, 600) if black else rng.uniform(100, 300),
                   dt2_ms=rng.uniform(70, 150))


def patchy(seed: int, offsets: np.ndarray) -> np.ndarray:
    """Smooth random modulation in [0, 1] at ``offsets`` (..., 3) mm from a lesion centre: the mean
    of four plane waves of 3-6 mm wavelength, deterministic per ``seed`` (grid independent)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(offsets.shape[:-1])
    for _ in range(4):
        k = rng.standard_normal(3)
        k *= 2 * np.pi / rng.uniform(3.0, 6.0) / np.linalg.norm(k)
        out += np.cos(offsets @ k + rng.uniform(0, 2 * np.pi))
    return np.clip(0.5 + 0.5 * out / 2.0, 0.0, 1.0)


def candidate_centres(
    rng: np.random.Generator, anatomy: Anatomy, n: int = 4000
) -> tuple[np.ndarray, np.ndarray]:
    """Random white-matter points (N, 3, LPS mm) and placement weights (periventricular and
    juxtacortical white matter favoured), from template distance maps."""
    flat = np.flatnonzero(anatomy.wm.reshape(-1) > 0.8)
    pick = np.sort(rng.choice(flat, size=min(n, flat.size), replace=False))
    ijk = np.stack(np.unravel_index(pick, anatomy.wm.shape), axis=1).astype(float)
    ijk += rng.uniform(-0.5, 0.5, ijk.shape)
    points = anatomy.geometry.index_to_world(ijk)
    lm = load_landmarks()
    tpl_index = lm.geometry.world_to_index(anatomy.to_template(points)).T
    look = lambda a: ndi.map_coordinates(a, tpl_index, order=1, mode="nearest")  # noqa: E731
    d_vent, d_ctx = look(lm.d_ventricle), look(lm.d_cortex)
    weights = 0.3 + 2.0 * np.exp(-d_vent / 4.0) + 1.0 * np.exp(-d_ctx / 2.0)
    return points, weights / weights.sum()


def place(
    rng: np.random.Generator,
    candidates: tuple[np.ndarray, np.ndarray],
    size_mm: float,
    existing: list[Lesion],
    tries: int = 60,
) -> np.ndarray | None:
    """A centre at least ``size_mm`` + each neighbour's extent away from ``existing`` lesions."""
    points, weights = candidates
    for _ in range(tries):
        p = points[rng.choice(len(points), p=weights)]
        if all(np.linalg.norm(p - q.centre) > size_mm + q.radii.max() + 2.0 for q in existing):
            return p
    return None


def lesion_row(lesion: Lesion) -> dict:
    """Lesion properties for the truth table (geometry added by the caller)."""
    return {
        "label": lesion.label,
        "kind": lesion.kind.value,
        "volume_mm3": lesion.volume_mm3,
        "radius_mm": lesion.radius_mm,
        "radius_a_mm": float(lesion.radii[0]),
        "radius_b_mm": float(lesion.radii[1]),
        "radius_c_mm": float(lesion.radii[2]),
        "enhancement": lesion.pattern.value,
        "gd_concentration_mM": lesion.gd_mm,
        "t1_change_ms": lesion.dt1_ms,
        "t2_change_ms": lesion.dt2_ms,
        "pd_change": lesion.dpd,
        "border": "ill-defined" if lesion.smooth else "sharp",
        "halo_strength": lesion.halo_strength,
        "lookalike": lesion.lookalike,
        "onset_session": lesion.onset_session + 1,
    }
