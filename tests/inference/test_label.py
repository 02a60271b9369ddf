"""`gdsynth label` end to end on a tiny 2 mm phantom: the real post − pre through the difference
module finds the enhancing lesion, outputs lie on the T1w grid under predict's names, a second run
skips the exam, bad inputs fail one exam with a one-line error."""

from __future__ import annotations

import json

import pytest

from gdsynth.cli.main import main
from gdsynth.io import read_image
from gdsynth.metrics.lesions import match_lesions

PREFIX = "sub-001"


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    from gdsynth.phantom import generate_dataset

    root = tmp_path_factory.mktemp("label")
    bids = root / "bids"
    generate_dataset(bids, subjects=1, seed=3, resolution=2, active_fraction=1.0)
    out = root / "out"
    assert main(["label", str(bids), "-o", str(out), "--prep", str(root / "prep"), "--workers", "1"]) == 0
    return bids, out


def _outputs(out):
    anat = out / PREFIX / "anat"
    return (anat / f"{PREFIX}_desc-enhancing_dseg.nii.gz",
            anat / f"{PREFIX}_desc-enhancing_lesions.tsv",
            anat / f"{PREFIX}_desc-activity_summary.json")


def test_label_finds_the_enhancing_lesion_on_the_t1w_grid(labelled):
    bids, out = labelled
    dseg, table, summary = _outputs(out)
    labels, grid = read_image(dseg, allow_constant=True)
    _, t1w_grid = read_image(bids / PREFIX / "anat" / f"{PREFIX}_T1w.nii.gz")
    assert grid.same_grid(t1w_grid)
    truth, _ = read_image(bids / "derivatives" / "phantom" / PREFIX / "anat"
                          / f"{PREFIX}_desc-enhancing_dseg.nii.gz", allow_constant=True)
    match = match_lesions(truth, labels, grid.spacing)
    # measured on this phantom (seed 3): its one enhancing lesion found, no false positive
    assert match.n_reference >= 1 and match.n_detected == match.n_reference
    assert match.n_false_positive == 0
    record = json.loads(summary.read_text())
    assert record["n_lesions"] == int(labels.max()) == len(table.read_text().splitlines()) - 1
    assert record["probability_active"] == 1.0 and record["refer_for_gadolinium"] is False
    assert set(record["input_sha256"]) == {"T1w", "T2w", "FLAIR", "T1w_gd"}
    sidecar = json.loads(dseg.with_name(dseg.name.replace(".nii.gz", ".json")).read_text())
    assert any("ce-gadolinium" in s for s in sidecar["Sources"])
    assert dseg.with_name(dseg.name.replace(".nii.gz", ".tsv")).is_file()


def test_label_resumes_and_redoes_on_overwrite(labelled, capsys):
    bids, out = labelled
    stamp = [p.stat().st_mtime_ns for p in _outputs(out)]
    capsys.readouterr()
    assert main(["label", str(bids), "-o", str(out)]) == 0
    assert "0 done, 1 skipped" in capsys.readouterr().err
    assert [p.stat().st_mtime_ns for p in _outputs(out)] == stamp
    # other parameters: not complete any more
    assert main(["label", str(bids), "-o", str(out), "--prep", str(out.parent / "prep"),
                 "--set", "min_tissue_ratio=1.2"]) == 0
    assert "1 done" in capsys.readouterr().err


def test_label_bad_inputs(labelled, tmp_path, capsys):
    bids, _ = labelled
    anat = bids / PREFIX / "anat"
    broken = tmp_path / "broken.nii.gz"
    broken.write_bytes(b"not an image")
    table = tmp_path / "cohort.tsv"
    table.write_text(
        "subject\tt1w\tt2w\tflair\tt1w_gd\n"
        f"1\t{anat / f'{PREFIX}_T1w.nii.gz'}\t{broken}\t"
        f"{anat / f'{PREFIX}_FLAIR.nii.gz'}\t{anat / f'{PREFIX}_ce-gadolinium_T1w.nii.gz'}\n"
        f"2\t{anat / f'{PREFIX}_T1w.nii.gz'}\t{anat / f'{PREFIX}_T2w.nii.gz'}\t"
        f"{anat / f'{PREFIX}_FLAIR.nii.gz'}\tn/a\n")
    capsys.readouterr()
    assert main(["label", str(table), "-o", str(tmp_path / "out")]) == 1
    err = capsys.readouterr().err
    assert "skipped sub-2: no post-Gd T1w" in err
    failed = [line for line in err.splitlines() if "failed sub-1" in line]
    assert len(failed) == 1 and "broken.nii.gz" in failed[0]
    assert not (tmp_path / "out" / "sub-1" / "anat").exists() or not any(
        (tmp_path / "out" / "sub-1" / "anat").glob("*_dseg.nii.gz"))
    assert main(["label", str(tmp_path / "missing"), "-o", str(tmp_path / "o2")]) != 0
    assert main(["label", str(bids), "-o", str(tmp_path / "o3"), "--set", "nope"]) != 0
    assert main(["label", str(bids), "-o", str(tmp_path / "o4"), "--set", "unknown_key=1"]) != 0
