"""A new sequence added through the sequence registry only (issue #18): a PD-weighted input,
registered in this test, goes through discovery, preparation, training a 4-input model,
``predict`` (BIDS folder and ``--input NAME=FILE``), ``evaluate`` and ``review`` — no other
module is told about it."""

from __future__ import annotations

import json

import numpy as np
import pytest

from gdsynth.cli.main import main
from gdsynth.inference import outputs as O
from gdsynth.io import read_image, read_tsv, write_image, write_labels
from gdsynth.io.bids import Exam, derivative_path, discover, raw_path
from gdsynth.io.sequences import SequenceInfo, registered
from gdsynth.models.folder import load_model_folder
from gdsynth.preprocess import PrepConfig, prepare_to_folder
from tests.data.fakes import GEOMETRY, fake_exam_arrays
from tests.fixtures.training import TINY

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

PD = SequenceInfo("PD", "PDw", description="proton-density weighted")
INPUTS = ("T1w", "T2w", "FLAIR", "PD")


def _bids_with_pd(root):
    """Three tiny raw exams (32x32x16 at 2 mm) with a PD-weighted image made from the T2w
    (rescaled, offset, with its own noise), plus the phantom-style enhancing truth."""
    for i in range(3):
        a = fake_exam_arrays(i)
        p = f"sub-{i:02d}"
        anat = root / p / "anat"
        for key, name in (("T1w", "T1w"), ("T2w", "T2w"), ("FLAIR", "FLAIR"),
                          ("T1w_gd", "ce-gadolinium_T1w")):
            write_image(anat / f"{p}_{name}.nii.gz", a[key].astype(np.float32), GEOMETRY)
        pd = 0.7 * a["T2w"] + 0.2 + np.random.default_rng(i).normal(0, 0.02, a["T2w"].shape)
        exam = Exam(f"{i:02d}")
        write_image(raw_path(root, exam, "PD"), pd.astype(np.float32), GEOMETRY)
        write_labels(derivative_path(root / "derivatives" / "phantom", exam, "dseg",
                                     desc="enhancing"), a["truth"], GEOMETRY)
    return root


def test_a_pd_input_through_the_registry_only(tmp_path, capsys):
    with registered(PD):
        bids = _bids_with_pd(tmp_path / "bids")
        # discovery: the PD file is found by its registered BIDS name
        exams = discover(bids)
        assert [list(e.files) for e in exams] == [[*INPUTS[:3], "T1w_gd", "PD"]] * 3
        assert exams[0].files["PD"].name == "sub-00_PDw.nii.gz"
        assert exams[0].missing(INPUTS) == []

        # preparation: PD registered to the T1w and normalized like any input
        prepared = prepare_to_folder(exams[0], tmp_path / "prep", PrepConfig(sequences=INPUTS))
        assert prepared.paths["PD"].name == "sub-00_desc-preproc_PDw.nii.gz"
        pd, grid = read_image(prepared.paths["PD"])
        t1, t1_grid = read_image(prepared.paths["T1w"])
        assert grid.same_grid(t1_grid) and np.isfinite(pd).all() and pd.std() > 0

        # training: a model card with 4 inputs
        run = tmp_path / "run"
        assert main(["-q", "train", str(bids), "-o", str(run), "--config", str(TINY),
                     "--max-steps", "2", "--no-fit-detector",
                     "--set", f"data.inputs=[{','.join(INPUTS)}]"]) == 0, capsys.readouterr().err
        _, card = load_model_folder(run / "model")
        assert card.inputs == list(INPUTS) and card.in_channels == 4 * (2 * card.context_slices + 1)

        # predict on the BIDS folder: the PD file is an input of record
        pred = tmp_path / "pred"
        assert main(["-q", "predict", str(bids), "-m", str(run / "model"), "-o", str(pred),
                     "--participant-label", "00", "01", "--device", "cpu"]) == 0
        record = json.loads(O.SYNTHESIS_RECORD.path(pred, exams[0]).read_text())
        assert sorted(record["input_sha256"]) == sorted(INPUTS)

        # one exam given file by file: --input NAME=FILE for PD beside the shorthands
        single = tmp_path / "single"
        e = exams[2]
        assert main(["-q", "predict", "--t1w", str(e.t1w), "--t2w", str(e.t2w), "--flair",
                     str(e.flair), "--input", f"PD={e.files['PD']}", "-m", str(run / "model"),
                     "-o", str(single), "--device", "cpu"]) == 0
        assert O.SUMMARY.path(single, e).is_file()
        # without the PD the 4-input model refuses the exam, naming the sequence
        assert main(["-q", "predict", "--t1w", str(e.t1w), "--t2w", str(e.t2w), "--flair",
                     str(e.flair), "-m", str(run / "model"), "-o", str(tmp_path / "no_pd"),
                     "--device", "cpu"]) == 1
        assert "PD" in capsys.readouterr().err

        # evaluate and review read the 4-input predictions
        report = tmp_path / "evaluation"
        assert main(["-q", "evaluate", str(pred), "-r", str(bids), "-o", str(report),
                     "--participant-label", "00", "01"]) == 0
        rows = read_tsv(report / "per_exam.tsv")
        assert [r["exam"] for r in rows] == ["sub-00", "sub-01"]
        site = tmp_path / "site"
        assert main(["-q", "review", str(pred), "--bids", str(bids), "-o", str(site)]) == 0
        assert len(list(site.glob("data/*/PD.js"))) == 2  # the PD volume is shown

    # unregistered again: the same files are no exam input, the name is refused with the list
    assert "PD" not in discover(bids)[0].files
    assert main(["-q", "predict", "--input", f"PD={exams[0].files['PD']}", "--subject", "00",
                 "-m", str(run / "model"), "-o", str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "unknown sequence 'PD'" in err and "T1w, T2w, FLAIR, T1w_gd" in err
