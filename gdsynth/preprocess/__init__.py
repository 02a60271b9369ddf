"""Preparation of exams into the prepared space (see docs/architecture.md, "Prepared space").

Steps per exam (:func:`prepare_arrays`): read the T1w and reorient it to RAS voxel order (exact,
:mod:`.orient`); optionally resample to isotropic ``spacing``; rigidly register T2w, FLAIR and the
real post-Gd T1w to it (:mod:`.register`) and resample them onto the prepared grid
(:mod:`.resample`); brain mask, given or computed (:mod:`.mask`); N4 (:mod:`.bias`); division by
the NAWM median (:mod:`.normalize`). :func:`prepare_exam` writes the outputs and provenance
(:mod:`.provenance`) and skips exams already complete; :func:`to_native` maps results back.
"""

from gdsynth.preprocess.config import PrepConfig
from gdsynth.preprocess.exam import (
    CacheLookup,
    PreparedExam,
    find_prepared,
    load_prepared,
    open_prepared,
    output_path,
    prepare_cohort,
    prepare_exam,
    to_native,
    write_prepared,
)
from gdsynth.preprocess.pipeline import PreparedVolumes, prepare_arrays, prepared_geometry

__all__ = [
    "CacheLookup",
    "PrepConfig",
    "PreparedExam",
    "PreparedVolumes",
    "find_prepared",
    "load_prepared",
    "open_prepared",
    "output_path",
    "prepare_arrays",
    "prepare_cohort",
    "prepare_exam",
    "prepared_geometry",
    "to_native",
    "write_prepared",
]
