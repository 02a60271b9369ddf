"""File layer, folder layer and CLI on tiny NIfTI files mimicking PRED and a reference dataset."""

import json

import numpy as np
import pytest

from gdsynth.cli.main import main
from gdsynth.evaluation import ReferenceSpec, compare_methods, evaluate_exam, evaluate_folder
from gdsynth.io import Geometry, read_tsv, write_image, write_json, write_labels, write_tsv
from gdsynth.io.bids import Exam, derivative_path, discover
from gdsynth.preprocess.orient import reorient_to_ras

SHAPE = (24, 22, 16)
LPS = Geometry(SHAPE, (1.0, 1.0, 1.5), (10.0, -20.0, 5.0), (1, 0, 0, 0, 1, 0, 0, 0, 1))
SCALE = 250.0  # input T1w units per normalized unit


def _anatomy(seed):
    rng = np.random.default_rng(seed)
    brain = np.zeros(SHAPE, bool)
    brain[3:21, 3:19, 2:14] = True
    pre = np.where(brain, 1.0 + 0.05 * rng.standard_normal(SHAPE), 0.05).astype(np.float32)
    enh = np.zeros(SHAPE, np.int32)
    enh[6:10, 6:10, 5:9] = 1  # 96 mm³ medium
    enh[14:16, 12:14, 8:10] = 2  # 12 mm³ small
    post = pre + 0.8 * (enh > 0)
    return brain, pre, post.astype(np.float32), enh


def _write_dataset(tmp_path):
    ref, pred = tmp_path / "bids", tmp_path / "pred"
    for n, sub in enumerate(("01", "02", "03")):
        brain, pre, post, enh = _anatomy(n)
        exam = Exam(sub)
        anat = ref / f"sub-{sub}" / "anat"
        write_image(anat / f"sub-{sub}_T1w.nii.gz", pre * SCALE, LPS)
        write_image(anat / f"sub-{sub}_T2w.nii.gz", pre, LPS)
        write_image(anat / f"sub-{sub}_FLAIR.nii.gz", pre, LPS)
        write_image(anat / f"sub-{sub}_ce-gadolinium_T1w.nii.gz", post * SCALE * 1.3, LPS)
        if sub == "03":  # no active lesion in this exam
            enh[:] = 0
        truth = ref / "derivatives" / "phantom"
        write_labels(derivative_path(truth, exam, "dseg", desc="enhancing"), enh, LPS)
        write_labels(derivative_path(truth, exam, "mask", label="L", desc="all"), enh > 0, LPS)
        write_labels(derivative_path(truth, exam, "mask", desc="brain"), brain, LPS)
        prep = ref / "derivatives" / "gdsynth-prep"  # prepared space: RAS voxel order
        for name, arr, ents in (("T1w", pre, {"desc": "preproc"}),
                                ("T1w", post, {"ce": "gadolinium", "desc": "preproc"})):
            ras, geo = reorient_to_ras(arr, LPS)
            write_image(derivative_path(prep, exam, name, **ents), ras, geo)
        if sub == "02":
            continue  # no prediction for sub-02
        # prediction: lesion 1 found, plus one false positive; sub-03 gets a quiet FP-free map
        labels = np.zeros(SHAPE, np.int32)
        if sub == "01":
            labels[6:10, 6:9, 5:9] = 1
            labels[17:20, 4:7, 10:12] = 2
        synth = (post if sub == "01" else pre) * SCALE
        write_image(derivative_path(pred, exam, "T1w", ce="gadolinium", desc="synthetic"), synth, LPS)
        write_labels(derivative_path(pred, exam, "dseg", desc="enhancing"), labels, LPS)
        rows = [{"label": 1, "score": 0.9}, {"label": 2, "score": 0.4}] if sub == "01" else []
        write_tsv(derivative_path(pred, exam, "lesions", ".tsv", desc="enhancing"), rows,
                  ["label", "score"])
        write_json(derivative_path(pred, exam, "summary", ".json", desc="activity"),
                   {"probability_active": 0.8 if sub == "01" else 0.3,
                    "refer_for_gadolinium": sub == "01"})
    return ref, pred


def test_evaluate_exam_and_normalization(tmp_path):
    ref, pred = _write_dataset(tmp_path)
    exams = {e.subject: e for e in discover(ref)}
    r = evaluate_exam(exams["01"], pred, ReferenceSpec(ref))
    assert r.ok and r.match.n_reference == 2 and r.match.n_detected == 1
    assert r.match.n_false_positive == 1
    # the synthetic equals the real post up to the input scale: normalization must undo it
    assert r.synthesis["mae"] < 1e-3 and r.synthesis["ssim"] > 0.999
    assert r.probability_active == 0.8 and r.refer is True
    missing = evaluate_exam(exams["02"], pred, ReferenceSpec(ref))
    assert missing.status == "missing_prediction" and not missing.ok


def test_evaluate_folder_writes_report(tmp_path):
    ref, pred = _write_dataset(tmp_path)
    out = tmp_path / "report"
    rep = evaluate_folder(pred, ReferenceSpec(ref), out, progress=False)
    s = rep.summary
    assert s["n_exams"] == 3 and s["n_evaluated"] == 2
    assert s["status_counts"] == {"ok": 2, "missing_prediction": 1}
    les = s["lesions"]
    assert (les["n_reference"], les["n_detected"], les["n_false_positive"]) == (2, 1, 1)
    assert les["fp_per_scan"] == 0.5
    assert les["by_size"]["small"]["n_reference"] == 1 and les["by_size"]["small"]["n_detected"] == 0
    assert s["patient"]["auc"] == 1.0 and s["patient"]["operating_point"]["npv"]["value"] == 1.0
    lesion_rows = read_tsv(out / "lesions.tsv")
    assert [row["detected"] for row in lesion_rows] == ["true", "false"]
    assert {row["size_class"] for row in lesion_rows} == {"medium", "small"}
    per_exam = read_tsv(out / "per_exam.tsv")
    assert [row["status"] for row in per_exam] == ["ok", "missing_prediction", "ok"]
    loaded = json.loads((out / "summary.json").read_text())
    assert loaded["froc"]["points"][-1]["fp_per_scan"] == 0.5
    for png in ("froc.png", "roc.png", "calibration.png", "sensitivity_by_size.png"):
        assert (out / png).stat().st_size > 1000
    table = compare_methods({"gdsynth": loaded, "post = pre": {"lesions": {"sensitivity": 0.0}}})
    assert table.splitlines()[2].startswith("| gdsynth | 2 |")
    assert "| post = pre | n/a |" in table


def test_truth_pattern_and_cli(tmp_path):
    ref, pred = _write_dataset(tmp_path)
    masks = tmp_path / "bids" / "expert"
    for sub in ("01", "02", "03"):
        _, _, _, enh = _anatomy(int(sub) - 1)
        write_labels(masks / f"{sub}_gd.nii.gz", (enh == 1).astype(np.uint8), LPS)
    out = tmp_path / "rep"
    code = main(["evaluate", str(pred), "--reference", str(ref), "-o", str(out),
                 "--truth-pattern", "expert/{subject}_gd.nii.gz", "--no-plots"])
    assert code == 0
    s = json.loads((out / "summary.json").read_text())
    assert s["lesions"]["n_reference"] == 2  # one expert lesion in each of sub-01 and sub-03
    assert s["lesions"]["n_detected"] == 1


def test_cli_exits_nonzero_when_nothing_evaluated(tmp_path):
    ref, _ = _write_dataset(tmp_path)
    empty = tmp_path / "nothing"
    empty.mkdir()
    assert main(["evaluate", str(empty), "--reference", str(ref), "-o", str(tmp_path / "r")]) == 1
    assert main(["evaluate", str(empty), "--reference", str(ref), "--alpha", "0.1",
                 "--connectivity", "5"]) == 2


def test_derived_reference(tmp_path):
    ref, pred = _write_dataset(tmp_path)
    exams = {e.subject: e for e in discover(ref)}
    r = evaluate_exam(exams["01"], pred, ReferenceSpec(ref, derive=True))
    # the 96 mm³ lesion (+0.8) survives smoothing; the 12 mm³ one is blurred below threshold/size
    assert r.ok and r.match.n_reference >= 1
    assert r.match.reference[0]["detected"]


def test_truth_table(tmp_path):
    ref, pred = _write_dataset(tmp_path)
    _, _, _, enh = _anatomy(0)
    write_labels(tmp_path / "masks" / "a.nii.gz", (enh == 2).astype(np.uint8), LPS)
    table = tmp_path / "truth.tsv"
    table.write_text("subject\ttruth\nsub-01\tmasks/a.nii.gz\n")
    rep = evaluate_folder(pred, ReferenceSpec(ref, truth_table=table), progress=False)
    assert rep.summary["status_counts"] == {"ok": 1, "missing_prediction": 1,
                                            "missing_reference": 1}
    assert rep.summary["lesions"]["n_reference"] == 1  # the small lesion only, missed
    assert rep.summary["lesions"]["n_detected"] == 0


def test_without_preparation_synthesis_needs_assume_registered(tmp_path):
    import shutil

    ref, pred = _write_dataset(tmp_path)
    shutil.rmtree(ref / "derivatives" / "gdsynth-prep")
    exam = {e.subject: e for e in discover(ref)}["01"]
    r = evaluate_exam(exam, pred, ReferenceSpec(ref))
    assert r.ok and r.synthesis is None and "gdsynth prepare" in r.notes[0]
    r2 = evaluate_exam(exam, pred, ReferenceSpec(ref, assume_registered=True))
    assert r2.synthesis is not None and r2.synthesis["mae"] < 0.01


def test_old_gdsynth_names_are_read_with_a_deprecation_warning(tmp_path):
    """A folder written by gdsynth 0.1 (``_label-L_desc-enhancing_dseg``) still evaluates, the
    same as under the new names, with a warning that says so (#20)."""
    from gdsynth.io.bids import GdsynthDeprecationWarning

    ref, pred = _write_dataset(tmp_path)
    exam = {e.subject: e for e in discover(ref)}["01"]
    new = evaluate_exam(exam, pred, ReferenceSpec(ref))
    for root in (pred, ref / "derivatives" / "phantom"):
        for p in root.rglob("*_desc-enhancing_dseg.nii.gz"):
            p.rename(p.with_name(p.name.replace("_desc-enhancing_dseg", "_label-L_desc-enhancing_dseg")))
    with pytest.warns(GdsynthDeprecationWarning, match="old name"):
        old = evaluate_exam(exam, pred, ReferenceSpec(ref))
    assert old.ok and (old.match.n_reference, old.match.n_detected) == (2, 1)
    assert old.row() == new.row()
