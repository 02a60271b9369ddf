"""Missing sequences: the generator input equals training's drop-out layout, the lesion stage
scores the features of a missing sequence as unknown, the checks skip it (issue #18)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from gdsynth.data.patches import to_tensors
from gdsynth.data.subjects import BRAIN
from gdsynth.detection.classifier import fit_model, model_from_dict, raw_score
from gdsynth.detection.context import tissue_context
from gdsynth.detection.detect import detect_lesions
from gdsynth.detection.params import DetectionParams
from gdsynth.detection.stage import LesionStage
from gdsynth.detection.stage_features import STAGE_FEATURES, stage_features
from gdsynth.errors import MissingSequenceError, ModelError
from gdsynth.inference.prep import PreparedExam
from gdsynth.inference.volume import predict_volume
from gdsynth.models.card import ModelCard
from gdsynth.preprocess.domain import domain_flags, domain_reference, intensity_signature
from tests.data.fakes import GEOMETRY, SPACING, fake_exam_arrays

INPUTS = ["T1w", "T2w", "FLAIR"]
CARD = ModelCard(architecture={"name": "unet", "kwargs": {}}, inputs=INPUTS,
                 optional_inputs=["T2w", "FLAIR"], mode="2.5d", context_slices=1)


def test_inference_zero_fill_is_the_training_dropout_layout():
    """The batches the generator gets for an exam without T2w are, slice by slice, what
    training's drop-out (``to_tensors(..., missing={"T2w"})``) made of the same volumes."""
    a = fake_exam_arrays(3)
    prep = PreparedExam({k: a[k].astype(np.float32) for k in ("T1w", "FLAIR")}, a["mask"] > 0,
                        GEOMETRY, GEOMETRY, missing=("T2w",))
    seen: list[torch.Tensor] = []

    def predictor(batch: torch.Tensor) -> torch.Tensor:
        seen.append(batch.clone())
        return torch.zeros(batch.shape[0], 1, *batch.shape[2:])

    predict_volume(predictor, prep.stack(CARD.inputs), CARD, batch_size=5)
    batches = torch.cat(seen)  # (Z, 9, X, Y): slice z's input
    volumes = {k: torch.from_numpy(a[k].astype(np.float32))[None] for k in INPUTS}  # (1, X, Y, Z)
    volumes[BRAIN] = torch.from_numpy(a["mask"].astype(np.float32))[None]
    for z in (1, 7, 14):
        patch = {k: v[..., z - 1:z + 2] for k, v in volumes.items()}
        trained = to_tensors(patch, INPUTS, "2.5d", missing=frozenset({"T2w"}))["input"]
        torch.testing.assert_close(batches[z], trained)
    assert not batches[:, 3:6].any() and batches[:, 6:9].any()  # T2w channels zero, FLAIR not


def test_the_card_says_which_inputs_an_exam_may_lack():
    assert CARD.split_inputs(["T1w", "FLAIR"]) == (["T1w", "FLAIR"], ["T2w"])
    assert CARD.split_inputs(["T1w", "T1w_gd"]) == (["T1w"], ["T2w", "FLAIR"])
    with pytest.raises(MissingSequenceError, match=r"sequence\(s\): T1w .* do without T2w, FLAIR only"):
        CARD.split_inputs(["T2w", "FLAIR"], exam="sub-01")
    old = ModelCard(architecture={"name": "unet", "kwargs": {}}, inputs=INPUTS)
    with pytest.raises(MissingSequenceError, match=r"sub-07 lacks required sequence\(s\): T2w .*needs all of"):
        old.split_inputs(["T1w", "FLAIR"], exam="sub-07", path="t1.nii.gz")


def test_domain_check_skips_a_missing_sequence():
    a = fake_exam_arrays(1)
    mask = a["mask"] > 0
    full = {k: a[k] for k in INPUTS}
    reference = domain_reference([intensity_signature(full, mask, INPUTS)])
    far = {**full, "T2w": full["T2w"] * 5}
    assert any("T2w" in f for f in domain_flags(far, mask, reference))  # the check works
    assert domain_flags({k: full[k] for k in ("T1w", "FLAIR")}, mask, reference) == []


def _features(missing=(), t2w_zeros=False):
    a = fake_exam_arrays(2)
    brain = a["mask"] > 0
    images = {k: a[k].astype(np.float32) for k in INPUTS}
    if t2w_zeros:
        images["T2w"] = np.zeros_like(images["T2w"])
    ctx = tissue_context(brain, SPACING, DetectionParams(), t1w=images["T1w"], flair=images["FLAIR"],
                         t2w=None if "T2w" in missing else images["T2w"])
    enh = (a["T1w_gd"] - a["T1w"]).astype(np.float32)
    return stage_features(a["truth"].astype(np.int32), enh, ctx, images=images, missing=missing)


def test_stage_features_of_a_missing_sequence_are_unknown_not_zero_images():
    full, gap = _features(), _features(missing={"T2w"}, t2w_zeros=True)
    assert len(full) == len(gap) > 0
    for f, g in zip(full, gap, strict=True):
        for name in STAGE_FEATURES:
            if name.startswith("T2w_"):
                assert np.isnan(g[name]) and np.isfinite(f[name])
            elif name.startswith(("FLAIR_", "T1w_", "enh_")):
                assert g[name] == f[name]


def test_logistic_stage_imputes_the_training_mean():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 4))
    y = (x[:, 0] + x[:, 1] + rng.normal(0, 0.5, 200) > 0).astype(int)
    model = fit_model(x, y, "logistic")
    gap = x[:5].copy()
    gap[:, 1] = np.nan
    filled = x[:5].copy()
    filled[:, 1] = model["mean"][1]
    np.testing.assert_allclose(raw_score(model, gap), raw_score(model, filled))


def test_trees_stage_averages_both_branches_by_training_cover():
    tree = {"left": [1, -1, -1], "right": [2, -1, -1], "feature": [0, 0, 0],
            "threshold": [0.5, 0.0, 0.0], "value": [0.0, 1.0, -1.0], "cover": [40.0, 30.0, 10.0]}
    model = model_from_dict({"kind": "trees", "learning_rate": 1.0, "init": 0.0,
                             "trees": [tree]}, 1)
    np.testing.assert_allclose(raw_score(model, np.array([[0.0], [1.0], [np.nan]])),
                               [1.0, -1.0, 0.5])  # (30 * 1 + 10 * -1) / 40
    rng = np.random.default_rng(1)
    x = rng.normal(size=(120, 3))
    y = (x[:, 0] - x[:, 2] > 0).astype(int)
    fitted = model_from_dict(fit_model(x, y, "trees"), 3)
    assert all(len(t["cover"]) == len(t["left"]) for t in fitted["trees"])
    rows = np.vstack([x[:6], [[np.nan, 0.1, 0.2]]])
    scores = raw_score(fitted, rows)
    np.testing.assert_allclose(scores[:6], raw_score(fitted, x[:6]))  # complete rows unchanged
    lo, hi = raw_score(fitted, np.array([[v, 0.1, 0.2] for v in (-9.0, 9.0)]))
    assert min(lo, hi) <= scores[6] <= max(lo, hi)
    old = {**fitted, "trees": [{k: v for k, v in t.items() if k != "cover"}
                               for t in fitted["trees"]]}
    with pytest.raises(ModelError, match="fit the lesion stage again"):
        raw_score(model_from_dict(old, 3), rows)


def test_detection_without_t2w_never_reads_a_zero_image_as_real():
    """With ``missing={"T2w"}`` a zero T2w array passed along is ignored: same candidates and
    scores as without it, and the stage's T2w features are NaN, its scores finite."""
    a = fake_exam_arrays(4)
    rng = np.random.default_rng(0)
    names = [n for n in STAGE_FEATURES if not n.startswith("unc_")]  # no MC dropout here
    x = rng.normal(size=(60, len(names)))
    model = fit_model(x, (x[:, 0] > 0).astype(int), "logistic")
    stage = LesionStage(features=names, model=model)
    common = dict(brain_mask=a["mask"] > 0, spacing=SPACING, t1w=a["T1w"], flair=a["FLAIR"])
    enh = (a["T1w_gd"] - a["T1w"]).astype(np.float32)
    for use_stage in (None, stage):
        zero = detect_lesions(enh, t2w=np.zeros_like(a["T2w"]), missing={"T2w"}, stage=use_stage,
                              **common)
        absent = detect_lesions(enh, stage=use_stage, missing={"T2w"}, **common)
        np.testing.assert_array_equal(zero.labels, absent.labels)
        assert [les["score"] for les in zero.lesions] == [les["score"] for les in absent.lesions]
    assert zero.lesions and all(np.isnan(les["T2w_core"]) and np.isfinite(les["score"])
                                for les in zero.lesions)
