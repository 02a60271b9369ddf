"""A disk that really fills up (issue #17.1): a 3 MB tmpfs, filled with ``dd`` to ~100 kB free.

SimpleITK's NIfTI writer prints ``NWAD: wrote only 0 of N bytes`` and *returns normally* on a full
disk, so an atomic rename alone would put a truncated file under the final name. Every kind of file
gdsynth writes (images, label maps, JSON, TSV, text, PNG figures, safetensors weights, training
checkpoints, the reader-study SQLite store) must end with a one-line :class:`OutputError` naming
the file, no temporary file left, and the earlier good file of that name intact; and ``predict
--overwrite`` on a full disk must fail and keep the earlier outputs and completion records.

The real-tmpfs tests need root and ``mount`` (CI runs as root); elsewhere they are skipped with a
message, and the simulated tests (a writer that truncates and returns normally) still run.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from gdsynth.errors import OutputError
from gdsynth.io import Geometry, write_image, write_json, write_labels, write_tsv
from gdsynth.io.atomic import TMP_MARK, atomic_write_text, verify_written
from tests.reliability.common import run_cli, traceback_free, tree_hashes

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning")

DISK_KB = 3072
FREE_KB = 100


def _geometry(shape: tuple[int, int, int]) -> Geometry:
    return Geometry(shape=shape, spacing=(1.0, 1.0, 1.0), origin=(0.0, 0.0, 0.0),
                    direction=(1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0))


@contextlib.contextmanager
def small_disk(where: Path, size_kb: int = DISK_KB) -> Iterator[Path]:
    """Mount a ``size_kb`` tmpfs at ``where`` (skip when this machine cannot), unmount after."""
    where.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a tmpfs needs root: the real full-disk case is not run here "
                    "(the simulated truncating-writer cases still are)")
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kb}k", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({proc.stderr.strip()}): the real full-disk case "
                    "is not run (the simulated truncating-writer cases still are)")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def fill(disk: Path, free_kb: int = FREE_KB) -> None:
    """Fill ``disk`` with zeros until about ``free_kb`` kB are left (as ``dd`` would)."""
    st = os.statvfs(disk)
    free = st.f_bavail * st.f_frsize // 1024
    count = max(free - free_kb, 0)
    subprocess.run(["dd", "if=/dev/zero", f"of={disk / ('fill-' + uuid.uuid4().hex)}", "bs=1k",
                    f"count={count}"], capture_output=True, check=True)


def no_temps(root: Path) -> bool:
    return not [p for p in root.rglob("*") if TMP_MARK in p.name]


def _big_volume() -> tuple[np.ndarray, Geometry]:
    rng = np.random.default_rng(0)
    g = _geometry((96, 96, 64))  # ~2.4 MB of float32 noise: does not compress below 100 kB
    return rng.normal(size=g.shape).astype(np.float32), g


def _write_image(path: Path, big: bool) -> None:
    array, g = _big_volume()
    if not big:
        array, g = array[:8, :8, :8].copy(), _geometry((8, 8, 8))
    write_image(path, array, g)


def _write_labels(path: Path, big: bool) -> None:
    rng = np.random.default_rng(1)
    shape = (160, 160, 100) if big else (8, 8, 8)
    write_labels(path, rng.integers(0, 255, size=shape), _geometry(shape))


def _write_json(path: Path, big: bool) -> None:
    write_json(path, {"values": list(range(60000 if big else 3))})


def _write_tsv(path: Path, big: bool) -> None:
    write_tsv(path, [{"label": i, "score": i / 7} for i in range(20000 if big else 2)])


def _write_text(path: Path, big: bool) -> None:
    atomic_write_text(path, "x" * (400_000 if big else 10))


def _write_png(path: Path, big: bool) -> None:
    from gdsynth.evaluation.plots import plot_froc

    n = 4000 if big else 2
    rng = np.random.default_rng(2)
    points = [{"fp_per_scan": float(x), "sensitivity": float(y)}
              for x, y in zip(rng.random(n) * 8, rng.random(n), strict=True)]
    assert plot_froc({"points": sorted(points, key=lambda p: p["fp_per_scan"])}, path) is not None


def _write_weights(path: Path, big: bool) -> None:
    import torch
    from safetensors.torch import save_file

    from gdsynth.io import atomic_path

    with atomic_path(path) as tmp:
        save_file({"w": torch.randn(600_000 if big else 4)}, str(tmp))


def _write_checkpoint(path: Path, big: bool) -> None:
    import torch

    from gdsynth.training.checkpoint import AtomicCheckpointIO

    AtomicCheckpointIO().save_checkpoint({"w": torch.randn(600_000 if big else 4)}, path)


WRITERS: dict[str, tuple[str, Callable[[Path, bool], None]]] = {
    "image": ("x.nii.gz", _write_image),
    "labels": ("x_dseg.nii.gz", _write_labels),
    "json": ("x.json", _write_json),
    "tsv": ("x.tsv", _write_tsv),
    "text": ("x.html", _write_text),
    "png": ("x.png", _write_png),
    "safetensors": ("generator.safetensors", _write_weights),
    "checkpoint": ("last.ckpt", _write_checkpoint),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_full_disk_every_file_kind(kind, tmp_path):
    """On a real full disk each writer raises one OutputError naming its file, leaves no temporary
    file, and the earlier good file of that name is byte-identical."""
    name, writer = WRITERS[kind]
    with small_disk(tmp_path / "disk") as disk:
        target = disk / "out" / name
        writer(target, False)
        assert verify_written(target) is None
        good = target.read_bytes()
        fill(disk, free_kb=8)  # a figure is a few tens of kB: leave less room than that
        with pytest.raises(OutputError) as err:
            writer(target, True)
        assert str(target) in str(err.value) and "\n" not in str(err.value)
        assert target.read_bytes() == good
        assert no_temps(disk)


def test_full_disk_reader_study_store(tmp_path):
    """The answers database: an answer that cannot be stored raises OutputError naming
    answers.sqlite, and every earlier answer is still there once space is back."""
    from gdsynth.review.store import Answer, AnswerStore

    with small_disk(tmp_path / "disk") as disk:
        store = AnswerStore(disk / "answers.sqlite")
        store.save(Answer("r1", "c1", "real", 3, 3, [], 1.0))
        fill(disk, free_kb=0)
        big = [[float(i), 0.0, 0.0] for i in range(60000)]
        with pytest.raises(OutputError) as err:
            store.save(Answer("r1", "c2", "synthetic", 3, 3, big, 2.0))
        assert "answers.sqlite" in str(err.value)
        for f in disk.glob("fill-*"):
            f.unlink()
        assert [a.case_id for a in store.answers()] == ["c1"]


def test_predict_overwrite_on_full_disk_keeps_earlier_outputs(phantom4, random_model, tmp_path):
    """The reported case: predict into a 3 MB tmpfs, fill it to ~100 kB free, predict again with
    --overwrite. The run must fail with one line naming a file, keep every earlier output and
    completion record byte-identical, leave no temporary file, and not modify the inputs."""
    before_inputs = tree_hashes(phantom4)
    with small_disk(tmp_path / "disk") as disk:
        out = disk / "pred"
        args = ["-q", "predict", str(phantom4), "-m", str(random_model), "-o", str(out),
                "--device", "cpu", "--participant-label", "001"]
        first = run_cli(args)
        assert first.code == 0, first.stderr
        earlier = tree_hashes(out / "sub-001")
        assert earlier
        fill(disk)
        again = run_cli([*args, "--overwrite"])
        assert again.code != 0 and traceback_free(again.stderr), again.stderr
        assert "failed sub-001" in again.stderr and str(out) in again.stderr
        assert tree_hashes(out / "sub-001") == earlier  # results and completion record untouched
        assert no_temps(out)
    assert tree_hashes(phantom4) == before_inputs


def test_lying_image_writer_is_caught(tmp_path, monkeypatch):
    """Simulated everywhere (no root needed): a SimpleITK writer that writes a truncated file and
    returns normally, as ITK does on a full disk. The truncated file never gets the final name."""
    import SimpleITK as sitk

    target = tmp_path / "x.nii.gz"
    _write_image(target, False)
    good = target.read_bytes()
    real = sitk.ImageFileWriter.Execute

    def truncating(self, image, *args):  # noqa: ANN001, ANN202
        real(self, image, *args)
        path = Path(self.GetFileName())
        path.write_bytes(path.read_bytes()[: path.stat().st_size // 3])

    monkeypatch.setattr(sitk.ImageFileWriter, "Execute", truncating)
    with pytest.raises(OutputError) as err:
        _write_image(target, True)
    assert str(target) in str(err.value)
    assert target.read_bytes() == good and no_temps(tmp_path)


@pytest.mark.parametrize("cut", ["half", "header-only", "empty"])
def test_verify_written_detects_truncated_nifti(tmp_path, cut):
    path = tmp_path / "x.nii"
    _write_image(tmp_path / "x.nii", False)
    assert verify_written(path) is None
    data = path.read_bytes()
    keep = {"half": len(data) // 2, "header-only": 352, "empty": 0}[cut]
    path.write_bytes(data[:keep])
    assert verify_written(path) is not None
