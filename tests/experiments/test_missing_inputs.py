"""experiments/missing_inputs.py's pure helpers, without training: the models' inputs, the
(subset, model) pairs tested, the preparation comparison and the table."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from tests.utils import load_experiment


@pytest.fixture(scope="module")
def mi():
    return load_experiment("missing_inputs")


def test_model_inputs_and_plan(mi):
    assert mi.model_inputs("dropout") == ["T1w", "T2w", "FLAIR"]
    assert mi.model_inputs("noFLAIR") == ["T1w", "T2w"]
    assert mi.model_inputs("T1w") == ["T1w"]
    with pytest.raises(ValueError, match="unknown model 'PD'.*dropout"):
        mi.model_inputs("PD")
    # the drop-out model on every subset, each subset model on its own, subset by subset
    assert mi.plan(["dropout", "T1w", "all"]) == [
        ("all", "dropout"), ("all", "all"), ("noT2w", "dropout"), ("noFLAIR", "dropout"),
        ("T1w", "dropout"), ("T1w", "T1w")]
    # the preparation of a subset is predict's: only the sequences present, with the post-Gd
    config = mi.subset_config(mi.SUBSETS["noFLAIR"])
    assert config.sequences == ("T1w", "T2w") and config.use_post and config.spacing is None


def test_prep_difference(mi):
    mask = np.zeros((4, 4, 4), bool)
    mask[1:3, 1:3, 1:3] = True
    part_mask = mask.copy()
    part_mask[1, 1, 1] = False
    t1 = np.ones((4, 4, 4), np.float32)
    full = SimpleNamespace(mask=mask, images={"T1w": t1, "FLAIR": t1})
    part = SimpleNamespace(mask=part_mask, images={"T1w": t1 * 1.5})
    d = mi.prep_difference(full, part)
    assert d["max_abs_T1w"] == pytest.approx(0.5)
    assert "max_abs_FLAIR" not in d  # only the images the subset's preparation holds
    assert d["mask_dice"] == pytest.approx(2 * 7 / 15)
    assert d["mask_voxels"] == [8, 7]


def test_table(mi):
    op = {"value": 0.5, "k": 6, "n": 12}
    report = {"subset": "T1w", "model": "dropout", "inputs_used": ["T1w"], "stage": True, "summary": {
        "synthesis": {"ssim": {"mean": 0.91, "sd": 0.01}, "psnr": {"mean": 30.0}},
        "lesions": {"sensitivity": 0.2, "ppv": None, "f1": 0.0, "fp_per_scan": 0.0,
                    "n_detected": 5, "n_reference": 25},
        "patient": {"auc": 0.6, "auc_ci95": [0.4, 0.8], "operating_point": {
            "sensitivity": op, "specificity": op}}}}
    row = mi.table_row(report)
    assert row["inputs"] == "T1w" and row["mae_enhancing"] is None and row["f1_ci95"] == [None, None]
    table = mi.render([row])
    assert table.splitlines()[2] == (
        "| T1w (T1w) | dropout | stage | 0.910 ± 0.010 | 30.00 | n/a | 0.20 (5/25) | n/a | 0.00 (n/a-n/a) "
        "| 0.00 | 0.60 (0.40-0.80) | 0.50 (6/12) | 0.50 (6/12) |")
    assert mi.jsonable({"a": [float("nan"), np.float32(1.5)]}) == {"a": [None, 1.5]}


def test_cached_results_in_plan_order(mi, tmp_path):
    import json

    (tmp_path / "runs").mkdir()
    (tmp_path / "eval").mkdir()
    (tmp_path / "runs" / "dropout.json").write_text(json.dumps({"steps": 800}))
    for subset in ("T1w", "all"):
        (tmp_path / "eval" / f"{subset}__dropout.json").write_text(json.dumps({"subset": subset}))
    records, check, reports = mi.cached_results(tmp_path, ["dropout", "T1w"])
    assert records == {"dropout": {"steps": 800}} and check == {}
    assert [r["subset"] for r in reports] == ["all", "T1w"]  # the table's order, missing pairs left out
