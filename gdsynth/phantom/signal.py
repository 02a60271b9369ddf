"""MR signal: per-subject tissue properties, per-exam sequence parameters, signal equations.

Partial volume is modelled by mixing the *signals* of the tissues in a voxel (WM, GM, CSF from the
probability maps, blood in vessels, choroid plexus tissue in the ventricles). Lesions add to the
T1, T2 and PD of the parenchyma they lie in (WM, and GM with half the T1 change); gadolinium
shortens T1 as ``1/T1_post = 1/T1_pre + r1 * C``. Only the post-contrast T1w sees gadolinium (T2w and FLAIR are
acquired before the injection). Times in ms, concentrations in mM.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np

from gdsynth.phantom.config import TISSUES, PhantomConfig, Site, Tissue

SEQUENCES = ("T1w", "T1w_gd", "T2w", "FLAIR")
#: Sequences the phantom adds on request (``PhantomConfig.extra_sequences``; named by the
#: sequence registry, where the caller registers them): ``PD``, a proton-density weighted spin
#: echo (long TR, short TE: T1 and T2 weighting small, lesions faintly bright from their water).
EXTRA_SEQUENCES = ("PD",)
PD_TR_MS = 3000.0
PD_TE_MS = 15.0
_T2STAR_FACTOR = 0.7  # T2* ~ 0.7 T2 for the gradient-echo T1w
# Grey matter already has a long T1: the full WM lesion T1 change would push GM lesions toward the
# FLAIR null point and hide them, while real (deep) grey-matter lesions stay FLAIR-bright.
_GM_LESION_T1_FACTOR = 0.5


@dataclass(frozen=True)
class Protocol:
    """One exam's acquisition parameters (ms, degrees, mm) and image quality."""

    t1w_tr_ms: float
    t1w_te_ms: float
    t1w_flip_deg: float
    t2w_tr_ms: float
    t2w_te_ms: float
    flair_tr_ms: float
    flair_te_ms: float
    flair_ti_ms: float
    slice_mm: float
    snr: float
    bias: float
    t1w_family: str = "spgr"
    t1w_ti_ms: float = 0.0  # MPRAGE-like inversion time (0 for spoiled GRE)

    def to_dict(self) -> dict:
        return asdict(self)


def draw_tissues(rng: np.random.Generator, jitter: float) -> dict[str, Tissue]:
    """Per-subject tissue properties: each mean value times ``1 + N(0, jitter)`` (clipped)."""
    out = {}
    for name, t in TISSUES.items():
        f = np.clip(1.0 + jitter * rng.standard_normal(3), 0.8, 1.2)
        out[name] = Tissue(t.t1_ms * f[0], t.t2_ms * f[1], min(t.pd * f[2], 1.0))
    return out


def draw_protocol(
    rng: np.random.Generator, site: Site, config: PhantomConfig
) -> Protocol:
    """Jitter the site defaults (TR/TE/TI +/-3 %, flip +/-1 deg, SNR +/-15 %) for one exam.

    The FLAIR inversion time is set to null the *nominal* CSF T1 (the scanner does not know the
    subject's), so nulling is imperfect as in real scans. A 2D slice is at least two in-plane
    voxels thick; a 3D T2w/FLAIR voxel at least one. Draws for the original sites are unchanged
    (the MPRAGE inversion time is drawn last, only for MPRAGE-like sites).
    """
    j = lambda v, s=0.03: float(v * (1.0 + s * rng.standard_normal()))  # noqa: E731
    flair_tr = j(site.flair_tr_ms)
    t1_csf = TISSUES["CSF"].t1_ms
    ti = t1_csf * np.log(2.0 / (1.0 + np.exp(-flair_tr / t1_csf)))
    protocol = Protocol(
        t1w_tr_ms=j(site.t1w_tr_ms),
        t1w_te_ms=j(site.t1w_te_ms),
        t1w_flip_deg=float(site.t1w_flip_deg + rng.normal(0, 1.0)),
        t2w_tr_ms=j(site.t2w_tr_ms),
        t2w_te_ms=j(site.t2w_te_ms),
        flair_tr_ms=flair_tr,
        flair_te_ms=j(site.flair_te_ms),
        flair_ti_ms=j(ti, 0.02),
        slice_mm=max(site.slice_mm, (2.0 if site.t2_acquisition == "2D" else 1.0)
                     * config.resolution),
        snr=float(site.snr * config.snr_scale * rng.uniform(0.85, 1.15)),
        bias=float(site.bias * config.bias_scale * rng.uniform(0.8, 1.2)),
    )
    if site.t1w_family == "mprage":
        protocol = replace(protocol, t1w_family="mprage", t1w_ti_ms=j(site.t1w_ti_ms))
    return protocol


def spoiled_gre(pd, t1, t2, tr, te, flip_deg):
    """Spoiled gradient echo: PD sin(a) (1 - E1) / (1 - cos(a) E1) exp(-TE / T2*)."""
    a = np.deg2rad(flip_deg)
    e1 = np.exp(-tr / t1)
    return pd * np.sin(a) * (1 - e1) / (1 - np.cos(a) * e1) * np.exp(-te / (_T2STAR_FACTOR * t2))


def mprage(pd, t1, t2, tr, te, ti, flip_deg):
    """MPRAGE-like inversion-prepared gradient echo (magnitude), the single-readout approximation:
    PD sin(a) |1 - 2 exp(-TI / T1) + exp(-TR / T1)| exp(-TE / T2*), TR the inversion repetition
    time. Grey/white contrast is stronger than spoiled GRE; CSF is near its null."""
    a = np.deg2rad(flip_deg)
    inv = np.abs(1 - 2 * np.exp(-ti / t1) + np.exp(-tr / t1))
    return pd * np.sin(a) * inv * np.exp(-te / (_T2STAR_FACTOR * t2))


def spin_echo(pd, t1, t2, tr, te):
    """Spin echo: PD (1 - exp(-TR / T1)) exp(-TE / T2)."""
    return pd * (1 - np.exp(-tr / t1)) * np.exp(-te / t2)


def flair(pd, t1, t2, tr, te, ti):
    """Inversion recovery (magnitude): PD |1 - 2 exp(-TI / T1) + exp(-TR / T1)| exp(-TE / T2)."""
    return pd * np.abs(1 - 2 * np.exp(-ti / t1) + np.exp(-tr / t1)) * np.exp(-te / t2)


def signal(sequence: str, pd, t1, t2, protocol: Protocol, gd_mm=0.0, relaxivity: float = 4.5):
    """Noise-free signal of one of :data:`SEQUENCES` or :data:`EXTRA_SEQUENCES`; ``gd_mm`` only
    acts on ``T1w_gd``."""
    p = protocol
    if sequence in ("T1w", "T1w_gd"):
        if sequence == "T1w_gd":
            t1 = 1.0 / (1.0 / t1 + relaxivity * 1e-3 * gd_mm)  # r1 in 1/(mM s), T1 in ms
        if p.t1w_family == "mprage":
            return mprage(pd, t1, t2, p.t1w_tr_ms, p.t1w_te_ms, p.t1w_ti_ms, p.t1w_flip_deg)
        return spoiled_gre(pd, t1, t2, p.t1w_tr_ms, p.t1w_te_ms, p.t1w_flip_deg)
    if sequence == "T2w":
        return spin_echo(pd, t1, t2, p.t2w_tr_ms, p.t2w_te_ms)
    if sequence == "FLAIR":
        return flair(pd, t1, t2, p.flair_tr_ms, p.flair_te_ms, p.flair_ti_ms)
    if sequence == "PD":
        return spin_echo(pd, t1, t2, PD_TR_MS, PD_TE_MS)
    raise ValueError(f"unknown sequence {sequence!r}; choose from "
                     f"{', '.join((*SEQUENCES, *EXTRA_SEQUENCES))}")


@dataclass(frozen=True)
class Modifiers:
    """Voxel-wise changes on the anatomy grid (float32, (X, Y, Z))."""

    dt1: np.ndarray  # ms, added to WM/GM T1 (lesions, oedema)
    dt2: np.ndarray  # ms
    dpd: np.ndarray
    gd: np.ndarray  # mM, lesion gadolinium (post only)
    vessel: np.ndarray  # blood volume fraction (vessels, sinus)
    choroid: np.ndarray  # fraction of CSF replaced by choroid plexus


def render_sequence(
    sequence: str,
    fractions: tuple[np.ndarray, np.ndarray, np.ndarray],
    tissues: dict[str, Tissue],
    mods: Modifiers,
    protocol: Protocol,
    concentrations: dict[str, float],
    relaxivity: float,
) -> tuple[np.ndarray, float]:
    """Noise-free image of ``sequence`` on the anatomy grid, and the pure-WM signal level.

    ``fractions`` are the WM, GM, CSF maps; ``concentrations`` holds ``blood``, ``choroid``,
    ``WM`` and ``GM`` (mM; normal tissue enhances by its blood volume). Returns float32 (X, Y, Z).
    """
    post = sequence == "T1w_gd"
    conc = concentrations if post else dict.fromkeys(concentrations, 0.0)

    def s(name: str, dt1=0.0, dt2=0.0, dpd=0.0, extra_gd=0.0):
        t = tissues[name]
        return signal(sequence, t.pd + dpd, t.t1_ms + dt1, t.t2_ms + dt2, protocol,
                      conc.get(name, 0.0) + extra_gd, relaxivity)

    base = {k: float(s(k)) for k in ("WM", "GM", "CSF")}
    wm, gm, csf = fractions
    out = wm * np.float32(base["WM"])
    out += gm * np.float32(base["GM"])
    out += csf * np.float32(base["CSF"])
    touched = (mods.dt1 != 0) | (mods.vessel > 0) | (mods.choroid > 0)
    if post:
        touched |= mods.gd > 0
    idx = np.flatnonzero(touched)
    if idx.size:
        take = lambda a: a.reshape(-1)[idx].astype(np.float64)  # noqa: E731
        dt1, dt2, dpd = take(mods.dt1), take(mods.dt2), take(mods.dpd)
        gd = take(mods.gd) if post else 0.0
        paren = take(wm) * s("WM", dt1, dt2, dpd, gd)
        paren += take(gm) * s("GM", _GM_LESION_T1_FACTOR * dt1, dt2, dpd, gd)
        cp = take(mods.choroid)
        paren += take(csf) * ((1 - cp) * base["CSF"] + cp * s("choroid"))
        v = take(mods.vessel)
        out.reshape(-1)[idx] = ((1 - v) * paren + v * s("blood")).astype(np.float32)
    return out, base["WM"]
