"""NIfTI headers that readers disagree on (issue #17.2), read directly: each header field ITK
misreads is refused naming the file, or read as the NIfTI standard (and nibabel) says."""

from __future__ import annotations

import gzip
import struct
import warnings

import nibabel as nib
import numpy as np
import pytest

from gdsynth.errors import GeometryError, ImageReadError
from gdsynth.io import read_image
from gdsynth.io.image import nifti_transform_note

DATA = (np.arange(8 * 9 * 10, dtype=np.float32).reshape(8, 9, 10) % 7) + 1


def _nifti(path, affine=None, *, qform=None):
    img = nib.Nifti1Image(DATA, np.diag([2.0, 2.0, 2.0, 1.0]) if affine is None else affine)
    if qform is not None:
        img.set_qform(qform, 1)
        img.set_sform(affine, 1)
    nib.save(img, path)
    return path


def _patch(path, offset, fmt, *values):
    raw = bytearray(path.read_bytes())
    raw[offset:offset + struct.calcsize("<" + fmt)] = struct.pack("<" + fmt, *values)
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize(("offset", "fmt", "values", "error", "fragment"), [
    (108, "f", (348.0,), ImageReadError, "vox_offset 348 is below 352"),
    (108, "f", (0.0,), ImageReadError, "vox_offset 0 is below 352"),
    (108, "f", (float("nan"),), ImageReadError, "vox_offset is nan"),
    (108, "f", (float("inf"),), ImageReadError, "vox_offset is inf"),
    (108, "f", (1e18,), ImageReadError, "not a valid data offset"),
    (80, "f", (0.0,), GeometryError, "pixdim[1] = 0"),
    (84, "f", (float("nan"),), GeometryError, "pixdim[2] = nan"),
    (280, "f", (float("nan"),), GeometryError, "sform holds NaN"),
])
def test_bad_header_fields_refused_naming_the_file(tmp_path, offset, fmt, values, error, fragment):
    path = _patch(_nifti(tmp_path / "t1.nii"), offset, fmt, *values)
    before = path.read_bytes()
    with pytest.raises(error) as info:
        read_image(path)
    assert str(path) in str(info.value) and fragment in str(info.value)
    assert "\n" not in str(info.value) and path.read_bytes() == before


@pytest.mark.parametrize("slope", [0.0, float("nan")])
def test_slope_zero_or_nan_means_no_scaling(tmp_path, slope):
    path = _patch(_nifti(tmp_path / "t1.nii"), 112, "ff", slope, 100.0)
    array, _ = read_image(path)
    np.testing.assert_array_equal(array, DATA)
    np.testing.assert_array_equal(array, np.asanyarray(nib.load(path).dataobj))


@pytest.mark.parametrize(("shift", "degrees"), [((40.0, 0.0, 0.0), 0.0), ((0.0, 0.0, 0.0), 10.0)])
def test_qform_sform_disagreement_uses_the_sform_and_says_so(tmp_path, shift, degrees):
    qform = np.diag([2.0, 2.0, 2.0, 1.0])
    a = np.radians(degrees)
    rot = np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    sform = qform.copy()
    sform[:3, :3] = rot @ qform[:3, :3]
    sform[:3, 3] = shift
    path = _nifti(tmp_path / "t1.nii.gz", sform, qform=qform)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        _, geometry = read_image(path)
    said = [str(w.message) for w in caught if "using the sform" in str(w.message)]
    assert len(said) == 1 and str(path) in said[0]
    np.testing.assert_allclose(geometry.affine, nib.load(path).affine, atol=1e-4)  # nibabel's
    assert nifti_transform_note(path).startswith("sform: qform and sform disagree")


def test_agreeing_transforms_are_silent(tmp_path):
    path = _nifti(tmp_path / "t1.nii.gz", np.diag([2.0, 2.0, 2.0, 1.0]),
                  qform=np.diag([2.0, 2.0, 2.0, 1.0]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        read_image(path)
    assert nifti_transform_note(path) == ""


def test_gzip_trailing_data_warned_and_not_decompressed(tmp_path):
    raw = _nifti(tmp_path / "t1.nii").read_bytes()
    path = tmp_path / "t1_trailing.nii.gz"
    path.write_bytes(gzip.compress(raw + b"\0" * (256 << 20), compresslevel=1))
    import time

    start = time.perf_counter()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        array, _ = read_image(path)
    elapsed = time.perf_counter() - start
    start = time.perf_counter()
    gzip.decompress(path.read_bytes())
    full = time.perf_counter() - start
    np.testing.assert_array_equal(array, DATA)
    assert any("data after the image" in str(w.message) and str(path) in str(w.message)
               for w in caught)
    assert elapsed < full / 2  # reading took less than half a full gunzip: the zeros were not read
