"""A light stand-in for :func:`gdsynth.inference.prep.prepare_exam` used only by the load test.

Same contract (a :class:`~gdsynth.inference.prep.PreparedExam` on the T1w grid reoriented to RAS,
sequences resampled onto it by world coordinates, NAWM-like normalization) built from gdsynth's
own reorientation, resampling and brain mask, without registration and N4, which would cost a few
seconds per exam: the load test is about 100+ exams through concurrent shards, not preprocessing
(the other batteries use the full preparation).
"""

from __future__ import annotations

import numpy as np

from gdsynth.inference.prep import PreparedExam
from gdsynth.io import read_image
from gdsynth.io.bids import Exam
from gdsynth.models.card import ModelCard


def simple_prepare(exam: Exam, card: ModelCard) -> PreparedExam:
    """Read, reorient, resample onto the T1w's RAS grid, mask and divide by the brain median."""
    from gdsynth.preprocess.mask import brain_mask
    from gdsynth.preprocess.orient import reorient_to_ras
    from gdsynth.preprocess.resample import require_overlap, resample

    exam.require(("T1w", *card.inputs))
    t1, native = read_image(exam.t1w)  # type: ignore[arg-type]
    t1, prepared = reorient_to_ras(t1, native)
    volumes = {"T1w": t1}
    for seq in card.inputs:
        if seq == "T1w":
            continue
        path = exam.path(seq)
        array, geometry = read_image(path)  # type: ignore[arg-type]
        require_overlap(path, native, geometry)
        volumes[seq] = resample(array, geometry, prepared)
    mask = brain_mask([volumes["T1w"], volumes.get("FLAIR", volumes["T1w"])], prepared.spacing,
                      erode=2.0, close=2.0)
    medians = {s: float(np.median(v[mask])) for s, v in volumes.items()}
    volumes = {s: (v / medians[s]).astype(np.float32) for s, v in volumes.items()}
    return PreparedExam(volumes, mask, prepared, native, medians["T1w"], {"nawm_median": medians})
