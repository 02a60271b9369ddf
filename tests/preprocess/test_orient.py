"""Reorientation to RAS and the exact way back (move_to_grid) for every voxel order."""

import numpy as np
import pytest

from gdsynth.io import Geometry
from gdsynth.preprocess import move_to_grid, prepared_geometry
from gdsynth.preprocess.orient import index_map, reorient_to_ras
from tests.utils import ORIENTATIONS, blob_volume, oblique_direction

ORDERS = [*ORIENTATIONS, "oblique"]


def _geometry(order: str, shape=(12, 14, 10), spacing=(1.0, 1.2, 3.0)) -> Geometry:
    direction = ORIENTATIONS[order] if order in ORIENTATIONS else oblique_direction()
    return Geometry(shape, spacing, (10.0, -20.0, 5.0), direction)


@pytest.mark.parametrize("order", ORDERS)
def test_reorient_keeps_every_voxel_in_place(order):
    geom = _geometry(order)
    arr = np.random.default_rng(0).normal(size=geom.shape).astype(np.float32)
    out, ras = reorient_to_ras(arr, geom)
    assert ras.orientation == "RAS"
    # the same value sits at the same world point before and after
    m = index_map(ras, geom)
    assert m is not None
    for ijk in [(0, 0, 0), (3, 5, 7), tuple(np.asarray(out.shape) - 1)]:
        native_ijk = (m @ [*ijk, 1])[:3].astype(int)
        assert out[ijk] == arr[tuple(native_ijk)]
        np.testing.assert_allclose(ras.index_to_world(ijk), geom.index_to_world(native_ijk), atol=1e-6)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("dtype", [np.float32, np.uint8])
def test_move_to_grid_round_trip_is_exact(order, dtype):
    geom = _geometry(order)
    arr = (np.random.default_rng(1).random(geom.shape) * 200).astype(dtype)
    prepared, ras = reorient_to_ras(arr, geom)
    assert ras.same_grid(prepared_geometry(geom, None))
    back = move_to_grid(prepared, ras, geom, interpolation="nearest")
    assert back.dtype == arr.dtype and back.shape == arr.shape
    np.testing.assert_array_equal(back, arr)


def test_move_to_grid_resamples_when_spacing_changed():
    geom = _geometry("LPS", shape=(20, 24, 18), spacing=(1.0, 1.0, 1.0))
    arr = blob_volume(geom.shape)
    target = prepared_geometry(geom, 2.0)
    assert target.spacing == (2.0, 2.0, 2.0) and target.orientation == "RAS"
    assert index_map(target, geom) is None
    from gdsynth.preprocess.resample import resample

    small = resample(arr, geom, target)
    back = move_to_grid(small, target, geom)
    assert back.shape == geom.shape
    inner = (slice(3, -3),) * 3
    assert np.corrcoef(back[inner].ravel(), arr[inner].ravel())[0, 1] > 0.95
    labels = move_to_grid((small > 50).astype(np.uint8), target, geom, interpolation="nearest")
    assert labels.dtype == np.uint8 and set(np.unique(labels)) <= {0, 1}


def test_move_to_grid_rejects_wrong_shape_and_bad_interpolation():
    geom = _geometry("RAS")
    with pytest.raises(ValueError, match="is not its grid's shape"):
        move_to_grid(np.zeros((3, 3, 3)), geom, geom)
    from gdsynth.errors import ConfigError

    with pytest.raises(ConfigError, match="linear, bspline, nearest"):
        move_to_grid(np.zeros(geom.shape), geom, geom, interpolation="cubic")
