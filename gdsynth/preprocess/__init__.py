"""Preparation of exams into the prepared space (see docs/architecture.md, "Prepared space").

Steps per exam (:func:`prepare_arrays`): read the T1w and reorient it to RAS voxel order (exact,
:mod:`.orient`); optionally resample to isotropic ``spacing``; rigidly register T2w, FLAIR and the
real post-Gd T1w to it (:mod:`.register`) and resample them onto the prepared grid
(:mod:`.resample`); brain mask, given or computed (:mod:`.mask`); N4 (:mod:`.bias`); division by
the NAWM median (:mod:`.normalize`). :func:`prepare_to_folder` writes the outputs and provenance
(:mod:`.provenance`) into a ``gdsynth-prep`` folder and skips exams already complete;
:func:`move_to_grid` maps results back to the native grid (exactly when only reoriented).
"""

from gdsynth.preprocess.config import PrepConfig
from gdsynth.preprocess.exam import (
    CacheLookup,
    PreparedFiles,
    find_prepared,
    load_prepared,
    open_prepared,
    output_path,
    prepare_cohort_to_folder,
    prepare_to_folder,
    write_prepared,
)
from gdsynth.preprocess.pipeline import PreparedVolumes, prepare_arrays, prepared_geometry
from gdsynth.preprocess.resample import move_to_grid

__all__ = [
    "CacheLookup",
    "PrepConfig",
    "PreparedFiles",
    "PreparedVolumes",
    "find_prepared",
    "load_prepared",
    "move_to_grid",
    "open_prepared",
    "output_path",
    "prepare_arrays",
    "prepare_cohort_to_folder",
    "prepare_to_folder",
    "prepared_geometry",
    "write_prepared",
]
