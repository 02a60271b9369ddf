"""One virtual subject, in memory: anatomy, lesions, vessels, and every exam's images and truth.

Randomness is keyed by (seed, subject index, part, session) through ``numpy.random.SeedSequence``
so a subject never depends on how many subjects are generated, nor on the order or the process it is
generated in. Whether an exam has active lesions follows a low-discrepancy sequence over subject
indices, so about ``active_fraction`` of any run of consecutive subjects is active.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from gdsynth.io import Geometry
from gdsynth.io.bids import Exam
from gdsynth.phantom.anatomy import Anatomy, make_anatomy
from gdsynth.phantom.config import PhantomConfig, Site, Tissue, get_site
from gdsynth.phantom.fields import random_field
from gdsynth.phantom.lesions import (
    Kind,
    Lesion,
    candidate_centres,
    draw_active,
    draw_chronic,
    heal,
    lesion_row,
    place,
    restyle,
)
from gdsynth.phantom.raster import LesionMaps, rasterise
from gdsynth.phantom.scanner import (
    acquire,
    add_rician_noise,
    bias_field,
    blur_to_resolution,
    random_motion,
    reorient,
    thick_slice_grid,
    to_storage,
)
from gdsynth.phantom.sidecars import sidecar
from gdsynth.phantom.signal import (
    SEQUENCES,
    Modifiers,
    Protocol,
    draw_protocol,
    draw_tissues,
    render_sequence,
)
from gdsynth.phantom.sites import at_field, draw_site, lesion_t1_factor
from gdsynth.phantom.vessels import VesselMaps, make_vessels

_PARTS = {"subject": 0, "anatomy": 1, "tissue": 2, "vessels": 3, "chronic": 4, "candidates": 5,
          "exam": 6, "active": 7, "heal": 8, "texture": 9, "site": 10, "lesion_style": 11}
_GOLDEN = 0.6180339887498949
TRUTH_KEYS = ("enhancing", "lesions", "brain", "WM", "GM", "CSF", "vessel")


def subject_rng(seed: int, index: int, part: str, session: int = 0) -> np.random.Generator:
    """Generator for one part of one subject (and session), independent of everything else."""
    return np.random.default_rng(
        np.random.SeedSequence(int(seed), spawn_key=(int(index), _PARTS[part], int(session)))
    )


def exam_is_active(seed: int, index: int, session: int, fraction: float) -> bool:
    """Whether exam (index, session) has >= 1 enhancing lesion (golden-ratio sequence)."""
    offset = np.random.SeedSequence(int(seed), spawn_key=(2**20, int(session))).generate_state(1)
    u = (offset[0] / 2**32 + index * _GOLDEN) % 1.0
    return bool(u < fraction)


@dataclass
class ExamVolumes:
    """One exam as it is written: stored images, truth on the T1w grid, tables and sidecars.

    ``images`` maps T1w, T2w, FLAIR, T1w_gd to (int16 (X, Y, Z) array, Geometry) in the file's voxel
    order; ``truth`` maps :data:`TRUTH_KEYS` to arrays on the T1w grid (instances uint16, masks
    uint8, probabilities float32).
    """

    exam: Exam
    site: str
    images: dict[str, tuple[np.ndarray, Geometry]]
    truth: dict[str, np.ndarray]
    lesions: list[dict]
    motion: dict
    sidecars: dict[str, dict]
    protocol: Protocol

    @property
    def geometry(self) -> Geometry:
        """The T1w grid: the reference of every truth map."""
        return self.images["T1w"][1]

    @property
    def n_active(self) -> int:
        return sum(r["kind"] == Kind.active.value for r in self.lesions)


@dataclass
class SubjectVolumes:
    """A subject: its site, voxel order and one :class:`ExamVolumes` per session."""

    index: int
    subject: str
    site: str
    orientation: str
    exams: list[ExamVolumes]


def _chronic_lesions(
    rng: np.random.Generator, config: PhantomConfig, candidates: tuple[np.ndarray, np.ndarray]
) -> list[Lesion]:
    lo, hi = config.chronic_lesions
    n = int(round(np.exp(rng.uniform(np.log(lo + 1), np.log(hi + 1))) - 1))
    out: list[Lesion] = []
    for _ in range(n):
        lesion = draw_chronic(rng, config, np.zeros(3))
        centre = place(rng, candidates, float(lesion.radii.max()), out)
        if centre is not None:
            out.append(replace(lesion, centre=centre))
    return out


def _new_active(
    rng: np.random.Generator,
    config: PhantomConfig,
    candidates: tuple[np.ndarray, np.ndarray],
    existing: list[Lesion],
    session: int,
) -> list[Lesion]:
    n = 1 + min(int(rng.poisson(config.active_lesions_mean)), config.max_active_lesions - 1)
    out: list[Lesion] = []
    for _ in range(n):
        lesion = draw_active(rng, config, np.zeros(3), session)
        centre = place(rng, candidates, float(lesion.radii.max()) + 2.0, existing + out)
        if centre is not None:
            out.append(replace(lesion, centre=centre, label=len(out) + 1))
    return out


def texture_field(rng: np.random.Generator, anatomy: Anatomy, config: PhantomConfig) -> np.ndarray:
    """Smooth anatomical texture (float32, ~1 +/- ``texture_rms``): moves with the head, same on
    every sequence, so it never shows in post - pre."""
    corners = anatomy.geometry.corners_world()
    field = random_field(rng, corners.min(0), corners.max(0),
                         spacing_mm=config.texture_spacing_mm, rms=config.texture_rms)
    out = field.on_grid(anatomy.geometry)[0]
    out += 1.0
    return out


def _acquire_all(
    rng: np.random.Generator,
    anatomy: Anatomy,
    tissues: dict[str, Tissue],
    vessels: VesselMaps,
    maps: LesionMaps,
    protocol: Protocol,
    config: PhantomConfig,
    orientation: str,
    texture: np.ndarray,
    site: Site,
) -> tuple[dict, dict]:
    """Render, move, blur, bias, add noise and store the four images (then any
    ``config.extra_sequences``, acquired like the T2w); return images and motion."""
    g = anatomy.geometry
    blood = rng.uniform(*config.gd_blood_mm)
    conc = {"blood": blood, "choroid": rng.uniform(*config.gd_choroid_mm),
            "WM": config.cbv_wm * blood, "GM": config.cbv_gm * blood}
    dt1 = maps.dt1
    if site.field_strength_t != 3.0:  # lesion T1 prolongation scales with the tissue's T1
        dt1 = dt1 * np.float32(lesion_t1_factor(site.field_strength_t))
    mods = Modifiers(dt1, maps.dt2, maps.dpd, maps.gd, vessels.vessel, vessels.choroid)
    gap = site.slice_gap_mm if site.t2_acquisition == "2D" else 0.0
    thick = thick_slice_grid(g, protocol.slice_mm + gap)
    motions = {s: random_motion(rng, anatomy.brain_centre, config.motion_max_deg,
                                config.motion_max_mm) for s in ("T2w", "FLAIR", "T1w_gd")}
    # Pre and post T1w share the receive-coil bias (same scanner frame), up to a small change.
    t1w_bias = bias_field(rng, g, protocol.bias)
    images = {}
    for seq in (*SEQUENCES, *config.extra_sequences):
        if seq in config.extra_sequences:  # drawn after the standard four, which keep their draws
            motions[seq] = random_motion(rng, anatomy.brain_centre, config.motion_max_deg,
                                         config.motion_max_mm)
        sig, wm_level = render_sequence(seq, (anatomy.wm, anatomy.gm, anatomy.csf), tissues, mods,
                               protocol, conc, config.relaxivity)
        sig *= texture
        if seq == "T1w":
            grid = g
        elif seq == "T1w_gd":
            grid, sig = g, acquire(sig, g, g, motions[seq])
        else:
            grid, sig = thick, acquire(sig, g, thick, motions[seq], protocol.slice_mm,
                                       site.slice_profile)
        if seq in ("T1w", "T1w_gd"):
            if site.t1w_acquired_mm > 0:
                sig = blur_to_resolution(sig, g.spacing, site.t1w_acquired_mm)
            sig *= t1w_bias
            sig *= bias_field(rng, grid, 0.02)
        else:
            sig *= bias_field(rng, grid, protocol.bias)
        noisy = add_rician_noise(rng, sig, wm_level / protocol.snr)
        stored = to_storage(noisy, wm_level, rng.uniform(*site.storage_wm),
                            gamma=site.storage_gamma, max_value=site.storage_max,
                            clip_fraction=site.storage_clip_fraction)
        images[seq] = reorient(stored, grid, orientation)
    motion = {s: m.to_dict() for s, m in motions.items()}
    return images, motion


def _lesion_rows(lesions: list[Lesion], maps: LesionMaps, t1w: Geometry) -> list[dict]:
    rows = []
    for i, lesion in enumerate(lesions):
        ijk = np.rint(t1w.world_to_index(lesion.centre)).astype(int)
        ras = lesion.centre * np.array([-1.0, -1.0, 1.0])
        row = lesion_row(lesion)
        row.update(centre_x=float(ras[0]), centre_y=float(ras[1]), centre_z=float(ras[2]),
                   voxel_i=int(ijk[0]), voxel_j=int(ijk[1]), voxel_k=int(ijk[2]),
                   n_voxels=maps.voxels[i], n_enhancing_voxels=maps.enhancing_voxels[i])
        rows.append(row)
    return rows


def _exam(
    rng: np.random.Generator,
    anatomy: Anatomy,
    tissues: dict[str, Tissue],
    vessels: VesselMaps,
    lesions: list[Lesion],
    site: Site,
    orientation: str,
    config: PhantomConfig,
    exam: Exam,
    texture: np.ndarray,
) -> ExamVolumes:
    g = anatomy.geometry
    vessel = vessels.mask
    # Lesion labels only where the voxel is mostly parenchyma and not a normally enhancing
    # structure (vessel labels win), so per-lesion voxel counts match the written maps.
    maps = rasterise(lesions, g, parenchyma=((anatomy.wm + anatomy.gm) >= 0.5) & (vessel == 0))
    protocol = draw_protocol(rng, site, config)
    images, motion = _acquire_all(rng, anatomy, tissues, vessels, maps, protocol, config,
                                  orientation, texture, site)
    canonical = {
        "enhancing": maps.enhancing, "lesions": maps.all_mask,
        "brain": anatomy.brain.astype(np.uint8), "WM": anatomy.wm, "GM": anatomy.gm,
        "CSF": anatomy.csf, "vessel": vessel,
    }
    truth = {k: reorient(v, g, orientation)[0] for k, v in canonical.items()}
    t1w = images["T1w"][1]
    sidecars = {s: sidecar(s, protocol, site, config.resolution) for s in images}
    return ExamVolumes(exam, site.name, images, truth, _lesion_rows(lesions, maps, t1w), motion,
                       sidecars, protocol)


def simulate_subject(index: int, seed: int, config: PhantomConfig | None = None) -> SubjectVolumes:
    """Simulate subject ``index`` (0-based; BIDS label ``index + 1``, 3 digits) of cohort ``seed``.

    Returns every session's images and truth in memory (nothing is written). The site is
    ``config.sites[index % len(config.sites)]``; a randomized site kind draws its scanner (and
    possibly its lesion model) for this subject from a stream of its own, so the other draws are
    those of any other site.
    """
    config = config or PhantomConfig()
    site = draw_site(subject_rng(seed, index, "site"),
                     get_site(config.sites[index % len(config.sites)]))
    orientation = config.orientations[
        int(subject_rng(seed, index, "subject").integers(len(config.orientations)))]
    anatomy = make_anatomy(subject_rng(seed, index, "anatomy"), config)
    tissues = at_field(draw_tissues(subject_rng(seed, index, "tissue"), config.tissue_jitter),
                       site.field_strength_t)
    vessels = make_vessels(subject_rng(seed, index, "vessels"), anatomy, config)
    texture = texture_field(subject_rng(seed, index, "texture"), anatomy, config)
    candidates = candidate_centres(subject_rng(seed, index, "candidates"), anatomy)
    current = _chronic_lesions(subject_rng(seed, index, "chronic"), config, candidates)
    styled = site.lesion_model != "standard"
    if styled:
        rng_style = subject_rng(seed, index, "lesion_style")
        current = [restyle(rng_style, x) for x in current]
    label = f"{index + 1:03d}"
    exams = []
    for s in range(config.sessions):
        if s > 0:
            rng_heal = subject_rng(seed, index, "heal", s)
            current = [heal(rng_heal, x) if x.kind is Kind.active else x for x in current]
        new = []
        if exam_is_active(seed, index, s, config.active_fraction):
            new = _new_active(subject_rng(seed, index, "active", s), config, candidates,
                              current, s)
            if styled:
                rng_style = subject_rng(seed, index, "lesion_style", s + 1)
                new = [restyle(rng_style, x) for x in new]
        current = current + new
        exam = Exam(subject=label, session=f"{s + 1:02d}" if config.sessions > 1 else None)
        exams.append(_exam(subject_rng(seed, index, "exam", s), anatomy, tissues, vessels,
                           current, site, orientation, config, exam, texture))
    return SubjectVolumes(index, label, site.name, orientation, exams)
