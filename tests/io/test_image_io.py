"""Round trips and named errors of gdsynth.io.read_image / write_image."""

from __future__ import annotations

import gzip
import warnings
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from gdsynth.errors import (
    ConstantImageError,
    GeometryError,
    ImageDimensionError,
    ImageReadError,
    ImageTooLargeError,
    InputFileMissingError,
    NonFiniteImageError,
)
from gdsynth.io import Geometry, read_image, write_image, write_labels
from tests.utils import ORIENTATIONS, blob_volume, oblique_direction, write_volume


@pytest.mark.parametrize("orientation", ["RAS", "LPS", "LAS", "PIR", "oblique"])
@pytest.mark.parametrize("ext", [".nii.gz", ".nii", ".nrrd", ".mha"])
def test_round_trip_keeps_data_and_world_geometry(tmp_path: Path, orientation: str, ext: str):
    path = tmp_path / f"img{ext}"
    array, geometry = write_volume(path, orientation=orientation, spacing=(0.9, 1.1, 3.0))
    back, geo = read_image(path)
    assert back.dtype == np.float32
    np.testing.assert_array_equal(back, array)
    assert geo.shape == geometry.shape
    np.testing.assert_allclose(geo.affine, geometry.affine, atol=1e-5)
    # A second write/read on the read geometry is exact too (outputs land on the input grid).
    write_image(tmp_path / f"copy{ext}", back, geo)
    again, geo2 = read_image(tmp_path / f"copy{ext}")
    np.testing.assert_array_equal(again, array)
    assert geo2.same_grid(geo, atol=1e-6)


def test_orientation_codes_match_nibabel(tmp_path: Path):
    for code in ("RAS", "LPS", "LAS", "PIR"):
        path = tmp_path / f"{code}.nii.gz"
        _, geometry = write_volume(path, orientation=code)
        assert geometry.orientation == code
        assert "".join(nib.aff2axcodes(nib.load(path).affine)) == code
        np.testing.assert_allclose(nib.load(path).affine, geometry.affine, atol=1e-5)


def test_index_world_round_trip():
    geometry = Geometry((10, 12, 8), (1.0, 2.0, 3.0), (5.0, -4.0, 2.0), oblique_direction())
    ijk = np.array([[0, 0, 0], [9, 11, 7], [3.5, 2.25, 1.0]])
    for ras in (False, True):
        xyz = geometry.index_to_world(ijk, ras=ras)
        np.testing.assert_allclose(geometry.world_to_index(xyz, ras=ras), ijk, atol=1e-9)


def test_int16_with_scaling_is_applied(tmp_path: Path):
    raw = np.random.default_rng(0).integers(-200, 3000, (12, 10, 8)).astype(np.int16)
    geometry = Geometry(raw.shape, (1, 1, 2), (0, 0, 0), ORIENTATIONS["LAS"])
    img = nib.Nifti1Image(raw, geometry.affine)
    img.header.set_slope_inter(0.25, 10.0)
    nib.save(img, tmp_path / "scaled.nii.gz")
    array, geo = read_image(tmp_path / "scaled.nii.gz")
    np.testing.assert_allclose(array, raw * 0.25 + 10.0, rtol=1e-6)
    assert geo.same_grid(geometry, atol=1e-5)
    write_image(tmp_path / "out.nii.gz", array, geo)
    again, _ = read_image(tmp_path / "out.nii.gz")
    np.testing.assert_array_equal(again, array)


def test_integer_storage_rounds_and_clips(tmp_path: Path):
    geometry = Geometry((4, 4, 4), (1, 1, 1), (0, 0, 0))
    values = np.linspace(-40000, 40000, 64).reshape(4, 4, 4)
    write_image(tmp_path / "i16.nii.gz", values, geometry, dtype=np.int16)
    back, _ = read_image(tmp_path / "i16.nii.gz")
    assert back.min() == -32768 and back.max() == 32767
    assert nib.load(tmp_path / "i16.nii.gz").get_data_dtype() == np.int16


def test_labels_are_integer(tmp_path: Path):
    geometry = Geometry((6, 6, 6), (2, 2, 2), (0, 0, 0))
    labels = np.zeros((6, 6, 6), np.int64)
    labels[1:3, 1:3, 1:3] = 3
    write_labels(tmp_path / "lab.nii.gz", labels, geometry)
    assert nib.load(tmp_path / "lab.nii.gz").get_data_dtype() == np.uint8
    back, _ = read_image(tmp_path / "lab.nii.gz", dtype=np.int32)
    np.testing.assert_array_equal(back, labels)


def test_header_text_is_never_copied(tmp_path: Path):
    geometry = Geometry((8, 8, 8), (1, 1, 1), (0, 0, 0))
    img = nib.Nifti1Image(blob_volume((8, 8, 8)), geometry.affine)
    img.header["descrip"] = b"Doe^John 1970-01-01"
    img.header["aux_file"] = b"MRN123"
    img.header["intent_name"] = b"secret"
    nib.save(img, tmp_path / "phi.nii.gz")
    array, geo = read_image(tmp_path / "phi.nii.gz")
    write_image(tmp_path / "clean.nii.gz", array, geo)
    raw = gzip.decompress((tmp_path / "clean.nii.gz").read_bytes())
    for secret in (b"Doe", b"MRN123", b"secret"):
        assert secret not in raw


# --- bad inputs: each a named error that names the file ---------------------------------------


def _assert_names(exc_info, path: Path) -> None:
    assert str(path) in str(exc_info.value)


def test_missing_file(tmp_path: Path):
    path = tmp_path / "nope.nii.gz"
    with pytest.raises(InputFileMissingError) as e:
        read_image(path)
    _assert_names(e, path)


def test_zero_byte_file(tmp_path: Path):
    path = tmp_path / "empty.nii.gz"
    path.write_bytes(b"")
    with pytest.raises(ImageReadError) as e:
        read_image(path)
    _assert_names(e, path)
    assert "empty" in str(e.value)


def test_truncated_gzip(tmp_path: Path):
    good = tmp_path / "good.nii.gz"
    write_volume(good, shape=(40, 40, 40))
    data = good.read_bytes()
    bad = tmp_path / "truncated.nii.gz"
    bad.write_bytes(data[: len(data) // 2])
    with pytest.raises(ImageReadError) as e:
        read_image(bad)
    _assert_names(e, bad)


def test_png_named_nii(tmp_path: Path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    png = tmp_path / "x.png"
    plt.imsave(png, np.random.default_rng(0).random((16, 16)))
    fake = tmp_path / "fake.nii"
    fake.write_bytes(png.read_bytes())
    with pytest.raises((ImageReadError, ImageDimensionError)) as e:
        read_image(fake)
    _assert_names(e, fake)


def test_folder_without_dicom(tmp_path: Path):
    folder = tmp_path / "not_an_image.nii.gz"
    folder.mkdir()
    (folder / "readme.txt").write_text("hello")
    with pytest.raises(ImageReadError) as e:
        read_image(folder)
    _assert_names(e, folder)


def test_2d_image(tmp_path: Path):
    path = tmp_path / "slice.nii.gz"
    nib.save(nib.Nifti1Image(blob_volume((16, 16, 1))[..., 0], np.eye(4)), path)
    with pytest.raises(ImageDimensionError) as e:
        read_image(path)
    _assert_names(e, path)
    assert "2D" in str(e.value)


def test_4d_with_several_volumes(tmp_path: Path):
    path = tmp_path / "dwi.nii.gz"
    nib.save(nib.Nifti1Image(np.random.default_rng(0).random((8, 8, 8, 3)).astype("f4"), np.eye(4)), path)
    with pytest.raises(ImageDimensionError) as e:
        read_image(path)
    assert "4D" in str(e.value)
    _assert_names(e, path)


def test_4d_singleton_is_squeezed_with_warning(tmp_path: Path):
    path = tmp_path / "single.nii.gz"
    vol = blob_volume((8, 9, 10))
    nib.save(nib.Nifti1Image(vol[..., None], np.diag([2, 2, 2, 1])), path)
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        array, geometry = read_image(path)
    assert array.shape == (8, 9, 10)
    np.testing.assert_array_equal(array, vol)
    assert geometry.spacing == (2.0, 2.0, 2.0)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite(tmp_path: Path, bad: float):
    path = tmp_path / "nan.nii.gz"
    vol = blob_volume((8, 8, 8))
    vol[2, 3, 4] = bad
    nib.save(nib.Nifti1Image(vol, np.eye(4)), path)
    with pytest.raises(NonFiniteImageError) as e:
        read_image(path)
    _assert_names(e, path)


@pytest.mark.parametrize("value", [0.0, 7.0])
def test_constant_image(tmp_path: Path, value: float):
    path = tmp_path / "const.nii.gz"
    nib.save(nib.Nifti1Image(np.full((8, 8, 8), value, np.float32), np.eye(4)), path)
    with pytest.raises(ConstantImageError) as e:
        read_image(path)
    _assert_names(e, path)
    array, _ = read_image(path, allow_constant=True)
    assert array.shape == (8, 8, 8)


def test_absurd_size_refused_before_allocating(tmp_path: Path):
    # A valid-looking header that claims 30000^3 voxels, followed by a few bytes of data.
    header = nib.Nifti1Header()
    header.set_data_dtype(np.float32)
    header.set_data_shape((30000, 30000, 30000))
    header.set_data_offset(352)  # a valid single-file offset (0 is refused on its own)
    path = tmp_path / "huge.nii"
    with open(path, "wb") as fh:
        fh.write(header.binaryblock)
        fh.write(b"\x00" * 4)  # vox_offset padding
        fh.write(np.zeros(16, np.float32).tobytes())
    with pytest.raises(ImageTooLargeError) as e:
        read_image(path)
    _assert_names(e, path)


def test_non_orthonormal_direction(tmp_path: Path):
    path = tmp_path / "sheared.mha"
    vol = blob_volume((8, 8, 8))
    path_ok = tmp_path / "ok.mha"
    write_image(path_ok, vol, Geometry((8, 8, 8), (1, 1, 1), (0, 0, 0)))
    text = path_ok.read_bytes()
    sheared = text.replace(b"TransformMatrix = 1 0 0 0 1 0 0 0 1", b"TransformMatrix = 1 0.5 0 0 1 0 0 0 1")
    assert sheared != text
    path.write_bytes(sheared)
    with pytest.raises(GeometryError) as e:
        read_image(path)
    _assert_names(e, path)
