"""The learned lesion stage: candidates, classifier file safety, dseg/TSV/exam agreement, fit."""

from __future__ import annotations

import json
import pickle

import numpy as np
import pytest

from gdsynth.detection import DetectionParams, detect_lesions
from gdsynth.detection.classifier import fit_model, predict_proba
from gdsynth.detection.detect import stage_candidates
from gdsynth.detection.stage import STAGE_FILE, LesionStage, load_stage, read_stage_file
from gdsynth.detection.stage_features import STAGE_FEATURES, CandidateSettings
from gdsynth.detection.stage_fit import fit_stage, label_case
from gdsynth.errors import ModelError
from tests.detection.synthetic import LESION_A, LESION_B, SPACING, add_lesion, base_exam

FLAIR_ONLY = LesionStage(  # P(lesion) rises with the core FLAIR level: a pre-contrast reader
    features=["FLAIR_core"],
    model={"kind": "logistic", "mean": [1.6], "scale": [0.1], "coef": [5.0], "intercept": 0.0},
    lesion_threshold=0.5, refer_threshold=0.3)


SMALL = DetectionParams(min_brain_ml=1.0)  # the synthetic brain is 31 mL


def _images(exam) -> dict:
    return {"FLAIR": exam.flair, "T2w": exam.t2w, "T1w": exam.t1w}


def _exam(seed: int, *, active: bool, chronic: bool = True, enhancement: float = 0.6):
    """An active lesion (FLAIR 1.8, enhancing) and/or a chronic one (FLAIR 1.45, no truth)."""
    exam = base_exam(seed)
    if active:
        add_lesion(exam, *LESION_A, enhancement=enhancement, flair=1.8)
    if chronic:
        add_lesion(exam, *LESION_B, enhancement=0.0, flair=1.45, truth=False)
    return exam


def test_candidate_visible_only_on_precontrast_images_is_found():
    exam = _exam(0, active=True, chronic=False, enhancement=0.0)  # no synthetic enhancement
    result = detect_lesions(exam.enhancement, **exam.inputs(), params=SMALL, stage=FLAIR_ONLY)
    top = result.lesions[0]
    assert top["in_dseg"] and top["pre_overlap"] > 0.5 and top["enh_overlap"] == 0.0
    covered = result.labels[exam.truth > 0]
    assert np.mean(covered == top["label"]) > 0.9
    # the hand-set detector on the same map sees nothing
    assert detect_lesions(exam.enhancement, **exam.inputs(), params=SMALL).lesions == []


def test_dseg_holds_exactly_the_lesions_at_or_above_the_operating_point():
    exam = _exam(1, active=True)
    stage = LesionStage(**{**FLAIR_ONLY.__dict__, "lesion_threshold": 0.5})
    result = detect_lesions(exam.enhancement, **exam.inputs(), params=SMALL, stage=stage)
    scores = [les["score"] for les in result.lesions]
    assert scores == sorted(scores, reverse=True) and len(result.lesions) >= 2
    above = {les["label"] for les in result.lesions if les["score"] >= stage.lesion_threshold}
    assert above and len(above) < len(result.lesions)  # some candidates stay in the TSV only
    assert set(np.unique(result.labels)) - {0} == above
    assert {les["label"] for les in result.lesions if les["in_dseg"]} == above
    # every candidate keeps its score; the exam call follows the top lesion score
    s = result.summary
    assert s["n_candidates"] == len(result.lesions) and s["n_lesions"] == len(above)
    assert s["probability_active"] == pytest.approx(stage.exam_probability(scores))
    assert s["driving_lesion"] == 1 and "lesion 1 " in s["reason"]


def test_exam_probability_cannot_be_certain_from_low_lesion_scores():
    stage = LesionStage(**{**FLAIR_ONLY.__dict__, "exam_a": 1.2, "exam_b": -0.3})
    assert stage.exam_probability([0.09, 0.05, 0.02]) < 0.1
    assert stage.exam_probability([]) < 1e-3


def _cases(seeds):
    cases = []
    for seed in seeds:
        exam = _exam(seed, active=seed % 3 != 0, enhancement=0.3 + 0.1 * (seed % 4))
        found = stage_candidates(exam.enhancement, exam.brain, SPACING, DetectionParams(),
                                 CandidateSettings(), images=_images(exam))
        cases.append(label_case(f"sub-{seed:02d}", found.labels, found.features, exam.truth,
                                SPACING))
    return cases


@pytest.fixture(scope="module")
def fitted(tmp_path_factory):
    cases = _cases(range(6))
    stage, oof = fit_stage(cases, features=STAGE_FEATURES, kinds=("logistic",), folds=3)
    folder = tmp_path_factory.mktemp("model")
    path = stage.save(folder)
    return stage, oof, folder, stage.card_section(path), cases


def test_fit_stage_cross_fits_and_records_held_out_figures(fitted):
    stage, oof, _, section, cases = fitted
    h = stage.heldout
    assert h["n_exams"] == 6 and h["n_active_exams"] == 4 and "3-fold" in h["protocol"]
    assert h["exam_operating_point"]["sensitivity"] >= stage.target_sensitivity
    assert h["lesion"]["lesion_f1"] > 0.5
    assert [len(s) for s in oof] == [len(c.features) for c in cases]
    assert section["features"] == list(STAGE_FEATURES) and section["sha256"]
    assert section["operating_point"]["refer_threshold"] == stage.refer_threshold


def test_classifier_file_round_trip(fitted):
    stage, _, folder, section, cases = fitted
    loaded = load_stage(folder, section)
    feats = cases[1].features
    assert np.allclose(loaded.lesion_scores(feats), stage.lesion_scores(feats))


def test_trees_export_agrees_with_scikit_learn():
    from sklearn.ensemble import GradientBoostingClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(80, 3))
    y = (x[:, 0] + 0.5 * x[:, 1] ** 2 + rng.normal(0, 0.3, 80) > 0.4).astype(int)
    model = fit_model(x, y, "trees")
    ref = GradientBoostingClassifier(n_estimators=150, max_depth=2, learning_rate=0.05,
                                     subsample=0.8, min_samples_leaf=3, random_state=0).fit(x, y)
    data = json.loads(json.dumps(model))  # what the file holds
    assert np.allclose(predict_proba(data, x), ref.predict_proba(x)[:, 1])


class _Payload:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_crafted_classifier_files_are_refused_naming_the_file(fitted, tmp_path):
    _, _, folder, section, _ = fitted
    good = json.loads((folder / STAGE_FILE).read_text())
    marker = tmp_path / "pwned"
    bad = tmp_path / STAGE_FILE
    # a pickle that would create a file when unpickled: refused, nothing executed
    bad.write_bytes(pickle.dumps(_Payload(marker)))
    with pytest.raises(ModelError) as err:
        read_stage_file(bad)
    assert str(bad) in str(err.value) and not marker.exists()
    crafted = [
        {**good, "extra": "__import__('os')"},
        {**good, "format": "pickle"},
        {**good, "features": ["FLAIR_core", "os.system"]},
        {**good, "model": {**good["model"], "coef": ["1"] * len(good["features"])}},
        {**good, "model": {"kind": "trees", "learning_rate": 0.1, "init": 0.0, "trees": [
            {"left": [1, 0, -1], "right": [2, -1, -1], "feature": [0, 0, 0],
             "threshold": [0.0, 0.0, 0.0], "value": [0.0, 0.0, 0.0]}]}},  # a cycle
        {**good, "model": {"kind": "callable", "path": "os.system"}},
    ]
    for data in crafted:
        bad.write_text(json.dumps(data))
        with pytest.raises(ModelError) as err:
            read_stage_file(bad)
        assert str(bad) in str(err.value)
    # a file that differs from the one the card records is refused too
    (folder / STAGE_FILE).write_text(json.dumps({**good, "lesion_threshold": 0.0}))
    with pytest.raises(ModelError, match="SHA-256"):
        load_stage(folder, section)
    (folder / STAGE_FILE).write_text(json.dumps(good, indent=2))  # restore (same content)
    section_now = {**section, "sha256": __import__("hashlib").sha256(
        (folder / STAGE_FILE).read_bytes()).hexdigest()}
    assert load_stage(folder, section_now).features == good["features"]
