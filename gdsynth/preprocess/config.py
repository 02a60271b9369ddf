"""Configuration of the preparation step (typed dataclass; its dict form enters the cache key)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from gdsynth.errors import ConfigError
from gdsynth.io.sequences import REFERENCE, check_inputs, input_names
from gdsynth.preprocess.bias import N4Params
from gdsynth.preprocess.register import RegistrationParams
from gdsynth.preprocess.resample import Interpolation


@dataclass(frozen=True)
class PrepConfig:
    """How an exam is prepared.

    Attributes:
        spacing: isotropic output voxel size in mm; None keeps the T1w spacing (exact grid).
        n4: run N4 bias-field correction.
        register: rigidly register T2w/FLAIR/post-Gd to the T1w (off: trust scanner coordinates).
        sequences: pre-contrast sequences required and prepared (T1w always among them; default
            every input of the sequence registry, :mod:`gdsynth.io.sequences`).
        use_post: also prepare the real post-Gd T1w when the exam has one.
        interpolation: image interpolator onto the prepared grid (``linear`` or ``bspline``).
        mask_erode_mm, mask_close_mm: brain-mask morphology (see :mod:`.mask`).
        nawm_erode_mm, lesion_mads: NAWM definition (see :mod:`.normalize`).
    """

    spacing: float | None = None
    n4: bool = True
    register: bool = True
    sequences: tuple[str, ...] = field(default_factory=input_names)
    use_post: bool = True
    interpolation: str = "linear"
    registration: RegistrationParams = field(default_factory=RegistrationParams)
    n4_params: N4Params = field(default_factory=N4Params)
    mask_erode_mm: float = 4.0
    mask_close_mm: float = 4.0
    nawm_erode_mm: float = 1.5
    lesion_mads: float = 3.0

    def __post_init__(self) -> None:
        seqs = tuple(check_inputs(self.sequences, "sequences"))
        object.__setattr__(self, "sequences", seqs)
        if REFERENCE not in seqs:
            raise ConfigError(None, "sequences must include T1w: it defines the prepared space")
        if self.spacing is not None and not self.spacing > 0:
            raise ConfigError(None, f"spacing must be positive (got {self.spacing} mm)")
        if Interpolation.parse(self.interpolation) is Interpolation.NEAREST:
            raise ConfigError(None, "images need linear or bspline interpolation, not nearest")

    def to_dict(self) -> dict:
        """JSON-friendly form (what provenance records and the cache compares)."""
        data = asdict(self)
        data["sequences"] = list(self.sequences)
        return data
