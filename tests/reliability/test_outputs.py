"""Where and what ``predict`` writes (issue #17.5, #17.6): never into another pipeline's folder
unless asked, and an exam's outputs replaced as a set on a rerun."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from gdsynth.inference import outputs as O
from gdsynth.io.bids import Exam
from tests.reliability.common import SEQUENCES, run_cli, traceback_free, tree_hashes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

EXAM = Exam("01")


def _predict(phantom4: Path, model: Path, out: Path, *extra: str):
    anat = phantom4 / "sub-001" / "anat"
    files = [a for s in SEQUENCES for a in (f"--{s.lower()}", str(anat / f"sub-001_{s}.nii.gz"))]
    return run_cli(["-q", "predict", *files, "--subject", "01", "-m", str(model), "-o", str(out),
                    "--device", "cpu", *extra])


def _exam_files(out: Path) -> set[str]:
    return {p.name for p in O.SUMMARY.path(out, EXAM).parent.iterdir()}


def test_rerun_replaces_the_exam_outputs_as_a_set(phantom4, random_model, tmp_path):
    """--mc-samples 3 then --mc-samples 1 --overwrite: the old uncertainty map is gone (the review
    would show it beside the new results), and so are attribution maps of an earlier --explain."""
    out = tmp_path / "out"
    first = _predict(phantom4, random_model, out, "--mc-samples", "3", "--explain")
    assert first.code == 0, first.stderr
    before = _exam_files(out)
    assert O.UNCERTAINTY.path(out, EXAM).name in before
    assert any("attribution" in n for n in before)
    (O.SUMMARY.path(out, EXAM).parent / "notes.txt").write_text("kept: not a gdsynth output")

    second = _predict(phantom4, random_model, out, "--mc-samples", "1")
    assert second.code == 0 and traceback_free(second.stderr), second.stderr
    after = _exam_files(out)
    assert O.UNCERTAINTY.path(out, EXAM).name not in after
    assert not any("attribution" in n for n in after)
    assert "notes.txt" in after
    record = json.loads(O.SYNTHESIS_RECORD.path(out, EXAM).read_text())
    assert record["settings"]["mc_samples"] == 1
    assert json.loads(O.SUMMARY.path(out, EXAM).read_text())["settings"]["mc_samples"] == 1


def _foreign(root: Path, description: dict) -> Path:
    root.mkdir(parents=True)
    (root / "dataset_description.json").write_text(json.dumps(description))
    truth = root / "sub-01" / "anat" / "sub-01_desc-activity_summary.json"
    truth.parent.mkdir(parents=True)
    truth.write_text('{"truth": "of another pipeline"}')
    return root


FOREIGN = {
    "phantom-truth": {"Name": "gdsynth phantom ground truth", "DatasetType": "derivative",
                      "GeneratedBy": [{"Name": "gdsynth"}]},
    "other-tool": {"Name": "fMRIPrep - fMRI PREProcessing workflow", "DatasetType": "derivative",
                   "GeneratedBy": [{"Name": "fMRIPrep", "Version": "23.2.0"}]},
    "gdsynth-prep-cache": {"Name": "gdsynth-prep", "DatasetType": "derivative",
                           "GeneratedBy": [{"Name": "gdsynth"}]},
    "raw-dataset": {"Name": "my study", "BIDSVersion": "1.9.0"},
}


@pytest.mark.parametrize("kind", list(FOREIGN))
def test_foreign_output_folder_refused(kind, phantom4, zero_model, tmp_path):
    out = _foreign(tmp_path / "derivatives" / "other", FOREIGN[kind])
    before = tree_hashes(out)
    result = _predict(phantom4, zero_model, out)
    assert result.code != 0 and traceback_free(result.stderr), result.stderr
    lines = [ln for ln in result.stderr.splitlines() if "--allow-foreign-output" in ln]
    assert len(lines) == 1 and str(out / "dataset_description.json") in lines[0], result.stderr
    assert tree_hashes(out) == before  # nothing written, nothing overwritten


def test_foreign_output_folder_accepted_when_asked(phantom4, zero_model, tmp_path):
    out = _foreign(tmp_path / "derivatives" / "phantom", FOREIGN["phantom-truth"])
    result = _predict(phantom4, zero_model, out, "--allow-foreign-output")
    assert result.code == 0, result.stderr
    assert json.loads((out / "dataset_description.json").read_text())["Name"] == "gdsynth"


def test_own_output_folder_accepted_again(phantom4, zero_model, tmp_path):
    out = tmp_path / "out"
    assert _predict(phantom4, zero_model, out).code == 0
    shutil.rmtree(out / "sub-01")
    again = _predict(phantom4, zero_model, out)
    assert again.code == 0, again.stderr
