"""Site kinds that really differ, and domain randomization (one random scanner per subject).

:func:`draw_site` turns a ``randomized`` :class:`~gdsynth.phantom.config.Site` into a concrete
one, drawn per subject (SynthSeg/SynthSR practice): field strength, T1w family and its timing,
2D thick-slice or 3D T2w/FLAIR with a slice profile and gap, T1w acquired resolution, SNR, bias,
vendor storage scaling/gamma/windowing and (``randomize_lesion_model``) the lesion appearance
model. :func:`at_field` moves per-subject tissue properties from 3 T to the site's field strength.
Ranges are documented in docs/phantom-sites.md.
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from gdsynth.phantom.config import LESION_MODELS, TISSUES, TISSUES_1P5T, Site, Tissue


def at_field(tissues: dict[str, Tissue], field_strength_t: float) -> dict[str, Tissue]:
    """Per-subject tissues (drawn around the 3 T means) moved to ``field_strength_t``.

    Each subject keeps its own deviation from the mean: T1 and T2 are multiplied by the ratio of
    the field's mean to the 3 T mean (PD unchanged). 3 T returns ``tissues`` itself.
    """
    if field_strength_t == 3.0:
        return tissues
    out = {}
    for name, t in tissues.items():
        ref, new = TISSUES[name], TISSUES_1P5T[name]
        out[name] = Tissue(t.t1_ms * new.t1_ms / ref.t1_ms, t.t2_ms * new.t2_ms / ref.t2_ms, t.pd)
    return out


def lesion_t1_factor(field_strength_t: float) -> float:
    """Scale of lesion T1 prolongations at this field (the white-matter T1 ratio to 3 T)."""
    if field_strength_t == 3.0:
        return 1.0
    return TISSUES_1P5T["WM"].t1_ms / TISSUES["WM"].t1_ms


def draw_site(rng: np.random.Generator, site: Site) -> Site:
    """A concrete site drawn for one subject from a ``randomized`` one (returned unchanged else)."""
    if not site.randomized:
        return site
    u = rng.uniform
    field = 1.5 if rng.random() < 0.5 else 3.0
    mprage = rng.random() < 0.5
    if mprage:
        t1w = {"t1w_family": "mprage", "t1w_tr_ms": u(1800, 2500), "t1w_te_ms": u(2.5, 4.0),
               "t1w_flip_deg": u(7, 12), "t1w_ti_ms": u(850, 1150) * (0.85 if field == 1.5 else 1)}
    else:
        t1w = {"t1w_family": "spgr", "t1w_tr_ms": u(6, 14), "t1w_te_ms": u(2.5, 5.5),
               "t1w_flip_deg": u(10, 25), "t1w_ti_ms": 0.0}
    three_d = rng.random() < 0.3
    if three_d:
        t2 = {"t2_acquisition": "3D", "slice_mm": u(1.0, 1.5), "slice_profile": "gaussian",
              "slice_gap_mm": 0.0, "t2w_tr_ms": u(2500, 3500), "t2w_te_ms": u(90, 130),
              "flair_tr_ms": u(4800, 7000), "flair_te_ms": u(110, 160)}
    else:
        t2 = {"t2_acquisition": "2D", "slice_mm": u(2.0, 6.0),
              "slice_profile": "boxcar" if rng.random() < 0.5 else "gaussian",
              "slice_gap_mm": float(rng.choice([0.0, 0.0, 0.5, 1.0])),
              "t2w_tr_ms": u(3000, 6000), "t2w_te_ms": u(80, 120),
              "flair_tr_ms": u(7000, 11000), "flair_te_ms": u(90, 140)}
    wm_lo = float(np.exp(u(np.log(200), np.log(3000))))
    storage_max = 4095 if rng.random() < 0.3 else 32767
    wm_lo = min(wm_lo, 0.6 * storage_max)
    lesion_model = site.lesion_model
    if site.randomize_lesion_model:
        lesion_model = LESION_MODELS[int(rng.integers(len(LESION_MODELS)))]
    return replace(
        site, randomized=False, field_strength_t=field, **t1w, **t2,
        snr=float(np.exp(u(np.log(12), np.log(45)))), bias=u(0.05, 0.35),
        t1w_acquired_mm=u(1.0, 1.5) if rng.random() < 0.5 else 0.0,
        storage_wm=(wm_lo, 1.5 * wm_lo), storage_gamma=float(np.exp(u(-0.3, 0.3))),
        storage_max=storage_max, storage_clip_fraction=None, lesion_model=lesion_model,
    )
