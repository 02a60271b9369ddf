"""Phantom parameters: the cohort-level configuration and the named scanner sites.

Every knob of the phantom lives in :class:`PhantomConfig` (a frozen dataclass with sensible
defaults); a site (:class:`Site`) is a named set of sequence parameters, SNR and bias-field strength
around which each exam's own parameters are drawn. Times are in ms, lengths in mm, concentrations in
mM (mmol/L), relaxivity in 1/(mM s).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from gdsynth.errors import ConfigError


@dataclass(frozen=True)
class Tissue:
    """Relaxation and proton density of one tissue at 3 T (T1, T2 in ms; PD relative to water)."""

    t1_ms: float
    t2_ms: float
    pd: float


#: Mean tissue properties at 3 T (literature values, see docs/DOMAIN notes).
TISSUES: dict[str, Tissue] = {
    "WM": Tissue(830.0, 80.0, 0.70),
    "GM": Tissue(1330.0, 110.0, 0.80),
    "CSF": Tissue(4000.0, 2000.0, 1.00),
    "blood": Tissue(1650.0, 120.0, 0.90),
    "choroid": Tissue(1250.0, 120.0, 0.85),
}


@dataclass(frozen=True)
class Site:
    """Default acquisition of one (virtual) scanner site.

    T1w (pre and post Gd) is a 3D spoiled gradient echo, T2w a 2D spin echo, FLAIR a 2D inversion
    recovery whose inversion time is set per exam to null CSF. ``slice_mm`` is the T2w/FLAIR slice
    thickness at 1 mm in-plane; ``snr`` the white-matter SNR (mean / noise sigma) of each image;
    ``bias`` the standard deviation of the log bias field.
    """

    name: str
    manufacturer_model: str
    t1w_tr_ms: float
    t1w_te_ms: float
    t1w_flip_deg: float
    t2w_tr_ms: float
    t2w_te_ms: float
    flair_tr_ms: float
    flair_te_ms: float
    slice_mm: float
    snr: float
    bias: float
    field_strength_t: float = 3.0


SITES: dict[str, Site] = {
    "siteA": Site("siteA", "PhantomScan A", 9.0, 4.0, 15.0, 4500.0, 95.0, 9000.0, 120.0,
                  3.0, 32.0, 0.12),
    "siteB": Site("siteB", "PhantomScan B", 11.0, 4.6, 18.0, 3500.0, 85.0, 8000.0, 100.0,
                  4.0, 22.0, 0.25),
    "siteC": Site("siteC", "PhantomScan C", 7.5, 3.2, 12.0, 5000.0, 105.0, 10000.0, 130.0,
                  3.0, 38.0, 0.18),
}

#: Voxel orders the files are stored in (one chosen per subject).
ORIENTATIONS: tuple[str, ...] = ("RAS", "LPS", "LAS", "RPI", "LPI", "PIR", "ASL")


def get_site(name: str) -> Site:
    """The :class:`Site` called ``name``; a clear error lists the valid names otherwise."""
    try:
        return SITES[name]
    except KeyError:
        raise ConfigError(None, f"unknown site {name!r}; choose from {', '.join(SITES)}") from None


@dataclass(frozen=True)
class PhantomConfig:
    """All parameters of the digital MS phantom (defaults give a realistic mixed cohort).

    ``generate_dataset``'s keyword arguments (resolution, active_fraction, sessions, sites) override
    the same-named fields here.
    """

    # cohort
    resolution: float = 1.0  # mm, isotropic anatomy/T1w grid: 1 or 2
    active_fraction: float = 0.5  # share of exams with >= 1 enhancing lesion
    sessions: int = 1
    sites: tuple[str, ...] = ("siteA", "siteB", "siteC")
    orientations: tuple[str, ...] = ORIENTATIONS
    # anatomy
    deform_rms_mm: float = 2.5  # RMS of the smooth random displacement field
    deform_spacing_mm: float = 40.0  # control-point spacing of that field
    scale_jitter: float = 0.08  # per-axis brain scaling, uniform in 1 +/- this
    position_jitter_mm: float = 15.0  # random head position in the scanner world
    tissue_jitter: float = 0.04  # relative SD of per-subject T1/T2/PD
    texture_rms: float = 0.03  # smooth anatomical proton-density texture (relative RMS)
    texture_spacing_mm: float = 10.0
    cbv_wm: float = 0.02  # blood volume fraction (normal tissue enhancement)
    cbv_gm: float = 0.04
    # lesions
    chronic_lesions: tuple[int, int] = (2, 25)  # per subject, log-uniform range
    blackhole_fraction: float = 0.15
    lookalike_fraction: float = 0.25  # chronic lesions with an active-like halo on T2w/FLAIR
    active_lesions_mean: float = 1.0  # extra (Poisson) active lesions beyond the first
    max_active_lesions: int = 6
    diameter_mm: tuple[float, float] = (3.0, 15.0)
    active_min_diameter_mm: float = 4.0
    ring_min_diameter_mm: float = 8.0  # larger active lesions are mostly ring / open-ring
    gd_lesion_mm: tuple[float, float] = (0.05, 0.3)  # mM, peak concentration in active lesions
    gd_blood_mm: tuple[float, float] = (1.0, 2.0)  # mM, in vessels and sinuses
    gd_choroid_mm: tuple[float, float] = (0.6, 1.2)  # mM, choroid plexus
    relaxivity: float = 4.5  # r1, 1/(mM s)
    # normally enhancing structures
    cortical_vessels: tuple[int, int] = (3, 6)
    # scanner
    motion_max_deg: float = 2.0
    motion_max_mm: float = 2.0
    snr_scale: float = 1.0  # multiplies every site's SNR
    bias_scale: float = 1.0  # multiplies every site's bias strength

    def __post_init__(self) -> None:
        if self.resolution not in (1.0, 2.0):
            raise ConfigError(None, f"resolution must be 1 or 2 mm, got {self.resolution}")
        if not 0.0 <= self.active_fraction <= 1.0:
            raise ConfigError(None, f"active fraction must lie in [0, 1], got {self.active_fraction}")
        if self.sessions < 1:
            raise ConfigError(None, f"sessions must be >= 1, got {self.sessions}")
        if not self.sites:
            raise ConfigError(None, "at least one site is needed")
        for s in self.sites:
            get_site(s)
        from gdsynth.phantom.scanner import direction_for

        for code in self.orientations:
            direction_for(code)
        lo, hi = self.diameter_mm
        if not 0 < lo <= hi:
            raise ConfigError(None, f"lesion diameter range {self.diameter_mm} is invalid")
        if self.motion_max_deg < 0 or self.motion_max_mm < 0:
            raise ConfigError(None, "motion limits must be non-negative")
        if self.chronic_lesions[0] < 0 or self.chronic_lesions[1] < self.chronic_lesions[0]:
            raise ConfigError(None, f"chronic lesion range {self.chronic_lesions} is invalid")

    def to_dict(self) -> dict:
        """JSON-friendly form (written to ``derivatives/phantom/phantom_config.json``)."""
        data = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
