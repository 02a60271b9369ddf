"""Atomic writes: an interrupted write never leaves a partial file under the final name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from gdsynth.errors import OutputError
from gdsynth.io import (
    Geometry,
    atomic_path,
    read_image,
    read_tsv,
    write_image,
    write_json,
    write_tsv,
)
from gdsynth.io.atomic import TMP_MARK


def test_interrupted_image_write_leaves_previous_file(tmp_path: Path, monkeypatch):
    import SimpleITK as sitk

    geometry = Geometry((6, 6, 6), (1, 1, 1), (0, 0, 0))
    final = tmp_path / "out.nii.gz"
    first = np.arange(216, dtype=np.float32).reshape(6, 6, 6)
    write_image(final, first, geometry)

    def boom(self, image):  # the writer dies half-way: a partial temp file exists
        Path(self.GetFileName()).write_bytes(b"partial")
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(sitk.ImageFileWriter, "Execute", boom)
    with pytest.raises(OutputError, match="No space left on device"):
        write_image(final, first * 2, geometry)
    monkeypatch.undo()
    back, _ = read_image(final)
    np.testing.assert_array_equal(back, first)  # the earlier output is intact
    assert [p.name for p in tmp_path.iterdir()] == ["out.nii.gz"]  # no temp left behind


def test_interrupted_new_file_leaves_nothing(tmp_path: Path):
    final = tmp_path / "sub" / "table.tsv"
    with pytest.raises(KeyboardInterrupt), atomic_path(final) as tmp:
        tmp.write_text("half")
        assert TMP_MARK in tmp.name and tmp.name.endswith(".tsv")
        raise KeyboardInterrupt
    assert not final.exists()
    assert list(final.parent.iterdir()) == []


def test_json_and_tsv(tmp_path: Path):
    write_json(tmp_path / "a.json", {"b": np.float32(1.5), "a": [1, 2]})
    assert (tmp_path / "a.json").read_text().startswith("{\n  \"a\"")
    write_tsv(tmp_path / "t.tsv", [{"x": 1.23456789, "y": None, "z": "a\tb"}], ["x", "y", "z"])
    rows = read_tsv(tmp_path / "t.tsv")
    assert rows == [{"x": "1.23457", "y": "n/a", "z": "a b"}]
    with pytest.raises(ValueError):
        write_json(tmp_path / "nan.json", {"x": float("nan")})
    assert not (tmp_path / "nan.json").exists()


def test_outputs_follow_the_umask(tmp_path: Path):
    import os

    old = os.umask(0o022)
    try:
        write_json(tmp_path / "perm.json", {"a": 1})
    finally:
        os.umask(old)
    assert (tmp_path / "perm.json").stat().st_mode & 0o777 == 0o644


def _aged(path: Path, seconds: float) -> Path:
    import os
    import time

    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"partial")
    then = time.time() - seconds
    os.utime(path, (then, then))
    return path


def test_sweep_removes_only_old_gdsynth_temps(tmp_path: Path):
    """Leftovers of a SIGKILLed write (named as atomic_path names them, untouched for an hour)
    are removed; a temp file another process may be writing (recent), other files that look
    alike, and symlinks are kept."""
    from gdsynth.io import sweep_stale_temps
    from gdsynth.io.atomic import is_temp_name

    with atomic_path(tmp_path / "x.nii.gz", verify=False) as tmp:
        assert is_temp_name(tmp.name)  # the sweep's pattern is the writer's pattern
    stale = [_aged(tmp_path / "sub-01" / "anat" / f".sub-01_T1w.nii.gz{TMP_MARK}ab_d1234.nii.gz", 7200),
             _aged(tmp_path / f".run_summary.tsv{TMP_MARK}zz9_abcd.tsv", 7200)]
    kept = [_aged(tmp_path / "sub-01" / f".a.json{TMP_MARK}abcd1234.json", 60),  # being written
            _aged(tmp_path / f"notes{TMP_MARK}abcd1234.txt", 7200),  # no leading dot: not ours
            _aged(tmp_path / f".a.json{TMP_MARK}abcd1234.nii.gz", 7200),  # extension mismatch
            _aged(tmp_path / "draft.tmp", 7200)]
    outside = _aged(tmp_path.parent / f"{tmp_path.name}-outside.bin", 7200)
    link = tmp_path / f".b.json{TMP_MARK}abcd1234.json"
    link.symlink_to(outside)
    removed = sweep_stale_temps(tmp_path)
    assert sorted(removed) == sorted(stale)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in kept) and link.is_symlink() and outside.exists()
    assert sweep_stale_temps(tmp_path / "missing") == []


def test_cli_command_sweeps_its_output_folder(tmp_path: Path):
    """A command that writes into a folder first removes the stale temporaries there."""
    from gdsynth.cli.main import main

    report = tmp_path / "report"
    stale = _aged(report / f".summary.json{TMP_MARK}abcd1234.json", 7200)
    fresh = _aged(report / f".per_exam.tsv{TMP_MARK}abcd1234.tsv", 10)
    (tmp_path / "pred").mkdir()
    (tmp_path / "bids").mkdir()
    main(["-q", "evaluate", str(tmp_path / "pred"), "-r", str(tmp_path / "bids"), "-o", str(report),
          "--no-plots"])  # nothing to evaluate: the exit code does not matter here
    assert not stale.exists() and fresh.exists()
