"""The phantom writes one more sequence on request (issue #18): a proton-density weighted spin echo
(``PhantomConfig(extra_sequences=("PD",))``), named by the sequence registry, acquired like the
T2w, leaving the four standard images exactly as they were; discovery and preparation take it as a
fourth input."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from gdsynth.errors import ConfigError
from gdsynth.io import read_image
from gdsynth.io.bids import discover
from gdsynth.io.sequences import SequenceInfo, registered
from gdsynth.phantom import PhantomConfig, generate_dataset, simulate_subject
from gdsynth.phantom.signal import PD_TE_MS, PD_TR_MS, TISSUES, signal

PD = SequenceInfo("PD", "PDw", description="proton-density weighted")
BASE = PhantomConfig(resolution=2.0, sites=("siteA",), active_fraction=1.0)


def test_pd_signal_follows_proton_density():
    """Long TR, short TE: grey matter above white matter (water content), and far less T2
    weighting than the T2w: CSF is not the bright tissue it is on a T2w."""
    from gdsynth.phantom.signal import Protocol

    proto = Protocol(t1w_tr_ms=9, t1w_te_ms=4, t1w_flip_deg=15, t2w_tr_ms=4500, t2w_te_ms=95,
                     flair_tr_ms=9000, flair_te_ms=120, flair_ti_ms=2500, slice_mm=3, snr=30,
                     bias=0.1)
    pd, t2 = ({k: float(signal(seq, t.pd, t.t1_ms, t.t2_ms, proto)) for k, t in TISSUES.items()}
              for seq in ("PD", "T2w"))
    assert pd["GM"] > pd["WM"] > 0
    assert pd["CSF"] / pd["WM"] < 0.5 * t2["CSF"] / t2["WM"]
    assert PD_TR_MS >= 2000 and PD_TE_MS <= 30


def test_extra_sequence_needs_the_registry_and_physics():
    with pytest.raises(ConfigError, match="unknown sequence 'PD'"):
        PhantomConfig(extra_sequences=("PD",))  # not registered: no BIDS name for it
    with registered(PD), pytest.raises(ConfigError, match="cannot simulate 'DWI'.*PD"):
        PhantomConfig(extra_sequences=("DWI",))
    # a phantom without extras keeps the stamp it always had
    assert "extra_sequences" not in PhantomConfig().to_dict()


def test_pd_leaves_the_standard_images_unchanged():
    with registered(PD):
        plain = simulate_subject(0, 7, BASE).exams[0]
        extra = simulate_subject(0, 7, replace(BASE, extra_sequences=("PD",))).exams[0]
    assert set(extra.images) == {*plain.images, "PD"}
    for seq, (array, geometry) in plain.images.items():
        np.testing.assert_array_equal(extra.images[seq][0], array)
        assert extra.images[seq][1] == geometry
    for key, arr in plain.truth.items():
        np.testing.assert_array_equal(extra.truth[key], arr)
    # acquired like the T2w: same thick-slice grid, bright where the T2w is bright (CSF)
    pd, pd_grid = extra.images["PD"]
    t2, t2_grid = extra.images["T2w"]
    assert pd_grid == t2_grid and pd.dtype == np.int16
    head = (t2 > 0) & (pd > 0)
    assert np.corrcoef(pd[head].astype(float), t2[head].astype(float))[0, 1] > 0.5
    assert not np.array_equal(pd, t2)


def test_phantom_pd_is_discovered_and_prepared_as_a_fourth_input(tmp_path):
    from gdsynth.preprocess import PrepConfig, prepare_to_folder

    inputs = ("T1w", "T2w", "FLAIR", "PD")
    with registered(PD):
        root = tmp_path / "bids"
        generate_dataset(root, subjects=1, seed=7, resolution=2, sites=["siteA"],
                         config=replace(BASE, extra_sequences=("PD",)))
        exam = discover(root)[0]
        assert list(exam.files) == ["T1w", "T2w", "FLAIR", "T1w_gd", "PD"]
        assert exam.files["PD"].name == "sub-001_PDw.nii.gz"
        sidecar = json.loads(Path(str(exam.files["PD"]).replace(".nii.gz", ".json")).read_text())
        assert sidecar["RepetitionTime"] == PD_TR_MS / 1000
        assert sidecar["EchoTime"] == PD_TE_MS / 1000
        prepared = prepare_to_folder(exam, tmp_path / "prep", PrepConfig(sequences=inputs))
        pd, grid = read_image(prepared.paths["PD"])
        t1, t1_grid = read_image(prepared.paths["T1w"])
        assert grid.same_grid(t1_grid)
        brain, _ = read_image(prepared.paths["mask"], allow_constant=True)
        # normalized like every input: normal white matter near 1, CSF above it
        assert 0.7 < float(np.median(pd[brain > 0])) < 1.6
    # the registry is back to its own sequences: the PD file is no longer an input
    assert "PD" not in discover(root)[0].files
