"""Outputs on the input grid, determinism, MC dropout, resume, shards and failures."""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from gdsynth.inference import outputs as O
from gdsynth.inference.cohort import RunConfig, Step, run_cohort, shard_exams
from gdsynth.inference.pipeline import SynthesisSettings
from gdsynth.io import read_image, read_tsv
from gdsynth.io.bids import discover
from tests.fixtures.inference import simple_prepare

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def run(bids: Path, out: Path, model: Path, step: Step = Step.predict, prepare=simple_prepare,
        **kw) -> list:
    settings = SynthesisSettings(mc_samples=kw.pop("mc", 3), seed=kw.pop("seed", 0), batch_size=4)
    config = RunConfig(out=out, model=model, step=step, settings=settings, device="cpu", **kw)
    return run_cohort(discover(bids), config, bids_root=bids, prepare=prepare)


def digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("sub-*/anat/*"))}


def test_outputs_on_input_grid_and_deterministic(cohort, model_dir, tmp_path):
    out = tmp_path / "derivatives" / "gdsynth"
    results = run(cohort, out, model_dir)
    assert [r.status for r in results] == ["done"] * 5
    for exam in discover(cohort):
        _, native = read_image(exam.t1w)
        for output in (O.SYNTHETIC, O.ENHANCEMENT, O.UNCERTAINTY, O.head_output("enhancing"),
                       O.LESION_LABELS):
            arr, g = read_image(output.path(out, exam), allow_constant=True)
            assert g.shape == native.shape
            np.testing.assert_allclose(g.affine, native.affine, atol=1e-4)
        assert O.LESION_TABLE.path(out, exam).is_file()
        summary = O.read_record(O.SUMMARY.path(out, exam))
        assert summary["exam"] == exam.id and "probability_active" in summary
        assert set(summary["input_sha256"]) == {"T1w", "T2w", "FLAIR"}
        assert str(cohort) not in str(summary)  # no paths: pseudonymous id and hashes only
    # synthetic post is in the input T1w scale: NAWM-level tissue near the T1w's own values
    exam = discover(cohort)[0]
    t1, _ = read_image(exam.t1w)
    syn, _ = read_image(O.SYNTHETIC.path(out, exam), allow_constant=True)
    assert 0.2 < np.median(syn[t1 > 200]) / np.median(t1[t1 > 200]) < 5
    # same inputs and seed: byte-identical files
    out2 = tmp_path / "again"
    run(cohort, out2, model_dir)
    assert digest(out) == digest(out2)


def test_mc_std_zero_without_dropout_positive_with(cohort, tmp_path):
    from tests.fixtures.inference import make_model

    exams = discover(cohort)[:1]
    stds = {}
    for p in (0.0, 0.5):
        model = make_model(tmp_path / f"m{p}", dropout=p)
        out = tmp_path / f"o{p}"
        config = RunConfig(out=out, model=model, step=Step.synthesize, device="cpu",
                           settings=SynthesisSettings(mc_samples=4, batch_size=3))
        assert run_cohort(exams, config, prepare=simple_prepare)[0].status == "done"
        stds[p], _ = read_image(O.UNCERTAINTY.path(out, exams[0]), allow_constant=True)
    assert np.all(stds[0.0] == 0.0)
    assert stds[0.5].max() > 0 and stds[0.5].mean() > 0


def test_resume_after_kill_and_overwrite(cohort, model_dir, tmp_path):
    out = tmp_path / "out"
    calls: list[str] = []

    def killed_at_third(exam, card):
        calls.append(exam.id)
        if len(calls) == 3:
            raise KeyboardInterrupt  # the run dies here, like a kill
        return simple_prepare(exam, card)

    with pytest.raises(KeyboardInterrupt):
        run(cohort, out, model_dir, prepare=killed_at_third)
    assert not any(".gdsynth-tmp-" in p.name for p in out.rglob("*"))
    done_before = {p.parent.parent.name for p in out.rglob("*_desc-activity_summary.json")}
    assert done_before == {"sub-01", "sub-02"}
    calls.clear()
    results = run(cohort, out, model_dir, prepare=lambda e, c: calls.append(e.id) or simple_prepare(e, c))
    assert calls == ["sub-03", "sub-04", "sub-05"]
    assert [r.status for r in results] == ["skipped", "skipped", "done", "done", "done"]
    table = read_tsv(out / "run_summary.tsv")
    assert [r["status"] for r in table] == ["skipped", "skipped", "done", "done", "done"]
    assert [r["exam"] for r in table] == [f"sub-0{i}" for i in range(1, 6)]
    # other settings (another seed) do not match the records: everything is redone
    assert {r.status for r in run(cohort, out, model_dir, seed=1, mc=2)} == {"done"}
    assert {r.status for r in run(cohort, out, model_dir, seed=1, mc=2, overwrite=True)} == {"done"}


def test_missing_and_corrupt_files_fail_alone(cohort, model_dir, tmp_path):
    (cohort / "sub-02" / "anat" / "sub-02_T2w.nii.gz").unlink()
    (cohort / "sub-04" / "anat" / "sub-04_FLAIR.nii.gz").write_bytes(b"\x1f\x8b not a nifti")
    out = tmp_path / "derivatives" / "gdsynth"
    results = {r.case: r for r in run(cohort, out, model_dir, step=Step.synthesize, mc=1)}
    assert [results[k].status for k in sorted(results)] == ["done", "failed", "done", "failed", "done"]
    assert "T2w" in results["sub-02"].error and "\n" not in results["sub-02"].error
    assert "sub-04_FLAIR" in results["sub-04"].error


def test_detect_reads_synthesis_and_matches_predict(cohort, model_dir, tmp_path):
    exams = discover(cohort)[:2]
    both, split = tmp_path / "both", tmp_path / "split"
    for out, steps in ((both, [Step.predict]), (split, [Step.synthesize, Step.detect])):
        for step in steps:
            config = RunConfig(out=out, model=model_dir, step=step, device="cpu",
                               settings=SynthesisSettings(mc_samples=2))
            assert {r.status for r in run_cohort(exams, config, prepare=simple_prepare)} == {"done"}
    for exam in exams:
        a = O.read_record(O.SUMMARY.path(both, exam))
        b = O.read_record(O.SUMMARY.path(split, exam))
        assert a["n_lesions"] == b["n_lesions"]
        assert a["probability_active"] == pytest.approx(b["probability_active"], abs=1e-6)


def test_detect_without_synthesis_fails_clearly(cohort, model_dir, tmp_path):
    config = RunConfig(out=tmp_path / "o", model=model_dir, step=Step.detect, device="cpu")
    res = run_cohort(discover(cohort)[:1], config, prepare=simple_prepare)
    assert res[0].status == "failed" and "run 'gdsynth synthesize' first" in res[0].error


def test_detect_after_a_new_detector_reuses_the_synthesis_but_not_after_new_weights(
        cohort, model_dir, tmp_path):
    """Re-fitting the detector changes only detection-only card sections: ``detect`` (also with
    ``--detector``) still reads the synthesis; new weights or a new normalization do not."""
    import json
    import shutil

    from gdsynth.models.card import CARD_NAME

    model = tmp_path / "model"
    shutil.copytree(model_dir, model)
    exams = discover(cohort)[:1]
    out = tmp_path / "o"

    def step(step: Step, **kw) -> list:
        config = RunConfig(out=out, model=model, step=step, device="cpu",
                           settings=SynthesisSettings(mc_samples=1), **kw)
        return run_cohort(exams, config, prepare=simple_prepare)

    assert step(Step.synthesize)[0].status == "done"
    synth_record = O.read_record(O.SYNTHESIS_RECORD.path(out, exams[0]))
    card_path = model / CARD_NAME
    card = json.loads(card_path.read_text())
    card["detection"] = {**card.get("detection", {}), "high": 0.123}  # a re-fitted detector
    card.setdefault("normalization", {})["domain"] = {"note": "new domain reference"}
    card_path.write_text(json.dumps(card))
    assert step(Step.detect)[0].status == "done"
    summary = O.read_record(O.SUMMARY.path(out, exams[0]))
    # the summary records the whole card (detection included); the synthesis record is unchanged
    assert summary["model"]["card_sha256"] != synth_record["model"]["card_sha256"]
    assert O.read_record(O.SYNTHESIS_RECORD.path(out, exams[0])) == synth_record
    assert step(Step.detect, detector="difference", overwrite=True)[0].status == "done"
    # a card change that synthesis depends on (the input normalization) needs a new synthesis
    card["normalization"]["description"] = "another normalization"
    card_path.write_text(json.dumps(card))
    res = step(Step.detect, overwrite=True)
    assert res[0].status == "failed" and "run 'gdsynth synthesize' first" in res[0].error


def test_shards_cover_every_exam_once(cohort):
    exams = discover(cohort)
    parts = [shard_exams(exams, (i, 2)) for i in range(2)]
    ids = sorted(e.id for p in parts for e in p)
    assert ids == sorted(e.id for e in exams)
    assert [e.id for e in parts[0]] == ["sub-01", "sub-03", "sub-05"]


def test_output_inside_raw_bids_is_refused(cohort, model_dir):
    from gdsynth.errors import OutputError

    for bad in (cohort, cohort / "sub-01" / "gd"):
        with pytest.raises(OutputError):
            run(cohort, bad, model_dir)


def test_lesion_rows_point_at_the_same_voxel_on_the_input_grid(tmp_path):
    from gdsynth.inference.pipeline import lesion_rows
    from gdsynth.inference.prep import to_native
    from gdsynth.models.card import ModelCard
    from tests.fixtures.inference import write_exam

    for orient in ("PIR", "oblique", "LPS"):
        exam = write_exam(tmp_path / orient, "01", orient)
        prep = simple_prepare(exam, ModelCard(architecture={"name": "unet"}))
        ijk = (5, 7, 9)
        marker = np.zeros(prep.geometry.shape, np.int32)
        marker[ijk] = 1
        native = to_native(prep, marker, nearest=True)
        row = lesion_rows([{"label": 1, "i": ijk[0], "j": ijk[1], "k": ijk[2], "volume_mm3": 8.0,
                            "mean_enhancement": 0.3, "max_enhancement": 0.5, "score": 0.9,
                            "mean_uncertainty": 0.01, "location": "juxtacortical"}], prep)[0]
        nat = tuple(int(round(row[c])) for c in "ijk")
        assert native[nat] == 1
        world = prep.native_geometry.index_to_world(np.array(nat, float), ras=True)
        np.testing.assert_allclose([row["x_mm"], row["y_mm"], row["z_mm"]], world, atol=1e-3)


def test_3d_model_synthesizes_on_input_grid(cohort, tmp_path):
    from tests.fixtures.inference import make_model

    model = make_model(tmp_path / "m3d", mode="3d", heads=())
    exam = discover(cohort)[2]  # oblique
    config = RunConfig(out=tmp_path / "o", model=model, step=Step.predict, device="cpu",
                       settings=SynthesisSettings(mc_samples=2, batch_size=2))
    assert run_cohort([exam], config, prepare=simple_prepare)[0].status == "done"
    _, native = read_image(exam.t1w)
    unc, g = read_image(O.UNCERTAINTY.path(tmp_path / "o", exam), allow_constant=True)
    assert g.same_grid(native) and unc.max() > 0


@pytest.mark.parametrize("orientation", ["RAS", "LPS"])
def test_synthetic_is_the_input_outside_the_brain_and_never_negative(tmp_path, model_dir, orientation):
    """#20: the synthetic post-Gd had a noisy background and negative voxels (a grey box in the
    review's default window). Outside the brain mask it is now the input T1w; inside, the
    residual is clipped at 0."""
    from gdsynth.inference.pipeline import Synthesis, native_synthetic, write_synthesis
    from gdsynth.inference.prep import to_native
    from gdsynth.models.card import ModelCard
    from tests.fixtures.inference import write_exam

    exam = write_exam(tmp_path / "bids", "01", orientation)
    prep = simple_prepare(exam, ModelCard.load(model_dir / "model_card.json"))
    rng = np.random.default_rng(0)
    noise = rng.normal(0, 2.0, prep.brain_mask.shape)
    synthetic = (prep.volumes["T1w"] + noise).astype(np.float32)
    synth = Synthesis(synthetic=synthetic, enhancement=synthetic - prep.volumes["T1w"],
                      uncertainty=None, heads={})
    t1w, geometry = read_image(exam.t1w)
    out = native_synthetic(prep, synth, t1w)
    brain = to_native(prep, prep.brain_mask.astype(np.uint8), nearest=True) > 0
    assert (synthetic[prep.brain_mask] < 0).any()  # the residual does push voxels below 0
    assert out.min() >= 0 and np.array_equal(out[~brain], t1w[~brain].astype(np.float32))
    written = write_synthesis(tmp_path / "pred", exam, prep, synth, {"exam": exam.id})
    on_disk, g = read_image(O.SYNTHETIC.path(tmp_path / "pred", exam))
    assert g.same_grid(geometry) and np.allclose(on_disk, out)
    assert O.SYNTHETIC.path(tmp_path / "pred", exam).with_name(
        f"{exam.prefix}_ce-gadolinium_desc-synthetic_T1w.json") in written
