"""Detection parameters: one JSON-serialisable dataclass, stored in the model card's ``detection``.

Units: enhancement thresholds in normalized units (NAWM = 1.0 on every sequence, so normal tissue
enhancement ≈ 0); lengths in mm; volumes in mm³ (brain volume limits in mL). Defaults are hand-set
for a synthetic enhancement map whose lesions enhance by ~0.2-1.0; ``fit_calibration`` replaces
the score coefficients, the patient calibration and the operating point with values fitted on
validation predictions (and records how in ``calibration_info``).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, fields
from typing import Any

from gdsynth.detection.detectors import Detector, parse_detector
from gdsynth.errors import ConfigError

__all__ = ["DEFAULT_SCORE_COEFFICIENTS", "SCORE_FEATURES", "DetectionParams", "Detector", "check_field_types",
           "parse_detector"]

#: Features of the per-lesion logistic score, in order (see :mod:`gdsynth.detection.scoring`).
SCORE_FEATURES = (
    "max_enhancement",
    "mean_enhancement",
    "log_volume",
    "flair_excess",
    "mean_uncertainty",
    "log_elongation",
    "surface_term",
    "csf_term",
    "head_probability",
)

DEFAULT_SCORE_COEFFICIENTS = {
    "intercept": -4.0,
    "max_enhancement": 3.0,
    "mean_enhancement": 1.0,
    "log_volume": 0.5,
    "flair_excess": 3.0,
    "mean_uncertainty": -2.0,
    "log_elongation": -1.0,
    "surface_term": 1.0,
    "csf_term": 0.5,
    "head_probability": 3.0,
}


def _finite_number(v: Any) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(v)


#: Checks by annotation (as written in the dataclass): a field whose annotation is not here is
#: checked by its own code (``__post_init__``).
_FIELD_CHECKS: dict[str, tuple[str, Any]] = {
    "float": ("a finite number", _finite_number),
    "str": ("a string", lambda v: isinstance(v, str)),
    "tuple[float, float]": ("two finite numbers",
                            lambda v: isinstance(v, list | tuple) and len(v) == 2
                            and all(_finite_number(x) for x in v)),
    "dict[str, float]": ("an object of finite numbers",
                         lambda v: isinstance(v, dict) and all(_finite_number(x) for x in v.values())),
    "dict[str, Any]": ("a JSON object", lambda v: isinstance(v, dict)),
}


def check_field_types(params: Any) -> None:
    """Raise :class:`ConfigError` for a field of the dataclass ``params`` whose value does not
    fit its annotation (a string or NaN where a number belongs, ``true`` for a number...)."""
    for f in fields(params):
        check = _FIELD_CHECKS.get(str(f.type))
        value = getattr(params, f.name)
        if check is not None and not check[1](value):
            raise ConfigError(None, f"detection parameter {f.name}={value!r} must be {check[0]}")


@dataclass
class DetectionParams:
    """Everything :func:`gdsynth.detection.detect_lesions` and ``summarize_patient`` need.

    Candidates: Gaussian smoothing ``sigma_mm``; background (``background_mm`` wide) removed;
    hysteresis seeds ≥ max(``high``, ``high_sigmas`` × noise SD) grown within ≥ max(``low``,
    ``low_sigmas`` × noise SD) (normalized enhancement units; ``seg_high``/``seg_low`` are
    probabilities for the head map), each region trimmed to ≥ ``peak_fraction`` × its peak;
    components smaller than ``min_volume_mm3`` dropped, larger
    than ``max_volume_mm3`` suppressed as ``too-large`` (a threshold failure, not a lesion).
    Suppression (see :mod:`gdsynth.detection.suppression`): ``surface_margin_mm`` (+
    ``surface_fraction_min``),
    ``max_elongation`` (+ ``elongation_min_length_mm``), ``csf_fraction_max`` /
    ``csf_shell_mm`` and the CSF intensity rules, ``min_flair_ratio`` (pre-contrast gating),
    ``min_tissue_ratio`` (0 = off) over the ``tissue_percentile`` bright-tissue level.
    Score: ``score_coefficients`` (logistic, keys ``intercept`` + :data:`SCORE_FEATURES`).
    Patient: ``probability_active = sigmoid(platt_a * logit(1 − Π(1 − s_i)) + platt_b)``; refer
    when ≥ ``refer_threshold``; quality limits ``min_brain_ml``/``max_brain_ml``/``min_wm_fraction``/
    ``max_t1w_t2w_correlation``.
    """

    detector: Detector = Detector.difference
    high: float = 0.25
    low: float = 0.12
    seg_high: float = 0.5
    seg_low: float = 0.3
    sigma_mm: float = 1.0
    background_mm: float = 8.0
    high_sigmas: float = 4.0
    low_sigmas: float = 2.5
    peak_fraction: float = 0.5
    peak_radius_mm: float = 0.0  # 0: the component's peak; > 0: the peak within this distance
    min_volume_mm3: float = 10.0
    max_volume_mm3: float = 50000.0
    # suppression
    surface_margin_mm: float = 1.5
    surface_fraction_min: float = 0.0
    max_elongation: float = 3.0
    elongation_min_length_mm: float = 6.0
    csf_fraction_max: float = 0.5
    csf_shell_mm: float = 1.5
    csf_t1w_max: float = 0.6
    csf_t2w_min: float = 1.6
    csf_flair_max: float = 0.6
    min_flair_ratio: float = 1.15
    min_tissue_ratio: float = 0.0
    tissue_percentile: float = 90.0
    tissue_waiver_enhancement: float = 0.0  # 0 = no waiver
    nawm_shell_mm: tuple[float, float] = (3.0, 10.0)
    nawm_ref_tolerance: float = 0.10
    periventricular_mm: float = 3.0
    juxtacortical_mm: float = 4.0
    infratentorial_fraction: float = 0.2
    # score and patient calibration
    score_coefficients: dict[str, float] = field(
        default_factory=lambda: dict(DEFAULT_SCORE_COEFFICIENTS)
    )
    platt_a: float = 1.0
    platt_b: float = 0.0
    refer_threshold: float = 0.1
    target_sensitivity: float = 0.95
    # quality limits
    min_brain_ml: float = 600.0
    max_brain_ml: float = 2500.0
    min_wm_fraction: float = 0.05
    max_t1w_t2w_correlation: float = -0.1
    calibration_info: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        check_field_types(self)
        self.detector = parse_detector(self.detector)
        self.nawm_shell_mm = tuple(float(v) for v in self.nawm_shell_mm)  # type: ignore[assignment]
        if not self.low <= self.high:
            raise ConfigError(None, f"hysteresis low {self.low} must be ≤ high {self.high}")
        if not self.seg_low <= self.seg_high:
            raise ConfigError(None, f"seg_low {self.seg_low} must be ≤ seg_high {self.seg_high}")
        if self.sigma_mm < 0 or self.min_volume_mm3 < 0:
            raise ConfigError(None, "sigma_mm and min_volume_mm3 must be ≥ 0")
        if not 0.0 < self.target_sensitivity <= 1.0:
            raise ConfigError(None, f"target_sensitivity {self.target_sensitivity} not in (0, 1]")
        unknown = set(self.score_coefficients) - {"intercept", *SCORE_FEATURES}
        if unknown:
            raise ConfigError(None, f"unknown score coefficients {sorted(unknown)}")
        coefs = dict(DEFAULT_SCORE_COEFFICIENTS)
        coefs.update({k: float(v) for k, v in self.score_coefficients.items()})
        self.score_coefficients = coefs

    def to_dict(self) -> dict[str, Any]:
        """JSON-friendly form (the model card's ``detection`` section)."""
        out = asdict(self)
        out["detector"] = self.detector.value
        out["nawm_shell_mm"] = list(self.nawm_shell_mm)
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DetectionParams:
        """Inverse of :meth:`to_dict`; unknown keys raise :class:`ConfigError`."""
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ConfigError(None, f"unknown detection parameters {sorted(unknown)}")
        return cls(**data)

    def replace(self, **changes: Any) -> DetectionParams:
        """A copy with some fields changed (validated again)."""
        data = self.to_dict()
        data.update(changes)
        return DetectionParams.from_dict(data)
