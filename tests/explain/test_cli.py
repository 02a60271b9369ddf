"""`gdsynth explain` on a prediction folder and `gdsynth predict --explain --detector`."""

from __future__ import annotations

import numpy as np
import pytest

from gdsynth.cli.main import main
from gdsynth.detection.detect import DetectionResult
from gdsynth.explain import folder as explain_folder_module
from gdsynth.inference import cohort
from gdsynth.inference import outputs as O
from gdsynth.io import read_image, read_tsv, write_labels, write_tsv
from gdsynth.io.bids import discover
from tests.fixtures.inference import make_model, simple_prepare, write_exam

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")
SEQS = ("T1w", "T2w", "FLAIR")


@pytest.fixture()
def bids(tmp_path):
    root = tmp_path / "bids"
    write_exam(root, "01", "LPS", seed=0)
    write_exam(root, "02", "RAS", seed=5)
    return root


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    return make_model(tmp_path_factory.mktemp("m") / "tiny", heads=("enhancing",), dropout=0.0)


def _blob_labels(prep) -> np.ndarray:
    """Two lesions near the bright blob of tests.fixtures.inference.head, prepared grid."""
    labels = np.zeros(prep.brain_mask.shape, np.int32)
    x, y, z = (s // 2 for s in labels.shape)
    labels[x + 1 : x + 4, y - 1 : y + 2, z - 2 : z] = 1
    labels[x - 4 : x - 2, y + 2 : y + 4, z + 1 : z + 3] = 2
    return labels


def _fake_detection(prep, synth, params, domain=None, *, stage=None) -> DetectionResult:
    labels = _blob_labels(prep)
    lesions = [{"label": k, "i": float(np.argwhere(labels == k).mean(0)[0]),
                "j": float(np.argwhere(labels == k).mean(0)[1]),
                "k": float(np.argwhere(labels == k).mean(0)[2]), "volume_mm3": 48.0,
                "mean_enhancement": 0.3, "max_enhancement": 0.5, "score": 0.9 - 0.1 * k}
               for k in (1, 2)]
    summary = {"probability_active": 0.8, "n_lesions": 2, "refer_for_gadolinium": False,
               "reason": "test", "detector": params.detector}
    return DetectionResult(labels, lesions, summary)


def test_predict_explain_adds_columns_and_maps(bids, model, tmp_path, monkeypatch):
    monkeypatch.setattr(cohort, "prepare_exam", simple_prepare)
    monkeypatch.setattr(cohort, "detect_synthesis", _fake_detection)
    out = tmp_path / "pred"
    args = ["-q", "predict", str(bids), "-m", str(model), "-o", str(out), "--device", "cpu",
            "--detector", "combined", "--explain", "--participant-label", "01"]
    assert main(args) == 0
    exam = discover(bids, ["01"])[0]
    rows = read_tsv(O.LESION_TABLE.path(out, exam))
    assert len(rows) == 2
    for row in rows:
        for method in ("ablation", "ig"):
            vals = [float(row[f"attr_{method}_{s}"]) for s in SEQS]
            assert sum(abs(v) for v in vals) == pytest.approx(1.0, abs=1e-4)
    summary = O.read_record(O.SUMMARY.path(out, exam))
    assert summary["detection"]["detector"] == "combined" and summary["explain"] is True
    for s in SEQS:
        arr, geometry = read_image(O.attribution_output(s).path(out, exam), allow_constant=True)
        assert geometry.same_grid(read_image(exam.t1w)[1]) and np.abs(arr).sum() > 0
    assert main([*args[:-1], "02", "--detector", "bogus"]) != 0


def test_explain_command_on_prediction_folder(bids, model, tmp_path, monkeypatch):
    monkeypatch.setattr(explain_folder_module, "prepare_exam", simple_prepare)
    pred = tmp_path / "pred"
    from gdsynth.inference.prep import to_native
    from gdsynth.models.folder import load_model_folder

    _, card = load_model_folder(model)
    for exam in discover(bids):
        prep = simple_prepare(exam, card)
        labels = to_native(prep, _blob_labels(prep), nearest=True)
        write_labels(O.LESION_LABELS.path(pred, exam), labels, prep.native_geometry)
        write_tsv(O.LESION_TABLE.path(pred, exam),
                  [{"label": 1, "score": 0.9}, {"label": 2, "score": 0.5}], O.LESION_COLUMNS)
    out = tmp_path / "explained"
    assert main(["-q", "explain", str(pred), "--bids", str(bids), "-m", str(model), "-o", str(out),
                 "--ig-steps", "4", "--device", "cpu"]) == 0
    importance = read_tsv(out / "sequence_importance.tsv")
    assert {(r["method"], r["sequence"]) for r in importance} == {
        (m, s) for m in ("ablation", "ig") for s in SEQS}
    assert all(int(r["n_lesions"]) == 4 for r in importance)
    assert sum(float(r["mean_abs_share"]) for r in importance if r["method"] == "ig") == \
        pytest.approx(1.0, abs=1e-4)
    rows = read_tsv(O.LESION_TABLE.path(out, discover(bids)[0]))
    assert list(rows[0])[: len(O.LESION_COLUMNS)] == list(O.LESION_COLUMNS)
    assert "attr_ig_FLAIR" in rows[0] and "ablation_delta_T2w" in rows[0]
    assert main(["-q", "explain", str(tmp_path / "nothing"), "--bids", str(bids), "-m",
                 str(model), "-o", str(tmp_path / "o2"), "--method", "shap"]) != 0


def test_detector_override_reaches_detection(bids, model, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(cohort, "prepare_exam", simple_prepare)
    out = tmp_path / "seg"
    base = ["-q", "predict", str(bids), "-m", str(model), "--device", "cpu",
            "--participant-label", "02"]
    assert main([*base, "-o", str(out), "--detector", "segmentation"]) == 0
    exam = discover(bids, ["02"])[0]
    assert O.read_record(O.SUMMARY.path(out, exam))["detection"]["detector"] == "segmentation"
    assert not O.attribution_output("FLAIR").path(out, exam).exists()  # no --explain
    headless = make_model(tmp_path / "headless", heads=())
    assert main([*base[:4], str(headless), *base[5:], "-o", str(tmp_path / "h"),
                 "--detector", "combined"]) == 1
    assert "needs heads['enhancing']" in capsys.readouterr().err
