"""Detector registry: where the enhancement-map candidates come from.

A detector is a member of :class:`Detector` (its name, and whether it needs the model's
``"enhancing"`` head probability map) and its candidates function in :data:`DETECTORS`:
``fn(enhancement, head, brain, spacing, params, info) -> int32 labels (X, Y, Z)`` (``head`` is
the ``"enhancing"`` map or None, never None for a detector that ``needs_head``; ``info`` receives
the thresholds used). Adding a
detector means adding both here (and a line to docs/detection.md); the CLI, the settings, the
model card and the scoring read them from here.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import Enum
from typing import TYPE_CHECKING, Any

from gdsynth.errors import parse_choice

if TYPE_CHECKING:
    import numpy as np

#: Name of the head probability map the head-based detectors read.
HEAD_NAME = "enhancing"


class Detector(str, Enum):
    """Where candidates come from; ``needs_head``: reads ``heads["enhancing"]`` (and the lesion
    score then uses its ``head_probability`` term)."""

    needs_head: bool

    def __new__(cls, value: str, needs_head: bool) -> Detector:
        member = str.__new__(cls, value)
        member._value_ = value
        member.needs_head = needs_head
        return member

    difference = ("difference", False)  # hysteresis on the smoothed enhancement map (post − pre)
    segmentation = ("segmentation", True)  # hysteresis on the "enhancing" head probability
    combined = ("combined", True)  # union of both candidate sets, scored with both evidences


CandidatesFn = Callable[
    ["np.ndarray", "np.ndarray | None", "np.ndarray", Sequence[float], Any, dict[str, Any]],
    "np.ndarray",
]
# the candidates functions import their numpy/scipy code when called: this module (the Enum the
# CLI lists in --help) stays light


def _difference(enh, head, brain, spacing, params, info) -> np.ndarray:
    from gdsynth.detection.candidates import difference_candidates

    return difference_candidates(enh, brain, spacing, params, info)


def _segmentation(enh, head, brain, spacing, params, info) -> np.ndarray:
    from gdsynth.detection.candidates import hysteresis_components, trim_to_peak

    seg = hysteresis_components(head, params.seg_high, params.seg_low, brain)
    return trim_to_peak(seg, head, params.peak_fraction)


def _combined(enh, head, brain, spacing, params, info) -> np.ndarray:
    from gdsynth.detection.candidates import union_components

    return union_components(_difference(enh, head, brain, spacing, params, info),
                            _segmentation(enh, head, brain, spacing, params, info))


#: Candidates function of every detector (``params`` is the :class:`DetectionParams`).
DETECTORS: dict[Detector, CandidatesFn] = {
    Detector.difference: _difference,
    Detector.segmentation: _segmentation,
    Detector.combined: _combined,
}
assert set(DETECTORS) == set(Detector), "every Detector needs its candidates function"


def parse_detector(value: str | Detector) -> Detector:
    """``Detector`` from its name, with an error listing the valid ones."""
    return parse_choice(Detector, value, "detector")
