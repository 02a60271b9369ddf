"""Missing sequences at inference (issue #18): a model trained with input drop-out predicts exams
without T2w or with the T1w alone, says which inputs it used (activity summary, run summary,
CLI, review), and a model not trained to miss a sequence refuses the exam, naming it."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest

from gdsynth.cli.main import main
from gdsynth.inference import outputs as O
from gdsynth.io import read_tsv, write_image, write_labels
from gdsynth.io.bids import Exam, derivative_path, discover
from gdsynth.models.card import CARD_NAME
from tests.data.fakes import GEOMETRY, fake_exam_arrays
from tests.fixtures.training import TINY

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def _bids(root, n: int = 3):
    """``n`` tiny raw exams (32x32x16 at 2 mm) with every sequence and the enhancing truth."""
    for i in range(n):
        a = fake_exam_arrays(i)
        p = f"sub-{i:02d}"
        for key, name in (("T1w", "T1w"), ("T2w", "T2w"), ("FLAIR", "FLAIR"),
                          ("T1w_gd", "ce-gadolinium_T1w")):
            write_image(root / p / "anat" / f"{p}_{name}.nii.gz", a[key].astype(np.float32),
                        GEOMETRY)
        write_labels(derivative_path(root / "derivatives" / "phantom", Exam(f"{i:02d}"), "dseg",
                                     desc="enhancing"), a["truth"], GEOMETRY)
    return root


@pytest.fixture(scope="module")
def dropout_model(tmp_path_factory):
    """A tiny model trained 2 steps with input drop-out on T2w and FLAIR (no lesion stage)."""
    root = tmp_path_factory.mktemp("dropout")
    bids = _bids(root / "bids")
    run = root / "run"
    assert main(["-q", "train", str(bids), "-o", str(run), "--config", str(TINY),
                 "--max-steps", "2", "--no-fit-detector", "--set", "data.input_dropout=0.5",
                 "--set", "data.optional_inputs=[T2w,FLAIR]"]) == 0
    return run / "model", bids


def _gappy(bids, root):
    """A copy of ``bids`` where sub-01 lacks its T2w and sub-02 has only its T1w (and post-Gd)."""
    out = root / "gappy"
    shutil.copytree(bids, out)
    (out / "sub-01/anat/sub-01_T2w.nii.gz").unlink()
    for name in ("T2w", "FLAIR"):
        (out / f"sub-02/anat/sub-02_{name}.nii.gz").unlink()
    return out


def test_a_dropout_model_predicts_exams_missing_sequences(dropout_model, tmp_path, capsys):
    model, bids = dropout_model
    card = json.loads((model / CARD_NAME).read_text())
    assert card["optional_inputs"] == ["T2w", "FLAIR"]
    gappy = _gappy(bids, tmp_path)
    pred = tmp_path / "pred"
    assert main(["predict", str(gappy), "-m", str(model), "-o", str(pred),
                 "--device", "cpu"]) == 0
    err = capsys.readouterr().err
    assert "sub-01: inputs T1w, FLAIR (no T2w)" in err
    assert "sub-02: inputs T1w (no T2w, FLAIR)" in err
    exams = {e.id: e for e in discover(gappy)}
    expected = {"sub-00": (["T1w", "T2w", "FLAIR"], []), "sub-01": (["T1w", "FLAIR"], ["T2w"]),
                "sub-02": (["T1w"], ["T2w", "FLAIR"])}
    for exam_id, (used, missing) in expected.items():
        summary = json.loads(O.SUMMARY.path(pred, exams[exam_id]).read_text())
        assert (summary["inputs_used"], summary["inputs_missing"]) == (used, missing)
        assert sorted(summary["input_sha256"]) == sorted(used)
        assert ("made without" in summary["reason"]) == bool(missing)
        if missing:
            assert f"made without {', '.join(missing)}" in summary["reason"]
        synth = json.loads(O.SYNTHESIS_RECORD.path(pred, exams[exam_id]).read_text())
        assert synth["inputs_missing"] == missing
    rows = {r["exam"]: r for r in read_tsv(pred / "run_summary.tsv")}
    assert rows["sub-01"]["inputs"] == "T1w, FLAIR (no T2w)"
    assert rows["sub-00"]["inputs"] == "T1w, T2w, FLAIR"

    # the review shows what each prediction was made from, on the exam page and the cohort table
    site = tmp_path / "site"
    assert main(["-q", "review", str(pred), "--bids", str(gappy), "-o", str(site)]) == 0
    index = (site / "index.html").read_text()
    assert "T1w, FLAIR (no T2w)" in index and "T1w (no T2w, FLAIR)" in index
    pages = {p.name: p.read_text() for p in site.glob("exam-*.html")}
    assert any("inputs: <b>T1w, FLAIR (no T2w)</b>" in t and "sub-01" in t
               for t in pages.values())

    # one exam file by file without T2w: the shorthands suffice
    single = tmp_path / "single"
    e = exams["sub-01"]
    assert main(["-q", "predict", "--t1w", str(e.t1w), "--flair", str(e.flair), "-m", str(model),
                 "-o", str(single), "--device", "cpu", "--explain"]) == 0
    summary = json.loads(O.SUMMARY.path(single, e).read_text())
    assert summary["inputs_used"] == ["T1w", "FLAIR"] and summary["inputs_missing"] == ["T2w"]
    # --explain attributes lesions to the inputs given only: no T2w column, no T2w map
    names = [p.name for p in single.rglob("*attribution*")]
    assert any("FLAIR" in n for n in names) and not any("T2w" in n for n in names)
    header = O.LESION_TABLE.path(single, e).read_text().splitlines()[0].split("\t")
    assert not any(h.endswith("_T2w") for h in header)


def test_a_model_not_trained_to_miss_a_sequence_refuses_the_exam(dropout_model, tmp_path,
                                                                 capsys):
    """The same weights with a card without optional_inputs (every card written before input
    drop-out): the exam without T2w fails naming T2w, the complete exam of the cohort is done."""
    model, bids = dropout_model
    strict = tmp_path / "strict"
    shutil.copytree(model, strict)
    card = json.loads((strict / CARD_NAME).read_text())
    card["optional_inputs"] = []
    (strict / CARD_NAME).write_text(json.dumps(card))
    gappy = _gappy(bids, tmp_path)
    pred = tmp_path / "pred"
    assert main(["-q", "predict", str(gappy), "-m", str(strict), "-o", str(pred),
                 "--participant-label", "00", "01", "--device", "cpu"]) == 1
    err = capsys.readouterr().err
    assert "exam sub-01 lacks required sequence(s): T2w (this model cannot run without it; " \
           "trained without input drop-out, it needs all of T1w, T2w, FLAIR)" in err
    rows = {r["exam"]: r for r in read_tsv(pred / "run_summary.tsv")}
    assert rows["sub-00"]["status"] == "done" and rows["sub-01"]["status"] == "failed"
    assert "sub-01_T1w.nii.gz" in rows["sub-01"]["error"]  # names the exam's file
    e = discover(gappy, ["01"])[0]
    assert not O.SUMMARY.path(pred, e).exists()  # never a silent zero-fill
    # one exam given file by file: the same error, nothing written for it
    assert main(["-q", "predict", "--t1w", str(e.t1w), "--flair", str(e.flair), "-m", str(strict),
                 "-o", str(tmp_path / "single"), "--device", "cpu"]) == 1
    assert "lacks required sequence(s): T2w" in capsys.readouterr().err
