"""`gdsynth predict` with the real preparation (registration, N4, NAWM normalization)."""

from __future__ import annotations

import hashlib

import numpy as np
import pytest

from gdsynth.cli.main import main
from gdsynth.inference import outputs as O
from gdsynth.io import read_image
from gdsynth.io.bids import discover
from tests.fixtures.inference import write_exam

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def test_predict_real_preparation_on_input_grids(model_dir, tmp_path):
    bids = tmp_path / "bids"
    for i, orient in enumerate(("LPS", "oblique")):
        write_exam(bids, f"0{i + 1}", orient, seed=7 * i)
    outs = [bids / "derivatives" / "gdsynth", tmp_path / "again"]
    for out in outs:
        assert main(["-q", "predict", str(bids), "-m", str(model_dir), "-o", str(out),
                     "--mc-samples", "2", "--seed", "5", "--device", "cpu"]) == 0
    for exam in discover(bids):
        t1, native = read_image(exam.t1w)
        syn, g = read_image(O.SYNTHETIC.path(outs[0], exam), allow_constant=True)
        assert g.same_grid(native) and g.orientation == native.orientation
        # input T1w scale (NAWM median × restored bias field): tissue ratio near 1
        tissue = t1 > np.percentile(t1, 60)
        assert 0.5 < np.median(syn[tissue] / t1[tissue]) < 2.0
        for output in (O.ENHANCEMENT, O.UNCERTAINTY, O.LESION_LABELS, O.SUMMARY, O.LESION_TABLE):
            a, b = (output.path(o, exam).read_bytes() for o in outs)
            assert hashlib.sha256(a).digest() == hashlib.sha256(b).digest()


def test_zero_residual_gives_back_the_input_t1w(tmp_path):
    """A generator predicting post − pre = 0 must return the input T1w itself, in its own
    intensity scale (NAWM median × the bias field N4 removed), inside the brain."""
    import torch

    from gdsynth.models.folder import load_model_folder, save_model_folder
    from tests.fixtures.inference import make_model

    folder = make_model(tmp_path / "m", heads=())
    gen, card = load_model_folder(folder)
    with torch.no_grad():
        gen.head.weight.zero_()
        gen.head.bias.zero_()
    save_model_folder(folder, gen, card)
    exam = write_exam(tmp_path / "bids", "01", "PIR")
    out = tmp_path / "out"
    assert main(["-q", "synthesize", str(tmp_path / "bids"), "-m", str(folder), "-o", str(out),
                 "--device", "cpu"]) == 0
    t1, _ = read_image(exam.t1w)
    syn, _ = read_image(O.SYNTHETIC.path(out, exam), allow_constant=True)
    enh, _ = read_image(O.ENHANCEMENT.path(out, exam), allow_constant=True)
    assert np.all(enh == 0)
    brain = t1 > 150
    np.testing.assert_allclose(np.median(syn[brain] / t1[brain]), 1.0, atol=0.03)
