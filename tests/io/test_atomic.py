"""Atomic writes: an interrupted write never leaves a partial file under the final name."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

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
    with pytest.raises(OSError):
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
