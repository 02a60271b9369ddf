"""The sequence registry (gdsynth.io.sequences) and what reads it: Exam.files, discovery of the
registry's datatype folders, cohort-table columns, --input NAME=FILE and the model card."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gdsynth.cli.main import main
from gdsynth.cli.predict import parse_inputs
from gdsynth.errors import ConfigError, MissingSequenceError, ModelError
from gdsynth.io import Geometry, write_image
from gdsynth.io.bids import Exam, discover, raw_path, read_table
from gdsynth.io.sequences import (
    SEQUENCES,
    Role,
    SequenceInfo,
    classify,
    input_names,
    names,
    register,
    registered,
    sequence,
)
from gdsynth.models.card import ModelCard
from gdsynth.preprocess import PrepConfig

DWI = SequenceInfo("DWI", "dwi", datatype="dwi", description="diffusion-weighted (trace)")
GRID = Geometry((8, 8, 4), (2.0, 2.0, 2.0), (0.0, 0.0, 0.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))


def test_the_builtin_sequences_and_their_bids_names():
    assert names() == ("T1w", "T2w", "FLAIR", "T1w_gd")
    assert input_names() == ("T1w", "T2w", "FLAIR") and names(Role.TARGET) == ("T1w_gd",)
    assert sequence("T1w_gd").entity_dict == {"ce": "gadolinium"}
    assert classify("T1w", {}) == "T1w" and classify("FLAIR", {"acq": "3d"}) == "FLAIR"
    for ce in ("gadolinium", "Gd", "gado"):
        assert classify("T1w", {"ce": ce}) == "T1w_gd"
    assert classify("T1w", {"ce": "other"}) is None and classify("T2w", {"ce": "gd"}) is None
    assert classify("PDw", {}) is None


def test_lookups_and_registration_errors_name_the_valid_sequences():
    with pytest.raises(ConfigError, match="unknown sequence 'PD'; registered: T1w, T2w, FLAIR, T1w_gd"):
        sequence("PD")
    with pytest.raises(ConfigError, match="already registered"):
        register(SequenceInfo("T2w", "T2w"))
    with pytest.raises(ConfigError, match="BIDS naming of 'T1w_gd'"):
        register(SequenceInfo("Gd", "T1w", (("ce", "gd"),)))
    with pytest.raises(ConfigError, match="alphanumeric"):
        register(SequenceInfo("my seq", "X"))
    with registered(DWI):
        assert input_names() == ("T1w", "T2w", "FLAIR", "DWI")
    assert "DWI" not in SEQUENCES


def test_exam_files_and_its_views():
    exam = Exam("01", None, {"FLAIR": "f.nii.gz", "T1w": "t1.nii.gz", "T2w": None})
    assert list(exam.files) == ["T1w", "FLAIR"]  # registry order, None dropped
    assert exam.t1w.name == "t1.nii.gz" and exam.t2w is None and exam.t1w_gd is None
    assert exam.missing() == ["T2w"] and exam.missing(("T1w",)) == []
    with pytest.raises(MissingSequenceError, match="lacks required sequence.*T2w"):
        exam.require()
    with pytest.raises(ConfigError, match="unknown sequence 'PD'"):
        Exam("01", None, {"PD": "pd.nii.gz"})
    with pytest.raises(ConfigError, match="registered: T1w"):
        exam.path("DWI")
    assert Exam("01", None, {"T1w": "t1.nii.gz"}) == Exam("01", files={"T1w": "t1.nii.gz"})
    assert len({Exam("01"), Exam("01")}) == 1


def test_discovery_scans_the_datatype_folders_of_the_registry(tmp_path):
    bids = tmp_path / "bids"
    exam = Exam("01", "a")
    for name in ("T1w", "FLAIR"):
        write_image(raw_path(bids, exam, name), np.ones(GRID.shape, np.float32), GRID)
    dwi_file = bids / "sub-01" / "ses-a" / "dwi" / "sub-01_ses-a_dwi.nii.gz"
    write_image(dwi_file, np.ones(GRID.shape, np.float32), GRID)
    assert list(discover(bids)[0].files) == ["T1w", "FLAIR"]  # dwi/ is no registered folder
    with registered(DWI):
        found = discover(bids)[0]
        assert found.files["DWI"] == dwi_file and raw_path(bids, exam, "DWI") == dwi_file
        assert found.missing(("T1w", "FLAIR", "DWI")) == []
        # a cohort table has one column per registered sequence (its name in lower case)
        table = tmp_path / "cohort.tsv"
        table.write_text(f"subject\tt1w\tdwi\n02\t{found.t1w}\t{dwi_file}\n")
        assert read_table(table)[0].files == {"T1w": found.t1w, "DWI": dwi_file}


def test_model_card_inputs_and_preparation_follow_the_registry():
    arch = {"name": "unet", "kwargs": {}}
    with pytest.raises(ModelError, match=r"choose from \('T1w', 'T2w', 'FLAIR'\)"):
        ModelCard(arch, inputs=["T1w", "DWI"])
    with pytest.raises(ConfigError, match="DWI unknown; choose among T1w, T2w, FLAIR"):
        PrepConfig(sequences=("T1w", "DWI"))
    with registered(DWI):
        card = ModelCard(arch, inputs=["T1w", "T2w", "FLAIR", "DWI"])
        assert ModelCard.from_dict(card.to_dict()).inputs == card.inputs
        assert PrepConfig().sequences == ("T1w", "T2w", "FLAIR", "DWI")
    assert PrepConfig().sequences == ("T1w", "T2w", "FLAIR")


def test_input_option_parsing(tmp_path):
    t1 = tmp_path / "t1.nii.gz"
    assert parse_inputs(["FLAIR=fl.nii.gz"], T1w=t1, T2w=None) == {"T1w": t1,
                                                                   "FLAIR": Path("fl.nii.gz")}
    with pytest.raises(ConfigError, match="expected NAME=FILE"):
        parse_inputs(["T1w"])
    with pytest.raises(ConfigError, match="unknown sequence 'T1'.*T1w, T2w, FLAIR"):
        parse_inputs(["T1=t1.nii.gz"])
    with pytest.raises(ConfigError, match="T1w given twice"):
        parse_inputs(["T1w=b.nii.gz"], T1w=t1)


def test_predict_input_option_errors_name_the_sequence_or_the_file(tmp_path, capsys):
    missing = tmp_path / "sub-01_T1w.nii.gz"
    assert main(["-q", "predict", "--input", f"T1w={missing}", "-m", "phantom",
                 "-o", str(tmp_path / "out")]) == 2
    assert str(missing) in capsys.readouterr().err
    assert main(["-q", "predict", "--input", "T1=x.nii.gz", "-m", "phantom",
                 "-o", str(tmp_path / "out")]) == 2
    assert "unknown sequence 'T1'" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
