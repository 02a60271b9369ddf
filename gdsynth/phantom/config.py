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

#: Mean tissue properties at 1.5 T: T1 shorter (WM ~ 700, GM ~ 1050 ms), CSF T1 and every T2
#: about the same (slightly longer T2). Used through :func:`gdsynth.phantom.sites.at_field`.
TISSUES_1P5T: dict[str, Tissue] = {
    "WM": Tissue(700.0, 85.0, 0.70),
    "GM": Tissue(1050.0, 115.0, 0.80),
    "CSF": Tissue(4000.0, 2000.0, 1.00),
    "blood": Tissue(1350.0, 130.0, 0.90),
    "choroid": Tissue(1000.0, 125.0, 0.85),
}

#: T1w sequence families (``Site.t1w_family``).
T1W_FAMILIES = ("spgr", "mprage")
#: T2w/FLAIR acquisition kinds (``Site.t2_acquisition``).
T2_ACQUISITIONS = ("2D", "3D")
#: Through-plane slice profiles of 2D acquisitions (``Site.slice_profile``).
SLICE_PROFILES = ("gaussian", "boxcar")
#: Lesion appearance models (``Site.lesion_model``), see :mod:`gdsynth.phantom.lesions`.
LESION_MODELS = ("standard", "perivenular")


@dataclass(frozen=True)
class Site:
    """Default acquisition of one (virtual) scanner site.

    T1w (pre and post Gd) is a 3D spoiled gradient echo (``t1w_family="spgr"``) or an MPRAGE-like
    inversion-prepared gradient echo (``"mprage"``, inversion time ``t1w_ti_ms``, ``t1w_tr_ms`` the
    inversion repetition time); T2w a spin echo, FLAIR an inversion recovery whose inversion time is
    set per exam to null CSF, both 2D (``t2_acquisition="2D"``: slices of ``slice_mm`` with a
    ``slice_profile`` and a ``slice_gap_mm``) or 3D (isotropic ``slice_mm`` voxels). ``snr`` is the
    white-matter SNR (mean / noise sigma) of each image; ``bias`` the standard deviation of the log
    bias field; ``t1w_acquired_mm`` the T1w's acquired resolution (blurred onto the stored grid; 0:
    the grid's own). Storage ("vendor"): white matter stored near a value drawn from
    ``storage_wm``, intensities mapped by ``(x / WM) ** storage_gamma`` and clipped at
    ``storage_max``, the scale lowered where needed so that at most ``storage_clip_fraction`` of
    the head's voxels clips (a scanner saturates vessels, not a T2w's CSF; ``None``: no such
    limit, as in the randomized sites). ``lesion_model`` picks the lesion appearance;
    ``randomized`` sites draw all of this per subject (:func:`gdsynth.phantom.sites.draw_site`). The defaults are the original
    siteA/B/C behaviour, which must not change.
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
    t1w_family: str = "spgr"
    t1w_ti_ms: float = 0.0
    t2_acquisition: str = "2D"
    slice_profile: str = "gaussian"
    slice_gap_mm: float = 0.0
    t1w_acquired_mm: float = 0.0
    storage_wm: tuple[float, float] = (300.0, 1500.0)
    storage_gamma: float = 1.0
    storage_max: int = 32767
    storage_clip_fraction: float | None = 0.005
    lesion_model: str = "standard"
    randomized: bool = False
    randomize_lesion_model: bool = False

    def __post_init__(self) -> None:
        for value, valid, what in ((self.t1w_family, T1W_FAMILIES, "T1w family"),
                                   (self.t2_acquisition, T2_ACQUISITIONS, "T2w/FLAIR acquisition"),
                                   (self.slice_profile, SLICE_PROFILES, "slice profile"),
                                   (self.lesion_model, LESION_MODELS, "lesion model")):
            if value not in valid:
                raise ConfigError(None, f"site {self.name}: unknown {what} {value!r}; choose "
                                  f"from {', '.join(valid)}")
        if self.storage_clip_fraction is not None and not 0 <= self.storage_clip_fraction < 1:
            raise ConfigError(None, f"site {self.name}: storage_clip_fraction must be in [0, 1) "
                              "or None")
        if self.field_strength_t not in (1.5, 3.0):
            raise ConfigError(None, f"site {self.name}: field strength must be 1.5 or 3 T")


SITES: dict[str, Site] = {
    "siteA": Site("siteA", "PhantomScan A", 9.0, 4.0, 15.0, 4500.0, 95.0, 9000.0, 120.0,
                  3.0, 32.0, 0.12),
    "siteB": Site("siteB", "PhantomScan B", 11.0, 4.6, 18.0, 3500.0, 85.0, 8000.0, 100.0,
                  4.0, 22.0, 0.25),
    "siteC": Site("siteC", "PhantomScan C", 7.5, 3.2, 12.0, 5000.0, 105.0, 10000.0, 130.0,
                  3.0, 38.0, 0.18),
    # Site kinds built to differ from the training sites (docs/phantom-sites.md).
    "site15T": Site("site15T", "PhantomScan 1.5T", 10.0, 4.2, 20.0, 4000.0, 95.0, 8500.0, 110.0,
                    4.0, 24.0, 0.20, field_strength_t=1.5, storage_wm=(800.0, 2500.0)),
    "siteMPRAGE": Site("siteMPRAGE", "PhantomScan MP", 2300.0, 3.0, 9.0, 4500.0, 95.0, 9000.0,
                       120.0, 3.0, 30.0, 0.15, t1w_family="mprage", t1w_ti_ms=1000.0),
    "siteThick": Site("siteThick", "PhantomScan 2D", 9.5, 4.0, 15.0, 4000.0, 100.0, 9000.0, 125.0,
                      5.0, 28.0, 0.15, slice_profile="boxcar", slice_gap_mm=1.0,
                      storage_wm=(1500.0, 3000.0), storage_max=4095),
    "site3D": Site("site3D", "PhantomScan 3D", 9.0, 4.0, 15.0, 3200.0, 110.0, 5000.0, 140.0,
                   1.0, 26.0, 0.15, t2_acquisition="3D", t1w_acquired_mm=1.2),
    "siteAltLesion": Site("siteAltLesion", "PhantomScan A", 9.0, 4.0, 15.0, 4500.0, 95.0, 9000.0,
                          120.0, 3.0, 32.0, 0.12, lesion_model="perivenular"),
    "siteAll": Site("siteAll", "PhantomScan X", 2000.0, 3.5, 8.0, 3800.0, 90.0, 8000.0, 105.0,
                  5.0, 18.0, 0.30, field_strength_t=1.5, t1w_family="mprage", t1w_ti_ms=800.0,
                  slice_profile="boxcar", slice_gap_mm=1.0, t1w_acquired_mm=1.3,
                  storage_wm=(1200.0, 2600.0), storage_gamma=0.8, storage_max=4095,
                  lesion_model="perivenular"),
    # Domain randomization: every scanner property drawn per subject (lesions: standard model).
    "random": Site("random", "PhantomScan random", 9.0, 4.0, 15.0, 4500.0, 95.0, 9000.0, 120.0,
                   3.0, 30.0, 0.15, randomized=True),
    # ... and the lesion model drawn too.
    "randomAll": Site("randomAll", "PhantomScan random", 9.0, 4.0, 15.0, 4500.0, 95.0, 9000.0,
                      120.0, 3.0, 30.0, 0.15, randomized=True, randomize_lesion_model=True),
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
    # Extra sequences written beside T1w/T2w/FLAIR/post-Gd (gdsynth.phantom.signal.EXTRA_SEQUENCES:
    # "PD"), each acquired like the T2w (thick slices, own motion, bias and noise) after the four
    # standard images, so those stay identical; named by the sequence registry (register it first).
    extra_sequences: tuple[str, ...] = ()

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
        from gdsynth.io.sequences import sequence
        from gdsynth.phantom.signal import EXTRA_SEQUENCES

        for name in self.extra_sequences:
            if name not in EXTRA_SEQUENCES:
                raise ConfigError(None, f"the phantom cannot simulate {name!r}; it can add "
                                        f"{', '.join(EXTRA_SEQUENCES)}")
            sequence(name)  # its BIDS name comes from the registry: refused when unregistered

    def to_dict(self) -> dict:
        """JSON-friendly form (written to ``derivatives/phantom/phantom_config.json``)."""
        data = asdict(self)
        if not self.extra_sequences:  # phantoms without extras keep the stamp they always had
            data.pop("extra_sequences")
        return {k: list(v) if isinstance(v, tuple) else v for k, v in data.items()}
