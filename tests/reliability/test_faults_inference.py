"""Inference faults: a cohort run killed mid-way, a disk that fills up, an output folder that is the
input folder; inputs never modified; two identical CPU runs give byte-identical outputs."""

from __future__ import annotations

import contextlib
import errno
import signal
import time
from pathlib import Path

import pytest

from gdsynth.inference import outputs as O
from gdsynth.io import atomic, image, read_image, read_tsv
from gdsynth.io.atomic import TMP_MARK
from gdsynth.io.bids import discover
from tests.reliability.common import child, run_cli, traceback_free, tree_hashes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")


def predict_args(bids: Path, model: Path, out: Path, *extra: str) -> list[str]:
    return ["-q", "predict", str(bids), "-m", str(model), "-o", str(out), "--device", "cpu",
            *extra]


def final_files_are_complete(out: Path) -> int:
    """Every file under a final name reads completely; return how many there are."""
    import json

    n = 0
    for p in sorted(out.rglob("*")):
        if not p.is_file() or TMP_MARK in p.name:
            continue
        if p.name.endswith(".nii.gz"):
            read_image(p, allow_constant=True)
        elif p.suffix == ".json":
            json.loads(p.read_text())
        elif p.suffix == ".tsv":
            read_tsv(p)
        n += 1
    return n


def test_killed_cohort_rerun_computes_only_missing_exams(phantom4, random_model, tmp_path):
    out = tmp_path / "out"
    exams = discover(phantom4)
    before = tree_hashes(phantom4)
    first = O.SUMMARY.path(out, exams[0])
    with open(tmp_path / "log", "wb") as log:
        proc = child(predict_args(phantom4, random_model, out), stdout=log, stderr=log)
        deadline = time.monotonic() + 240
        while not first.exists() and proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait(timeout=60) == -signal.SIGKILL
    assert first.exists(), (tmp_path / "log").read_text(errors="replace")
    assert not O.SUMMARY.path(out, exams[-1]).exists()  # killed mid-way
    assert final_files_are_complete(out) > 0  # no partial file under a final name
    done_first = tree_hashes(first.parent)

    result = run_cli(predict_args(phantom4, random_model, out))
    assert result.code == 0 and traceback_free(result.stderr), result.stderr
    status = {r["exam"]: r["status"] for r in read_tsv(out / "run_summary.tsv")}
    assert status[exams[0].id] == "skipped"  # only the missing exams are computed
    assert all(status[e.id] == "done" for e in exams[2:])
    assert {k: v for k, v in tree_hashes(first.parent).items() if k in done_first} == done_first
    assert all(O.SUMMARY.path(out, e).is_file() for e in exams)
    final_files_are_complete(out)
    assert tree_hashes(phantom4) == before


def test_disk_full_keeps_earlier_outputs_and_fails(phantom4, random_model, tmp_path, monkeypatch):
    """The disk fills up when the 2nd exam's enhancement map is written: the first exam's
    outputs stay intact, nothing partial is left, the run exits non-zero; once space is back a
    rerun completes only what is missing."""
    out = tmp_path / "out"
    labels = ["--participant-label", "001", "--participant-label", "002"]
    full = {"now": False}
    original = atomic.atomic_path

    @contextlib.contextmanager
    def full_disk(path, **kwargs):  # noqa: ANN001, ANN003, ANN202
        name = Path(path).name
        if name.startswith("sub-002") and "enhancement" in name:
            full["now"] = True  # from here on the disk is full
        with original(path, **kwargs) as tmp:
            yield tmp
            if full["now"]:  # the bytes went nowhere
                raise OSError(errno.ENOSPC, "No space left on device", str(tmp))

    monkeypatch.setattr(atomic, "atomic_path", full_disk)
    monkeypatch.setattr(image, "atomic_path", full_disk)
    before = tree_hashes(phantom4)
    result = run_cli(predict_args(phantom4, random_model, out, *labels))
    assert result.code != 0 and traceback_free(result.stderr), result.stderr
    assert "No space left on device" in result.stderr
    exams = discover(phantom4)
    assert O.SUMMARY.path(out, exams[0]).is_file() and not O.SUMMARY.path(out, exams[1]).exists()
    assert not O.ENHANCEMENT.path(out, exams[1]).exists()
    assert not [p for p in out.rglob("*") if TMP_MARK in p.name]  # temporary files cleaned up
    intact = tree_hashes(O.SUMMARY.path(out, exams[0]).parent)
    final_files_are_complete(out)

    monkeypatch.setattr(atomic, "atomic_path", original)
    monkeypatch.setattr(image, "atomic_path", original)
    result = run_cli(predict_args(phantom4, random_model, out, *labels))
    assert result.code == 0, result.stderr
    status = {r["exam"]: r["status"] for r in read_tsv(out / "run_summary.tsv")}
    assert status == {exams[0].id: "skipped", exams[1].id: "done"}
    assert tree_hashes(O.SUMMARY.path(out, exams[0]).parent) == intact
    assert tree_hashes(phantom4) == before


@pytest.mark.parametrize("where", ["input-folder", "inside-raw-subject", "input-itself-single"])
def test_output_folder_in_the_input_is_refused(where, phantom4, random_model, tmp_path):
    before = tree_hashes(phantom4)
    if where == "input-folder":
        args = predict_args(phantom4, random_model, phantom4)
    elif where == "inside-raw-subject":
        args = predict_args(phantom4, random_model, phantom4 / "sub-001")
    else:  # single exam written into the raw folder that holds its files
        anat = phantom4 / "sub-001" / "anat"
        args = ["-q", "predict", *[a for s in ("T1w", "T2w", "FLAIR")
                                   for a in (f"--{s.lower()}", str(anat / f"sub-001_{s}.nii.gz"))],
                "--subject", "001", "-m", str(random_model), "-o", str(phantom4), "--device", "cpu"]
    result = run_cli(args)
    assert result.code == 2 and traceback_free(result.stderr), result.stderr
    assert "error:" in result.stderr and str(phantom4) in result.stderr
    assert tree_hashes(phantom4) == before  # nothing written, nothing changed


def test_two_cpu_runs_are_byte_identical(phantom4, random_model, tmp_path):
    """One run in a child process, one in this process (MC dropout, 2 samples): every output file
    is byte-identical (the run summary, which records seconds, aside)."""
    args = ["--participant-label", "002", "--mc-samples", "2"]
    with open(tmp_path / "log", "wb") as log:
        proc = child(predict_args(phantom4, random_model, tmp_path / "a", *args), stdout=log,
                     stderr=log)
        assert proc.wait(timeout=300) == 0, (tmp_path / "log").read_text(errors="replace")
    result = run_cli(predict_args(phantom4, random_model, tmp_path / "b", *args))
    assert result.code == 0, result.stderr

    def listing(root: Path) -> dict[str, str]:
        return {str(Path(k).relative_to(root)): v for k, v in tree_hashes(root).items()
                if not k.endswith("run_summary.tsv")}

    a, b = listing(tmp_path / "a"), listing(tmp_path / "b")
    assert len(a) >= 7 and a == b
